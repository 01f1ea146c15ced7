"""The stage contract: one analysis is one function, written once, called by everything.

A *stage* is a registered function ``fn(handle, config, *, seed, progress, state, store) ->``
:class:`StageOutput`. ``mindscope run``, ``mindscope sweep``, the single-purpose commands
(``mindscope elicit``, ``mindscope lens``, ``mindscope audit ...``) and the Python API all reach
an analysis through :func:`run_stage`, so the same config and seed give the same rows whichever
door they came in by.

A stage writes nothing and touches no run folder: it returns its results rows (without
provenance: :func:`mindscope.results.stamp` adds the model, revision, step and weights hash),
its artefacts as writers, the content hashes of the data it read, and an optional ``state``
handed to the same stage on the next checkpoint of a sweep (a tuned lens warm-starts from the
previous checkpoint's translators). :func:`run_stage` runs it in :func:`isolated` random state.

Adding an analysis means one module in :mod:`mindscope.analyses` with a :class:`StageConfig`
subclass and a function decorated with :func:`register`; the run and sweep configs and the
command-line options are generated from that config.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import Field

from mindscope.errors import ConfigError
from mindscope.schema import Schema, parse

__all__ = [
    "Artefact",
    "StageOutput",
    "StageConfig",
    "CheckContext",
    "Stage",
    "register",
    "get_stage",
    "stage_names",
    "run_stage",
    "isolated",
    "json_artefact",
]

Artefact = Callable[[Path], Any]
"""Writes one artefact to the path it is given (a file or a folder, by the artefact's name)."""

C = TypeVar("C", bound="StageConfig")


@dataclass
class StageOutput:
    """The results of one stage, nothing written yet."""

    rows: pd.DataFrame
    """Results rows (:data:`mindscope.results.COLUMNS`), provenance columns left empty."""
    artefacts: dict[str, Artefact] = field(default_factory=dict)
    """Name inside ``artefacts/`` -> a function writing it there."""
    data: dict[str, str] = field(default_factory=dict)
    """Dataset name (``lens-train:pocket-corpus``) -> content hash, for the manifest."""
    state: dict[str, Any] | None = None
    """CPU tensors handed to the same stage on the next checkpoint of a sweep (or None)."""
    info: dict[str, Any] = field(default_factory=dict)
    """What the stage says about its run (sizes, how data were split, warnings): plain JSON
    values, recorded in the run's manifest."""


@dataclass(frozen=True)
class CheckContext:
    """What a config's semantic check may look at: where relative paths start, the seed, the
    model the stage will read (its name and revision; nothing is loaded), and a prefix for
    messages (the config file's name)."""

    base: Path
    seed: int = 0
    model: str = ""
    revision: str | None = None
    prefix: str = ""
    check_data: bool = True


class StageConfig(Schema):
    """Base of every stage config: the two keys every stage understands in a run config."""

    enabled: bool = Field(
        default=True, description="Run this stage (in a run or sweep config; ignored elsewhere)."
    )
    model: str | None = Field(
        default=None,
        description="Model this stage reads (e.g. a quirky organism); null: the run's ``model`` "
        "(``model.device``/``model.dtype`` apply to it, ``model.revision`` does not).",
    )

    def check(self: C, ctx: CheckContext, where: str) -> C:
        """A checked, resolved copy: files exist (relative to ``ctx.base``), values are in range,
        data load as the stage will load them. Raises :class:`ConfigError` (one line, starting
        with ``ctx.prefix + where``). Nothing is loaded but small files and model configs."""
        return self.model_copy(deep=True)

    def fail(self, ctx: CheckContext, where: str, message: str) -> ConfigError:
        """The one-line error of a failed check: ``prefix where: message``."""
        return ConfigError(f"{ctx.prefix}{where}: {message}")


StageFn = Callable[..., StageOutput]


@dataclass(frozen=True)
class Stage:
    """A registered analysis."""

    name: str
    """Key in run and sweep configs, ``extra.stage`` of its rows."""
    config: type[StageConfig]
    fn: StageFn
    help: str
    """One line for ``--help`` and the config template."""
    in_run: bool = False
    """Enabled by default in ``mindscope run`` (lens and reporters); others must be listed."""
    needs_model: bool = True
    """Whether the stage reads a language model (a sweep runs only such stages)."""
    chained: Callable[[Any], bool] = field(default=lambda cfg: False)
    """Whether a config makes the stage read the previous checkpoint's ``state``."""
    order: int = 100
    """Where the stage runs in a run or sweep (lower first; ties by registration)."""


_REGISTRY: dict[str, Stage] = {}


def register(
    name: str,
    config: type[StageConfig],
    *,
    help: str,
    in_run: bool = False,
    needs_model: bool = True,
    chained: Callable[[Any], bool] | None = None,
    order: int = 100,
) -> Callable[[StageFn], StageFn]:
    """Decorator registering ``fn`` as stage ``name`` with config type ``config``; ``order``
    places it in a run (the lens runs at 10, reporters at 20, audits after)."""

    def deco(fn: StageFn) -> StageFn:
        if name in _REGISTRY and _REGISTRY[name].fn is not fn:
            raise RuntimeError(f"stage {name!r} is registered twice")
        _REGISTRY[name] = Stage(
            name, config, fn, help, in_run, needs_model, chained or (lambda cfg: False), order
        )
        return fn

    return deco


def stage_names() -> list[str]:
    """Registered stage names in the order a run executes them (``order``, then registration)."""
    ranked = sorted(enumerate(_REGISTRY.values()), key=lambda t: (t[1].order, t[0]))
    return [st.name for _, st in ranked]


def get_stage(name: str) -> Stage:
    """The stage registered as ``name``; unknown names raise :class:`ConfigError` with a
    did-you-mean."""
    import difflib

    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown stage {name!r} (known: {', '.join(_REGISTRY)}){hint}")
    return _REGISTRY[name]


def _as_config(stage: Stage, cfg: StageConfig | Mapping[str, Any] | None) -> StageConfig:
    if cfg is None:
        return stage.config()
    if isinstance(cfg, Mapping):
        return parse(stage.config, dict(cfg), stage.name)
    if not isinstance(cfg, stage.config):
        raise TypeError(
            f"stage {stage.name!r} takes a {stage.config.__name__}, got {type(cfg).__name__}"
        )
    return cfg


def run_stage(
    stage: str | Stage,
    h: Any,
    cfg: StageConfig | Mapping[str, Any] | None = None,
    *,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Run one analysis on model handle ``h`` (``None`` for stages that read no model).

    Args:
        stage: a registered name (``"lens"``, ``"elicit"``, ``"anomaly"``, ...) or a
            :class:`Stage`.
        cfg: the stage's config, a plain mapping (checked, one-line errors) or None (defaults).
        seed: every random choice of the stage; it runs in :func:`isolated` random state.
        threads: torch threads for the call (restored after); None keeps the current setting.
        state: the previous checkpoint's ``StageOutput.state`` (sweeps).
        store: activation store root (default ``$MINDSCOPE_HOME/activations``).

    Returns:
        The stage's :class:`StageOutput`; every row's ``extra`` carries ``stage``.
    """
    from mindscope.results import with_extra

    st = stage if isinstance(stage, Stage) else get_stage(stage)
    config = _as_config(st, cfg)
    with isolated(seed, threads):
        out = st.fn(h, config, seed=seed, progress=progress, state=state, store=store)
    out.rows = with_extra(out.rows, stage=st.name)
    return out


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
