"""Helpers shared by the closed-form reporters (internal)."""

from __future__ import annotations

from torch import Tensor

from mindscope.probes._solvers import platt

__all__ = ["calibrate"]


def calibrate(scores: Tensor, y: Tensor | None) -> tuple[Tensor, Tensor]:
    """Scale ``a [L]`` and shift ``c [L]`` turning raw scores ``[L, n]`` into logits.

    With labels: Platt scaling (so the sign follows the labels). Without: ``a = 1/std``,
    ``c = -mean * a`` (credence 0.5 at the training mean; the sign stays arbitrary).
    """
    if y is not None:
        return platt(scores, y)
    s = scores.double()
    a = 1.0 / s.std(dim=1).clamp_min(1e-12)
    return a, -s.mean(dim=1) * a
