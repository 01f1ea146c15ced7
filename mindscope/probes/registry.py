"""The reporter methods by short name: the one list every command, config and stage checks.

A *reporter* (probe) maps activations to a credence that a statement is true; the user-facing
analysis that fits and scores reporters is called *elicit* (``mindscope elicit``, the
``elicit`` stage). Names: ``lr`` (:class:`LogisticReporter`), ``diffmean``, ``lda``, ``ccs``,
``crc`` and ``random`` (the random-direction baseline).
"""

from __future__ import annotations

from collections.abc import Sequence

from mindscope.probes.base import Reporter
from mindscope.probes.ccs import CcsReporter
from mindscope.probes.crc import CrcReporter
from mindscope.probes.diffmean import DiffMeanReporter
from mindscope.probes.lda import LdaReporter
from mindscope.probes.logistic import LogisticReporter
from mindscope.probes.random_baseline import RandomReporter

__all__ = [
    "METHODS",
    "REPORTER_METHODS",
    "PAIR_ONLY_METHODS",
    "READ_MODES",
    "read_mode_error",
]

METHODS: dict[str, type[Reporter]] = {
    "lr": LogisticReporter,
    "diffmean": DiffMeanReporter,
    "lda": LdaReporter,
    "ccs": CcsReporter,
    "crc": CrcReporter,
    "random": RandomReporter,
}
"""Short name -> reporter class."""

REPORTER_METHODS: tuple[str, ...] = tuple(METHODS)
"""The short names, in the order help texts list them."""

PAIR_ONLY_METHODS = ("ccs", "crc")
"""Reporters that need both sides of a contrast pair (they cannot read a prompt alone)."""

READ_MODES = ("completion", "prompt")
"""Where reporters read: each side of a pair, or the prompt alone."""


def read_mode_error(read: str, methods: Sequence[str]) -> str | None:
    """Why ``methods`` cannot read at ``read``, or None when they can."""
    if read not in READ_MODES:
        return f"expected 'completion' or 'prompt', got {read!r}"
    pair_only = [m for m in methods if m in PAIR_ONLY_METHODS]
    if read == "prompt" and pair_only:
        return f"{', '.join(pair_only)} need contrast pairs; drop them or read the completion"
    return None
