"""Weak-to-strong measurements, all scored against the truth.

* :func:`pgr` and :func:`pgr_ci`: performance gap recovered (Burns et al. 2023),
  ``PGR = (student - weak) / (ceiling - weak)``, with a bootstrap interval that resamples the
  seeds and the test examples together (paired: the same draw scores weak, student and
  ceiling). PGR is *refused* (value NaN, a one-line reason) when the gap ``ceiling - weak`` is
  within noise (its interval reaches 0, or it is below ``min_gap``); a ceiling significantly
  below the weak supervisor is refused with that reason, never hidden.
* :func:`slice_accuracy`: the student's accuracy on the examples its supervisor labels right
  and on those it labels wrong (does the student learn the truth there, or imitate the error?).
* :func:`misfit_gain`: Charikar et al. 2024's quantities for the squared loss on probabilities:
  ``gain = err(weak) - err(student)``, ``misfit = E[(student - weak)^2]``; their theorem
  predicts ``gain >= misfit`` when the student's function class is convex.
* :func:`paired_sign_flip`: an exact paired permutation (sign-flip) test of a mean difference.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from mindscope.errors import MindscopeError
from mindscope.probes import roc_auc
from mindscope.w2s.supervisors import harden

__all__ = [
    "score",
    "pgr",
    "PGR",
    "pgr_ci",
    "slice_accuracy",
    "misfit_gain",
    "paired_sign_flip",
    "METRICS",
]

METRICS = ("auroc", "accuracy")
"""Scores a PGR can be computed on."""


def _metric(name: str) -> None:
    if name not in METRICS:
        raise MindscopeError(f"unknown metric {name!r} (known: {', '.join(METRICS)})")


def score(p: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor, metric: str) -> np.ndarray:
    """AUROC or accuracy (threshold 0.5) of credences ``p`` ``[..., n]`` against 0/1 truth ``y``
    ``[..., n]`` (broadcast): ``[...]``."""
    _metric(metric)
    pt = torch.from_numpy(np.array(p, dtype=np.float64))
    yt = torch.from_numpy(np.array(y, dtype=np.float64))
    if metric == "auroc":
        return roc_auc(pt, yt).numpy()
    pt, yt = torch.broadcast_tensors(pt, yt)
    return ((pt > 0.5).double() == yt).double().mean(-1).numpy()


def pgr(weak: float, student: float, ceiling: float) -> float:
    """``(student - weak) / (ceiling - weak)``; NaN when the gap is exactly 0."""
    gap = ceiling - weak
    return (student - weak) / gap if gap != 0 else math.nan


@dataclass(frozen=True)
class PGR:
    """A performance gap recovered with its interval, or its refusal."""

    value: float
    """PGR of the seed-averaged scores; NaN when refused."""
    ci_low: float
    ci_high: float
    weak: float
    student: float
    ceiling: float
    """Seed-averaged scores."""
    gap_low: float
    gap_high: float
    """95% bootstrap interval of ``ceiling - weak``."""
    n_seeds: int
    n: int
    """Test examples."""
    refused: str | None = None
    """Why PGR is not reported (one line), or None."""


def _as_runs(a: np.ndarray, name: str, n: int) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n:
        raise MindscopeError(f"{name} must be [seeds, {n}] (or [{n}]), got shape {a.shape}")
    return a


def pgr_ci(
    truth: np.ndarray,
    weak: np.ndarray,
    student: np.ndarray,
    ceiling: np.ndarray,
    *,
    metric: Literal["auroc", "accuracy"] = "auroc",
    n_boot: int = 1000,
    min_gap: float = 0.02,
    seed: int = 0,
) -> PGR:
    """PGR over seeds with a bootstrap interval, or a refusal.

    Args:
        truth: ``[n]`` 0/1 truth of the test examples.
        weak, student, ceiling: ``[seeds, n]`` credences (or ``[n]`` for a supervisor that is
            the same for every seed) of the weak supervisor, the student and the ceiling.
        metric: ``auroc`` or ``accuracy``.
        n_boot: bootstrap draws; each resamples seeds and test examples with replacement.
        min_gap: refuse PGR when ``ceiling - weak`` is smaller than this.
        seed: seed of the bootstrap.

    Returns:
        A :class:`PGR`: the ratio of the seed-averaged scores and the 2.5/97.5 percentiles of
        the ratio over the bootstrap draws.
    """
    _metric(metric)
    y = np.asarray(truth, dtype=np.float64)
    if y.ndim != 1 or not np.isin(y, (0.0, 1.0)).all():
        raise MindscopeError(f"truth must be a [n] array of 0/1, got shape {y.shape}")
    n = y.shape[0]
    if len(np.unique(y)) < 2:
        raise MindscopeError("the test split's truth holds a single class; PGR is undefined")
    w, s, c = (
        _as_runs(a, k, n) for a, k in ((weak, "weak"), (student, "student"), (ceiling, "ceiling"))
    )
    n_seeds = max(len(w), len(s), len(c))
    for a, k in ((w, "weak"), (s, "student"), (c, "ceiling")):
        if len(a) not in (1, n_seeds):
            raise MindscopeError(f"{k} has {len(a)} seeds, expected 1 or {n_seeds}")
    w, s, c = (np.broadcast_to(a, (n_seeds, n)) for a in (w, s, c))
    sw, ss, sc = (float(score(a, y, metric).mean()) for a in (w, s, c))
    rng = np.random.default_rng(seed)
    seeds_b = rng.integers(0, n_seeds, size=(n_boot, n_seeds))  # [B, S]
    idx_b = rng.integers(0, n, size=(n_boot, n))  # [B, n]
    yb = y[idx_b][:, None, :]  # [B, 1, n]
    boot = []
    for a in (w, s, c):
        ab = a[seeds_b[:, :, None], idx_b[:, None, :]]  # [B, S, n]
        boot.append(np.nanmean(score(ab, yb, metric), axis=1))  # [B]
    bw, bs, bc = boot
    gap_b = bc - bw
    gap_low, gap_high = (float(v) for v in np.nanpercentile(gap_b, [2.5, 97.5]))
    gap = sc - sw
    refused = None
    if gap_high < 0:
        refused = (
            f"the ceiling is below the weak supervisor ({metric} {sc:.3f} < {sw:.3f}, gap CI "
            f"[{gap_low:.3f}, {gap_high:.3f}])"
        )
    elif gap_low <= 0 or gap < min_gap:
        refused = (
            f"ceiling - weak = {gap:.3f} [{gap_low:.3f}, {gap_high:.3f}] is within noise "
            f"(CI reaches 0 or below min_gap {min_gap})"
        )
    if refused:
        value = lo = hi = math.nan
    else:
        value = pgr(sw, ss, sc)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (bs - bw) / gap_b
        lo, hi = (float(v) for v in np.nanpercentile(ratio, [2.5, 97.5]))
    return PGR(value, lo, hi, sw, ss, sc, gap_low, gap_high, n_seeds, n, refused)


def _hard(p: np.ndarray) -> np.ndarray:
    return (np.asarray(p, dtype=np.float64) > 0.5).astype(np.float64)


def slice_accuracy(truth: np.ndarray, weak: np.ndarray, student: np.ndarray) -> dict[str, float]:
    """The student's accuracy where the weak supervisor is right and where it is wrong.

    Args:
        truth: ``[n]`` 0/1.
        weak: ``[n]`` the supervisor's credences (hardened at its own base rate,
            :func:`~mindscope.w2s.supervisors.harden`).
        student: ``[n]`` the student's credences (hard label: > 0.5).

    Returns:
        ``acc_weak_right``, ``acc_weak_wrong`` (NaN on an empty slice), ``n_weak_right``,
        ``n_weak_wrong`` and ``imitation``: the share of the weak-wrong slice where the student
        gives the supervisor's wrong label (``1 - acc_weak_wrong``).
    """
    y = np.asarray(truth, dtype=np.float64)
    w, s = harden(np.asarray(weak, dtype=np.float64)).astype(np.float64), _hard(student)
    if not (y.shape == w.shape == s.shape and y.ndim == 1):
        raise MindscopeError(
            f"truth, weak and student must be [n] arrays of one length, got {y.shape}, "
            f"{w.shape}, {s.shape}"
        )
    right = w == y
    wrong = ~right
    acc_right = float((s[right] == y[right]).mean()) if right.any() else math.nan
    acc_wrong = float((s[wrong] == y[wrong]).mean()) if wrong.any() else math.nan
    return {
        "acc_weak_right": acc_right,
        "acc_weak_wrong": acc_wrong,
        "n_weak_right": int(right.sum()),
        "n_weak_wrong": int(wrong.sum()),
        "imitation": 1.0 - acc_wrong if wrong.any() else math.nan,
    }


def misfit_gain(truth: np.ndarray, weak: np.ndarray, student: np.ndarray) -> dict[str, float]:
    """Charikar et al. 2024's misfit and gain for the squared loss on probabilities ``[n]``.

    ``err(f) = mean((f - truth)^2)``; ``gain = err(weak) - err(student)``;
    ``misfit = mean((student - weak)^2)``. Their theorem (the student is the projection of the
    weak labels onto a convex class that holds the truth) gives ``gain >= misfit``; ``slack =
    gain - misfit``.
    """
    y, w, s = (np.asarray(a, dtype=np.float64) for a in (truth, weak, student))
    if not (y.shape == w.shape == s.shape and y.ndim == 1):
        raise MindscopeError(
            f"truth, weak and student must be [n] arrays of one length, got {y.shape}, "
            f"{w.shape}, {s.shape}"
        )
    err_w = float(np.mean((w - y) ** 2))
    err_s = float(np.mean((s - y) ** 2))
    misfit = float(np.mean((s - w) ** 2))
    gain = err_w - err_s
    return {
        "err_weak": err_w,
        "err_student": err_s,
        "gain": gain,
        "misfit": misfit,
        "slack": gain - misfit,
    }


def paired_sign_flip(
    a: np.ndarray, b: np.ndarray, *, n_perm: int = 100_000, seed: int = 0
) -> tuple[float, float]:
    """Two-sided paired permutation test of ``mean(a - b) = 0`` by flipping the signs of the
    paired differences: exact (all ``2^m`` sign patterns) for ``m <= 16`` pairs, else
    ``n_perm`` random patterns. Returns ``(mean difference, p-value)``."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    if d.ndim != 1 or d.size == 0:
        raise MindscopeError(f"paired_sign_flip needs two [m] arrays of one length, got {d.shape}")
    obs = abs(d.mean())
    m = d.size
    if m <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=m)))  # [2^m, m]
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(n_perm, m))
    null = np.abs((signs * d).mean(1))
    hits = float((null >= obs - 1e-12).sum())
    # exact: the observed pattern is among the 2^m; sampled: (hits + 1) / (draws + 1)
    p = hits / len(null) if m <= 16 else (hits + 1) / (len(null) + 1)
    return float(d.mean()), p
