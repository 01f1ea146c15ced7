"""What an analysis stage of a run returns, and the isolation every stage runs in.

A stage is a function ``(model handle, stage config, *, seed, threads, progress) ->``
:class:`StageOutput`. It writes nothing and touches no run folder: it returns its results rows
(without provenance: :func:`mindscope.results.stamp` adds the model, revision, step and weights
hash), its artefacts as writers, and the content hashes of the data it read. The pipeline
(:mod:`mindscope.runs.pipeline`) writes all of it. :func:`isolated` gives a stage its own seeded
random state and thread count and restores the caller's afterwards.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["StageOutput", "Artefact", "isolated", "json_artefact"]

Artefact = Callable[[Path], Any]
"""Writes one artefact to the path it is given (a file or a folder, by the artefact's name)."""


@dataclass
class StageOutput:
    """The results of one stage, nothing written yet."""

    rows: pd.DataFrame
    """Results rows (:data:`mindscope.results.COLUMNS`), provenance columns left empty."""
    artefacts: dict[str, Artefact] = field(default_factory=dict)
    """Name inside ``artefacts/`` -> a function writing it there."""
    data: dict[str, str] = field(default_factory=dict)
    """Dataset name (``lens-train:pocket-corpus``) -> content hash, for the manifest."""


def json_artefact(obj: Any) -> Artefact:
    """An artefact writing ``obj`` as JSON (atomically)."""

    def write(path: Path) -> None:
        from mindscope.io import atomic_write_json

        atomic_write_json(path, obj, indent=None, sort_keys=False)

    return write


@contextlib.contextmanager
def isolated(seed: int, threads: int | None = None) -> Iterator[None]:
    """Seed Python's, NumPy's and torch's random state with ``seed`` (and use ``threads`` torch
    threads) inside the block; the caller's states and thread count are restored after."""
    import torch

    py_state, np_state = random.getstate(), np.random.get_state()
    old_threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(old_threads)
            random.setstate(py_state)
            np.random.set_state(np_state)
