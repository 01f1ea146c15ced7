"""Audit metrics: AUROC with a bootstrap interval, recall at a fixed false-positive rate, ROC
curves and score histograms, all as results-table rows.

Convention: a score is higher for "more suspicious"; *negatives* are trusted-distribution
(clean) held-out inputs, *positives* the anomalous / untrusted ones. AUROC intervals come
from :func:`mindscope.probes.metrics.bootstrap_auroc_ci`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes import bootstrap_auroc_ci
from mindscope.results import Row

__all__ = [
    "threshold_at_fpr",
    "recall_at_fpr",
    "roc_points",
    "detection_rows",
    "curve_rows",
    "precision_at_k",
]


def threshold_at_fpr(clean: Tensor, fpr: float) -> Tensor:
    """The threshold ``t`` ``[...]`` such that flagging ``score > t`` flags at most a fraction
    ``fpr`` of ``clean [..., m]``: the ``(floor(fpr m) + 1)``-th largest clean score."""
    if not 0 <= fpr < 1:
        raise MindscopeError(f"fpr must be in [0, 1), got {fpr}")
    c = torch.as_tensor(clean).double()
    m = c.shape[-1]
    if m == 0:
        raise MindscopeError("no clean scores to set a threshold on")
    k = min(int(math.floor(fpr * m)) + 1, m)
    return c.topk(k, dim=-1).values[..., -1]


def recall_at_fpr(
    clean: Tensor, anomalous: Tensor, fpr: float = 0.01
) -> tuple[Tensor, Tensor, Tensor]:
    """Recall of ``anomalous [..., k]`` at the threshold that flags at most ``fpr`` of
    ``clean [..., m]``.

    Returns:
        ``recall, threshold, realised_fpr``, each ``[...]``.
    """
    t = threshold_at_fpr(clean, fpr)
    a = torch.as_tensor(anomalous).double()
    c = torch.as_tensor(clean).double()
    recall = (a > t[..., None]).double().mean(-1)
    realised = (c > t[..., None]).double().mean(-1)
    return recall, t, realised


def roc_points(clean: Tensor, anomalous: Tensor, n_points: int = 41) -> list[tuple[float, float]]:
    """``(fpr, tpr)`` pairs of the ROC curve of 1-D scores, at ``n_points`` thresholds spread
    over the score quantiles (plus both ends)."""
    c = torch.as_tensor(clean).double().flatten()
    a = torch.as_tensor(anomalous).double().flatten()
    both = torch.cat([c, a])
    qs = torch.quantile(both, torch.linspace(0, 1, n_points, dtype=torch.float64))
    pts = {(1.0, 1.0), (0.0, 0.0)}
    for t in qs.tolist():
        pts.add((float((c >= t).double().mean()), float((a >= t).double().mean())))
    return sorted(pts)


def detection_rows(
    clean: Tensor,
    anomalous: Tensor,
    *,
    method: str,
    layers: Sequence[int] | None = None,
    fprs: Sequence[float] = (0.01,),
    n_boot: int = 500,
    seed: int = 0,
    **common: Any,
) -> list[Row]:
    """AUROC (95% bootstrap CI) and recall at each FPR of ``fprs``, per layer.

    Args:
        clean: ``[n_clean]`` or ``[layers, n_clean]`` scores of held-out trusted inputs.
        anomalous: same layout, ``[.., n_anom]``.
        method: detector name for the ``method`` column.
        layers: layer index of each leading row (``None``/1-D: the aggregate, layer -1).
        common: other Row fields (model, dataset, split, extra, ...).
    """
    c = torch.as_tensor(clean).double()
    a = torch.as_tensor(anomalous).double()
    if c.ndim == 1:
        c, a = c[None], a[None]
        layers = [-1]
    layers = list(layers) if layers is not None else list(range(c.shape[0]))
    if c.shape[-1] < 2 or a.shape[-1] < 2:
        raise MindscopeError("need at least 2 clean and 2 anomalous inputs to score a detector")
    s = torch.cat([c, a], -1)  # [L, m + k]
    y = torch.cat([torch.zeros(c.shape[-1]), torch.ones(a.shape[-1])]).double()
    auc, lo, hi = bootstrap_auroc_ci(s, y, n_boot=n_boot, seed=seed)
    n = int(s.shape[-1])
    rows: list[Row] = []
    for i, layer in enumerate(layers):
        rows.append(
            Row(
                metric="audit_auroc",
                value=float(auc[i]),
                ci_low=float(lo[i]),
                ci_high=float(hi[i]),
                method=method,
                layer=int(layer),
                n=n,
                **common,
            )
        )
        for f in fprs:
            rec, t, real = recall_at_fpr(c[i], a[i], f)
            extra = _merge_extra(common, {"threshold": float(t), "fpr_realised": float(real)})
            rows.append(
                Row(
                    metric=f"audit_recall@{f:g}fpr",
                    value=float(rec),
                    method=method,
                    layer=int(layer),
                    n=n,
                    **{**common, "extra": extra},
                )
            )
    return rows


def curve_rows(
    clean: Tensor, anomalous: Tensor, *, method: str, bins: int = 30, **common: Any
) -> list[Row]:
    """Rows for the report's figures of 1-D scores: the ROC curve (``metric="audit_roc_tpr"``, value
    = TPR, ``extra.fpr``) and histograms of both groups on shared bins (``metric="audit_hist"``,
    value = count, ``extra.group`` in ``clean``/``anomalous``, ``extra.lo``/``extra.hi``)."""
    c = torch.as_tensor(clean).double().flatten()
    a = torch.as_tensor(anomalous).double().flatten()
    rows = [
        Row(
            metric="audit_roc_tpr",
            value=tpr,
            method=method,
            layer=-1,
            n=len(c) + len(a),
            **{**common, "extra": _merge_extra(common, {"fpr": fpr})},
        )
        for fpr, tpr in roc_points(c, a)
    ]
    both = torch.cat([c, a])
    lo_q, hi_q = torch.quantile(both, torch.tensor([0.0, 0.99], dtype=torch.float64)).tolist()
    if hi_q <= lo_q:
        hi_q = lo_q + 1.0
    edges = torch.linspace(lo_q, hi_q, bins + 1, dtype=torch.float64)
    for group, s in (("clean", c), ("anomalous", a)):
        counts = torch.histc(s.clamp(lo_q, hi_q), bins=bins, min=lo_q, max=hi_q)
        for b in range(bins):
            extra = {"group": group, "lo": float(edges[b]), "hi": float(edges[b + 1])}
            rows.append(
                Row(
                    metric="audit_hist",
                    value=float(counts[b]),
                    method=method,
                    layer=-1,
                    n=len(s),
                    **{**common, "extra": _merge_extra(common, extra)},
                )
            )
    return rows


def precision_at_k(order: Sequence[int], positive: Sequence[bool], k: int) -> float:
    """Fraction of positives among the first ``k`` indices of a ranking ``order``."""
    if k < 1 or k > len(order):
        raise MindscopeError(f"precision@{k}: the ranking has {len(order)} items")
    return sum(bool(positive[i]) for i in order[:k]) / k


def _merge_extra(common: dict[str, Any], more: dict[str, Any]) -> str:
    base = json.loads(common["extra"]) if common.get("extra") else {}
    return json.dumps({**base, **more}, sort_keys=True)
