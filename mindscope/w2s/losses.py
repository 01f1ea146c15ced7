"""Losses of a fine-tuned student on weak labels.

* ``ce``: binary cross-entropy against the (soft) weak labels.
* ``logconf``: Burns et al. 2023's auxiliary confidence loss: cross-entropy against
  ``(1 - a) * weak + a * hardened(student)``, where ``hardened`` thresholds the student's own
  (detached) credences at the batch quantile that gives the weak labels' share of positives,
  and ``a`` ramps linearly from 0 to ``weight`` (0.5) over the first ``warmup`` (10%) of steps.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
import torch.nn.functional as F

from mindscope.errors import MindscopeError

__all__ = ["ce_loss", "logconf_loss", "LOSSES", "get_loss"]


def ce_loss(
    logits: torch.Tensor, labels: torch.Tensor, progress: float = 0.0, **_: float
) -> torch.Tensor:
    """Mean binary cross-entropy of ``logits`` ``[b]`` against credences ``labels`` ``[b]``."""
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))


def logconf_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    progress: float = 0.0,
    *,
    weight: float = 0.5,
    warmup: float = 0.1,
) -> torch.Tensor:
    """Burns et al.'s auxiliary confidence loss.

    Args:
        logits: ``[b]`` the student's logits.
        labels: ``[b]`` weak credences in [0, 1].
        progress: the share of training done (step / steps), for the ramp.
        weight: the final weight of the student's own hardened predictions.
        warmup: share of training over which the weight ramps in from 0.
    """
    a = weight * min(1.0, progress / warmup) if warmup > 0 else weight
    p = torch.sigmoid(logits).detach()
    prior = float(labels.float().mean())
    threshold = torch.quantile(p.float(), min(max(1.0 - prior, 0.0), 1.0))
    hardened = (p > threshold).to(logits.dtype)
    target = (1 - a) * labels.to(logits.dtype) + a * hardened
    return F.binary_cross_entropy_with_logits(logits, target)


LOSSES: dict[str, Callable[..., torch.Tensor]] = {"ce": ce_loss, "logconf": logconf_loss}
"""Loss name -> function ``(logits [b], labels [b], progress) -> scalar``."""


def get_loss(name: str) -> Callable[..., torch.Tensor]:
    """The loss called ``name``; an unknown name is a one-line error with a did-you-mean."""
    if name not in LOSSES:
        close = difflib.get_close_matches(name, list(LOSSES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MindscopeError(f"unknown loss {name!r} (known: {', '.join(LOSSES)}){hint}")
    return LOSSES[name]
