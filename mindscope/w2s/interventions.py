"""Changing the weak labels before a student learns them.

* :func:`probe_relabel`: replace each weak label by what a reporter on the strong model's
  frozen activations, fitted to the weak labels of the *other* folds, predicts for it
  (EleutherAI/w2s's probe relabelling, cross-fitted so no example labels itself).
* :func:`probe_filter`: drop the share of examples whose weak label that cross-fitted reporter
  disagrees with most (EleutherAI/w2s's probe filtering).
* :func:`mix_oracle`: give ``k`` random examples their true label (Mallen & Belrose 2024's
  weak-plus-oracle mixtures).
"""

from __future__ import annotations

import numpy as np
import torch

from mindscope.errors import MindscopeError
from mindscope.w2s.supervisors import harden

__all__ = ["crossfit_scores", "probe_relabel", "probe_filter", "mix_oracle"]


def crossfit_scores(
    x: torch.Tensor, labels: np.ndarray, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Credences ``[n]`` of a logistic reporter fitted to the hardened ``labels`` ``[n]`` on
    activations ``x`` ``[n, d]``, each example scored by the reporter of the folds without it."""
    from mindscope.probes import LogisticReporter

    y = harden(labels)
    n = y.shape[0]
    if x.ndim != 2 or x.shape[0] != n:
        raise MindscopeError(f"activations must be [{n}, d], got {tuple(x.shape)}")
    fold = np.random.default_rng(seed).permutation(n) % folds
    out = np.empty(n)
    for k in range(folds):
        tr, te = fold != k, fold == k
        if len(np.unique(y[tr])) < 2:
            out[te] = y[tr].mean()
            continue
        rep = LogisticReporter(seed=seed).fit(x[torch.as_tensor(tr)], torch.as_tensor(y[tr]))
        out[te] = rep.predict_proba(x[torch.as_tensor(te)]).double().numpy()
    return out


def probe_relabel(
    x: torch.Tensor, labels: np.ndarray, *, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """The cross-fitted reporter's credences ``[n]`` as the new labels."""
    return crossfit_scores(x, labels, folds=folds, seed=seed)


def probe_filter(
    x: torch.Tensor, labels: np.ndarray, *, fraction: float = 0.1, folds: int = 5, seed: int = 0
) -> np.ndarray:
    """Boolean keep-mask ``[n]``: drops the ``fraction`` of examples where the cross-fitted
    reporter's credence is farthest from the weak label."""
    if not 0 <= fraction < 1:
        raise MindscopeError(f"filter fraction must be in [0, 1), got {fraction}")
    p = crossfit_scores(x, labels, folds=folds, seed=seed)
    dist = np.abs(p - np.asarray(labels, dtype=np.float64))
    n_drop = int(round(fraction * len(dist)))
    keep = np.ones(len(dist), dtype=bool)
    if n_drop:
        keep[np.argsort(-dist, kind="stable")[:n_drop]] = False
    return keep


def mix_oracle(
    labels: np.ndarray, truth: np.ndarray, k: int, *, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``(labels with k random examples set to the truth, their indices)``."""
    y = np.asarray(labels, dtype=np.float64).copy()
    t = np.asarray(truth, dtype=np.float64)
    if y.shape != t.shape:
        raise MindscopeError(f"labels {y.shape} and truth {t.shape} differ in length")
    if not 0 <= k <= len(y):
        raise MindscopeError(f"oracle k must be in [0, {len(y)}], got {k}")
    idx = np.random.default_rng(seed).choice(len(y), k, replace=False)
    y[idx] = t[idx]
    return y, idx
