"""Runs: the config schema of ``mindscope run``, run folders, and the pipeline behind
``mindscope demo`` / ``mindscope run``.

A run reads a model, runs the stages its config enables (:mod:`mindscope.analyses`: pure
functions returning a :class:`StageOutput`), and writes a run folder
(:mod:`mindscope.runs.folder`) whose ``report.html`` is built from its results table alone.
"""

from __future__ import annotations

from mindscope.analyses import StageOutput
from mindscope.runs.config import (
    ElicitConfig,
    LensConfig,
    ModelConfig,
    RunConfig,
    config_template,
    load_config,
    validate,
)
from mindscope.runs.folder import RunFolder, RunFolderError
from mindscope.runs.manifest import Manifest

__all__ = [
    "RunConfig",
    "ModelConfig",
    "LensConfig",
    "ElicitConfig",
    "load_config",
    "validate",
    "config_template",
    "RunFolder",
    "RunFolderError",
    "Manifest",
    "StageOutput",
]
