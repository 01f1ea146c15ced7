"""Where mindscope keeps its caches.

``MINDSCOPE_HOME`` (default ``~/.cache/mindscope``) holds trained organisms (``organisms/``) and
the activation store (``activations/``). Tests point it at a temporary folder.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["home", "organisms_dir", "store_dir"]


def home() -> Path:
    """The root of mindscope's caches (``$MINDSCOPE_HOME`` or ``~/.cache/mindscope``)."""
    env = os.environ.get("MINDSCOPE_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "mindscope"


def organisms_dir() -> Path:
    """Folder holding one sub-folder per trained organism."""
    return home() / "organisms"


def store_dir() -> Path:
    """Default root of the content-addressed activation store."""
    env = os.environ.get("MINDSCOPE_STORE")
    return Path(env).expanduser() if env else home() / "activations"
