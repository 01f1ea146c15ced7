"""Metrics for credences against binary labels, batched over leading axes.

All functions take credences ``p`` and labels ``y`` of shape ``[..., n]`` (labels 0/1; they
broadcast) and return ``[...]``. No scikit-learn dependency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = [
    "roc_auc",
    "accuracy",
    "calibrated_accuracy",
    "expected_calibration_error",
    "bootstrap_auroc_ci",
    "Interval",
]


def _avg_ranks(s: Tensor) -> Tensor:
    """1-based ranks of ``s [..., n]`` along the last axis, ties sharing their mean rank."""
    sorted_s, _ = s.sort(dim=-1)
    left = torch.searchsorted(sorted_s.contiguous(), s.contiguous(), right=False)
    right = torch.searchsorted(sorted_s.contiguous(), s.contiguous(), right=True)
    return (left + right + 1).double() / 2


def roc_auc(p: Tensor, y: Tensor) -> Tensor:
    """Area under the ROC curve (Mann-Whitney, ties count 1/2): ``[..., n] -> [...]``.

    NaN where ``y`` holds a single class.
    """
    p, y = torch.broadcast_tensors(torch.as_tensor(p).double(), torch.as_tensor(y).double())
    n_pos = y.sum(-1)
    n_neg = y.shape[-1] - n_pos
    rank_sum = (_avg_ranks(p) * y).sum(-1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return torch.where((n_pos > 0) & (n_neg > 0), auc, torch.full_like(auc, math.nan))


def accuracy(p: Tensor, y: Tensor, threshold: float = 0.5) -> Tensor:
    """Fraction of examples where ``p > threshold`` matches ``y``: ``[..., n] -> [...]``."""
    p, y = torch.broadcast_tensors(torch.as_tensor(p).double(), torch.as_tensor(y).double())
    return ((p > threshold).double() == y).double().mean(-1)


def calibrated_accuracy(p: Tensor, y: Tensor) -> Tensor:
    """Accuracy with the threshold at the median credence (elk / Mallen et al.).

    Assumes roughly balanced classes; it ignores the reporter's own calibration.
    """
    p, y = torch.broadcast_tensors(torch.as_tensor(p).double(), torch.as_tensor(y).double())
    med = p.median(dim=-1, keepdim=True).values
    return ((p > med).double() == y).double().mean(-1)


def expected_calibration_error(p: Tensor, y: Tensor, n_bins: int = 10) -> Tensor:
    """ECE with ``n_bins`` equal-width bins on [0, 1]: ``sum_b (n_b/n) |mean(y_b) - mean(p_b)|``.

    Bins follow ``sklearn.calibration.calibration_curve(strategy="uniform")``.
    """
    p, y = torch.broadcast_tensors(torch.as_tensor(p).double(), torch.as_tensor(y).double())
    edges = torch.linspace(0, 1, n_bins + 1, dtype=torch.float64)[1:-1]
    idx = torch.bucketize(p.contiguous(), edges, right=True)  # [..., n] in 0..n_bins-1
    one_hot = torch.nn.functional.one_hot(idx, n_bins).double()  # [..., n, B]
    sum_p = (one_hot * p.unsqueeze(-1)).sum(-2)
    sum_y = (one_hot * y.unsqueeze(-1)).sum(-2)
    return (sum_y - sum_p).abs().sum(-1) / p.shape[-1]


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile bootstrap interval."""

    value: float
    low: float
    high: float


def bootstrap_auroc_ci(
    p: Tensor, y: Tensor, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor]:
    """AUROC with a percentile bootstrap interval (examples resampled with replacement).

    Args:
        p: credences ``[..., n]``.
        y: labels ``[n]`` (shared by every leading index).
        n_boot: bootstrap resamples (the same resamples for every leading index).

    Returns:
        ``auroc, low, high``, each ``[...]``.
    """
    p = torch.as_tensor(p).double()
    y = torch.as_tensor(y).double()
    if y.ndim != 1 or y.shape[0] != p.shape[-1]:
        raise MindscopeError(f"labels must be [{p.shape[-1]}], got {tuple(y.shape)}")
    auc = roc_auc(p, y)
    if n_boot <= 0:
        nan = torch.full_like(auc, math.nan)
        return auc, nan, nan
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, y.shape[0], (n_boot, y.shape[0]), generator=gen)  # [B, n]
    lead = p.shape[:-1]
    pb = p.reshape(-1, p.shape[-1])[:, idx]  # [P, B, n]
    yb = y[idx]  # [B, n]
    aucs = roc_auc(pb, yb)  # [P, B]; NaN where a resample has one class
    alpha = (1 - level) / 2
    low = torch.nanquantile(aucs, alpha, dim=-1).reshape(lead)
    high = torch.nanquantile(aucs, 1 - alpha, dim=-1).reshape(lead)
    return auc, low, high
