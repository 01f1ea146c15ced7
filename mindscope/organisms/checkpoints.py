"""Checkpoint schedules named like Pythia's revisions (``step0``, ``step1``, ``step2``, ...)."""

from __future__ import annotations

import re

from mindscope.errors import ModelLoadError

__all__ = ["checkpoint_steps", "revision_name", "parse_revision"]

_REV_RE = re.compile(r"^step(\d+)$")


def checkpoint_steps(max_steps: int, n_linear: int = 8) -> list[int]:
    """Steps at which a checkpoint is saved: log-spaced, then evenly spaced, then the last.

    ``step0`` (the initialisation) and powers of two below the first evenly spaced step, then
    ``n_linear`` evenly spaced steps ending at ``max_steps`` (Pythia: 0, 1, 2, 4, ..., 512, then
    every 1000). E.g. ``checkpoint_steps(1000, 4) == [0, 1, 2, 4, ..., 128, 250, 500, 750, 1000]``.
    """
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    if n_linear < 1:
        raise ValueError(f"n_linear must be >= 1, got {n_linear}")
    first_linear = max_steps / n_linear
    steps = {0, max_steps}
    power = 1
    while power < first_linear:
        steps.add(power)
        power *= 2
    steps.update(max(1, round(max_steps * i / n_linear)) for i in range(1, n_linear + 1))
    return sorted(steps)


def revision_name(step: int) -> str:
    """``12 -> "step12"``."""
    return f"step{step}"


def parse_revision(revision: str) -> int:
    """``"step12" -> 12``; anything else raises :class:`ModelLoadError`."""
    m = _REV_RE.match(revision) if isinstance(revision, str) else None
    if not m:
        raise ModelLoadError(f"revision must look like 'step<N>', got {revision!r}")
    return int(m.group(1))
