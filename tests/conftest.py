"""Shared fixtures. Every test session gets its own MINDSCOPE_HOME, so nothing touches the
user's cache and organisms trained by one test are reused by the next (session scope)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

if "MINDSCOPE_TEST_HOME" in os.environ:  # reuse a warm cache across runs, if asked
    os.environ["MINDSCOPE_HOME"] = os.environ["MINDSCOPE_TEST_HOME"]
else:
    os.environ["MINDSCOPE_HOME"] = tempfile.mkdtemp(prefix="mindscope-test-home-")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random-weight models of every architecture, saved in HF format once per session."""
    from mindscope.testing import ARCHS, save_tiny_model

    root = tmp_path_factory.mktemp("tiny-models")
    return {arch: save_tiny_model(arch, root / arch) for arch in ARCHS}
