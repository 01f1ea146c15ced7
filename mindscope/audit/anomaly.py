"""Run anomaly detectors on a task: extract activations, fit on trusted, score held-out clean
and anomalous inputs, and emit results rows (per layer and aggregated over layers).

Rows (``dataset`` = task name, ``split`` = ``"clean-vs-anomalous"``):

* ``audit_auroc`` (95% bootstrap CI) and ``audit_recall@0.01fpr`` (``extra.threshold``,
  ``extra.fpr_realised``) per detector, per layer and for the aggregate (``layer=-1``);
* ``audit_roc_tpr`` and ``audit_hist`` rows of the aggregate score (for the report's figures);
* ``audit_flag_jaccard``: for each pair of detectors, the overlap of the anomalous inputs each
  flags at 1% FPR (intersection over union; ``method`` = ``"a|b"``), and ``audit_score_spearman``,
  the rank correlation of their aggregate scores on the evaluation inputs: where the
  detectors disagree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from mindscope.audit.base import Detector, as_activations
from mindscope.audit.detectors import make_detector
from mindscope.audit.metrics import curve_rows, detection_rows, threshold_at_fpr
from mindscope.audit.tasks import AnomalyTask
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = ["score_task", "evaluate_detectors", "monitor_rows", "DEFAULT_DETECTORS"]

DEFAULT_DETECTORS = ("mahalanobis", "lof", "iforest", "que")


def _scores(det: Detector, clean: Any, anomalous: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Per-layer ``[L, n]`` and aggregate ``[n]`` scores of clean and anomalous inputs.

    A transductive detector (QUE) scores the clean and anomalous inputs as one pool."""
    if det.transductive:
        (xc, _, fc), (xa, _, fa) = as_activations(clean), as_activations(anomalous)
        det.check_source(fc)
        det.check_source(fa)
        per = det._score_checked(torch.cat([xc, xa], dim=1), None)  # [L, m + k]
        m = xc.shape[1]
        agg = det.standardise(per).mean(0)
        return per[:, :m], per[:, m:], agg[:m], agg[m:]
    pc = det._score_checked(clean, None)
    pa = det._score_checked(anomalous, None)
    return pc, pa, det.standardise(pc).mean(0), det.standardise(pa).mean(0)


def evaluate_detectors(
    trusted: Any,
    clean: Any,
    anomalous: Any,
    *,
    detectors: Sequence[str | Detector] = DEFAULT_DETECTORS,
    layers: Sequence[int] | None = None,
    fpr: float = 0.01,
    n_boot: int = 500,
    seed: int = 0,
    **common: Any,
) -> list[Row]:
    """Fit each detector on ``trusted`` and score ``clean`` vs ``anomalous`` activations
    (``[L, n, d]`` tensors or :class:`mindscope.Activations`); returns the rows described in
    the module docstring. ``layers`` labels the leading axis (default ``0..L-1``)."""
    rows: list[Row] = []
    flagged: dict[str, Tensor] = {}
    aggregates: dict[str, Tensor] = {}
    for spec in detectors:
        det = make_detector(spec) if isinstance(spec, str) else spec
        det.fit(trusted)
        name = det.method
        pc, pa, ac, aa = _scores(det, clean, anomalous)
        lay = list(layers) if layers is not None else list(range(pc.shape[0]))
        note: dict[str, Any] = {"n_trusted": det.n_trusted_}
        if det.transductive:  # its score of one input depends on the rest of the pool
            m, k = int(pc.shape[1]), int(pa.shape[1])
            note["caveat"] = (
                f"transductive: scored as one pool of {m} clean and {k} anomalous inputs "
                f"({k / (m + k):.0%} anomalous); its scores depend on that share"
            )
        base = {**common, "extra": json.dumps(note)}
        rows += detection_rows(
            pc, pa, method=name, layers=lay, fprs=(fpr,), n_boot=n_boot, seed=seed, **base
        )
        agg_extra = json.dumps({**note, "layers": lay})
        rows += detection_rows(
            ac,
            aa,
            method=name,
            fprs=(fpr,),
            n_boot=n_boot,
            seed=seed,
            **{**common, "extra": agg_extra},
        )
        rows += curve_rows(ac, aa, method=name, **common)
        flagged[name] = aa > threshold_at_fpr(ac, fpr)
        aggregates[name] = torch.cat([ac, aa])
    names = list(flagged)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            inter = int((flagged[a] & flagged[b]).sum())
            union = int((flagged[a] | flagged[b]).sum())
            rows.append(
                Row(
                    metric="audit_flag_jaccard",
                    value=inter / union if union else float("nan"),
                    method=f"{a}|{b}",
                    n=int(flagged[a].numel()),
                    **{**common, "extra": json.dumps({"both": inter, "either": union})},
                )
            )
            rows.append(
                Row(
                    metric="audit_score_spearman",
                    value=_spearman(aggregates[a], aggregates[b]),
                    method=f"{a}|{b}",
                    n=int(aggregates[a].numel()),
                    **common,
                )
            )
    return rows


def monitor_rows(
    trusted: Any,
    clean: Any,
    anomalous: Any,
    *,
    detector: str = "mahalanobis",
    fpr: float = 0.01,
    calibration_share: float = 0.25,
    **common: Any,
) -> list[Row]:
    """A :class:`~mindscope.audit.monitor.Monitor` on ``detector``'s aggregate score: fitted on
    the first ``1 - calibration_share`` of ``trusted``, its threshold set on the rest for
    ``fpr``; threshold, realised FPR (on ``clean``) and recall (on ``anomalous``) as rows."""
    from mindscope.audit.monitor import Monitor

    xt, _, fp = as_activations(trusted)
    n_cal = int(round(calibration_share * xt.shape[1]))
    if n_cal < 1 or n_cal >= xt.shape[1]:
        raise MindscopeError("monitor: the trusted set is too small to hold out a calibration part")
    det = make_detector(detector).fit(xt[:, : xt.shape[1] - n_cal], source=fp)
    mon = Monitor(det, fpr=fpr).calibrate(xt[:, xt.shape[1] - n_cal :])
    (xc, _, fc), (xa, _, fa) = as_activations(clean), as_activations(anomalous)
    det.check_source(fc)
    det.check_source(fa)
    return mon.evaluate(xc, xa, **common)


def _spearman(a: Tensor, b: Tensor) -> float:
    ra = a.argsort().argsort().double()
    rb = b.argsort().argsort().double()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / (ra.norm() * rb.norm()).clamp_min(1e-300))


def score_task(
    h: Any,
    task: AnomalyTask,
    *,
    detectors: Sequence[str | Detector] = DEFAULT_DETECTORS,
    layers: str | Sequence[int] = "blocks",
    fpr: float = 0.01,
    n_boot: int = 500,
    seed: int = 0,
    monitor: str | None = "mahalanobis",
    progress: bool = False,
) -> list[Row]:
    """Extract ``task``'s prompts on model ``h`` (last token) and :func:`evaluate_detectors`.

    Args:
        layers: ``"blocks"`` (every block output ``1..n_layers``: the embedding of the last
            token is the same for every prompt), ``"all"``, or a list of layer indices.
    """
    from mindscope.activations import extract

    lay: Any = list(range(1, h.n_layers + 1)) if layers == "blocks" else layers
    kw = {"layers": lay, "position": "last", "progress": progress}
    acts = [extract(h, p, **kw) for p in (task.trusted, task.clean, task.anomalous)]
    common = {"model": h.name, "revision": h.revision or "", "dataset": task.name}
    rows = evaluate_detectors(
        *acts,
        detectors=detectors,
        layers=acts[0].layers,
        fpr=fpr,
        n_boot=n_boot,
        seed=seed,
        split="clean-vs-anomalous",
        **common,
    )
    if monitor:
        rows += monitor_rows(*acts, detector=monitor, fpr=fpr, split="held-out", **common)
    return rows
