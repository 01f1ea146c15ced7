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

import dataclasses
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

__all__ = [
    "score_task",
    "evaluate_detectors",
    "monitor_rows",
    "DEFAULT_DETECTORS",
    "MONITOR_FPRS",
]

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


MONITOR_FPRS = (0.01, 0.05)
"""Target false-positive rates of the monitor rows."""


def monitor_rows(
    trusted: Any,
    clean: Any,
    anomalous: Any,
    *,
    detector: str = "mahalanobis",
    fprs: Sequence[float] = MONITOR_FPRS,
    split_shares: tuple[float, float] = (0.2, 0.2),
    seed: int = 0,
    warn: bool = True,
    **common: Any,
) -> list[Row]:
    """:class:`~mindscope.audit.monitor.Monitor` rows on ``detector``'s aggregate score.

    ``trusted`` is shuffled (``seed``) and split three ways: the detector is fitted on the
    first part, the split-conformal threshold is set on a calibration part (share
    ``split_shares[0]``) for each target in ``fprs``, and a test part (``split_shares[1]``)
    measures the FPR where the guarantee holds. Rows (``method = "monitor:<det>@<fpr>"``, see
    :meth:`Monitor.evaluate`), by ``split``:

    * ``trusted-heldout``: FPR on the trusted test part (exchangeable with the calibration set);
    * ``clean``: FPR on the task's held-out ``clean`` inputs with the same threshold, with the
      shift test (a :class:`~mindscope.audit.monitor.MonitorShiftWarning` when they shifted);
    * ``clean-recalibrated``: the threshold set on a random half of ``clean``, FPR on the
      other half (calibrating on the deployment distribution).

    Recall on ``anomalous`` comes with each."""
    from mindscope.audit.monitor import Monitor, min_calibration

    xt, _, fp = as_activations(trusted)
    (xc, _, fc), (xa, _, fa) = as_activations(clean), as_activations(anomalous)
    n = xt.shape[1]
    need = max(min_calibration(f) for f in fprs)
    n_cal, n_test = (int(round(s * n)) for s in split_shares)
    n_cal = max(n_cal, need)  # never a calibration part too small for the smallest rate
    if n_test < 1 or n - n_cal - n_test < 2:
        raise MindscopeError(
            f"monitor: {n} trusted inputs cannot hold a fit part, a test part and a calibration "
            f"part of at least {need} (for a {min(fprs):g} FPR)"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    i_fit, i_cal = perm[: n - n_cal - n_test], perm[n - n_cal - n_test : n - n_test]
    i_test = perm[n - n_test :]
    det = make_detector(detector).fit(xt[:, i_fit], source=fp)
    det.check_source(fc)
    det.check_source(fa)
    half = xc.shape[1] // 2
    perm_c = torch.randperm(xc.shape[1], generator=torch.Generator().manual_seed(seed + 1))
    rows: list[Row] = []
    for f in fprs:
        mon = Monitor(det, fpr=f)
        mon.calibrate(xt[:, i_cal])
        tag = f"monitor:{det.method}@{f:g}"
        sizes = {"n_fit": len(i_fit), "n_calibration": len(i_cal)}
        for split, x in (("trusted-heldout", xt[:, i_test]), ("clean", xc)):
            rows += [
                dataclasses.replace(r, method=tag)
                for r in mon.evaluate(
                    x, xa, warn=warn and split == "clean", split=split, extra=sizes, **common
                )
            ]
        if half >= min_calibration(f):
            re = Monitor(det, fpr=f).calibrate(xc[:, perm_c[:half]])
            rows += [
                dataclasses.replace(r, method=tag)
                for r in re.evaluate(
                    xc[:, perm_c[half:]],
                    xa,
                    warn=False,
                    split="clean-recalibrated",
                    extra={"n_fit": len(i_fit), "n_calibration": half},
                    **common,
                )
            ]
    return rows


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
    monitor_fprs: Sequence[float] = MONITOR_FPRS,
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
        rows += monitor_rows(*acts, detector=monitor, fprs=monitor_fprs, seed=seed, **common)
    return rows
