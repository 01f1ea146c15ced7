"""Probe monitors: watch a deployed model's activations with a fitted detector or reporter and
flag inputs whose score exceeds a threshold set for a chosen false-positive rate on trusted data
(the cognitivist version of a trusted monitor in AI-control terms).

::

    mon = Monitor(MahalanobisDetector().fit(x_trusted_fit), fpr=0.01).calibrate(x_trusted_cal)
    mon.flag(x_live)                          # [n] bool
    mon.evaluate(x_trusted_heldout, x_bad)    # threshold, realised FPR and recall on held-out data

The scorer is a fitted :class:`~mindscope.audit.base.Detector` (its aggregate over layers when
fitted on several layers) or a fitted reporter (its credence, or ``1 - credence`` with
``flag_high=False``), or any callable ``x -> [n]`` score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mindscope.audit.metrics import threshold_at_fpr
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = ["Monitor"]


class Monitor:
    """Flag inputs scoring above a threshold calibrated on trusted data.

    Args:
        scorer: a fitted detector, a fitted reporter, or a callable ``x -> [n]``.
        fpr: target false-positive rate on trusted data, in [0, 1).
        flag_high: flag high scores (default) or low ones (e.g. a reporter's credence that
            an answer is *true*: flag when low).

    Attributes (after ``calibrate``):
        threshold_: flag when ``score > threshold_``.
        calibration_fpr_: fraction of the calibration set above the threshold (``<= fpr``).
        n_calibration_: calibration set size.
    """

    threshold_: float
    calibration_fpr_: float
    n_calibration_: int

    def __init__(self, scorer: Any, fpr: float = 0.01, *, flag_high: bool = True) -> None:
        if not 0 <= float(fpr) < 1:
            raise MindscopeError(f"fpr must be in [0, 1), got {fpr}")
        self.scorer = scorer
        self.fpr = float(fpr)
        self.flag_high = bool(flag_high)

    def scores(self, x: Any) -> Tensor:
        """``[n]`` float64 monitor scores (higher = more suspicious)."""
        fn: Callable[[Any], Any]
        if hasattr(self.scorer, "score_aggregate"):
            fn = self.scorer.score_aggregate
        elif hasattr(self.scorer, "predict_proba"):
            fn = self.scorer.predict_proba
        elif callable(self.scorer):
            fn = self.scorer
        else:
            raise MindscopeError(
                "Monitor needs a fitted detector, a fitted reporter or a callable scorer"
            )
        s = torch.as_tensor(fn(x)).double()
        if s.ndim != 1:
            raise MindscopeError(
                f"monitor scores must be [n], got {tuple(s.shape)}; fit the reporter on one layer"
            )
        return s if self.flag_high else -s

    def calibrate(self, trusted: Any) -> Monitor:
        """Set the threshold on trusted inputs (held out from the scorer's fit); returns self."""
        s = self.scores(trusted)
        if s.numel() == 0:
            raise MindscopeError("Monitor.calibrate: the trusted calibration set is empty")
        if self.fpr > 0 and s.numel() < round(1 / self.fpr):
            raise MindscopeError(
                f"Monitor.calibrate: a {self.fpr:g} false-positive rate needs at least "
                f"{round(1 / self.fpr)} trusted calibration inputs, got {s.numel()}"
            )
        self.threshold_ = float(threshold_at_fpr(s, self.fpr))
        self.calibration_fpr_ = float((s > self.threshold_).double().mean())
        self.n_calibration_ = int(s.numel())
        return self

    def flag(self, x: Any) -> Tensor:
        """``[n]`` bool: which inputs the monitor flags."""
        if not hasattr(self, "threshold_"):
            raise MindscopeError("Monitor is not calibrated; call calibrate(trusted) first")
        return self.scores(x) > self.threshold_

    def evaluate(self, clean: Any, anomalous: Any, **common: Any) -> list[Row]:
        """Rows on held-out data: ``audit_monitor_threshold``, ``audit_monitor_fpr`` (on
        ``clean``) and ``audit_monitor_recall`` (on ``anomalous``); ``method`` is
        ``"monitor:<scorer>"``."""
        fc = self.flag(clean)
        fa = self.flag(anomalous)
        name = getattr(self.scorer, "method", "") or type(self.scorer).__name__
        kw: dict[str, Any] = {"method": f"monitor:{name}", **common}
        extra = {"target_fpr": self.fpr, "n_calibration": self.n_calibration_}
        import json

        kw.setdefault("extra", json.dumps(extra, sort_keys=True))
        return [
            Row(
                metric="audit_monitor_threshold", value=self.threshold_, n=self.n_calibration_, **kw
            ),
            Row(
                metric="audit_monitor_fpr", value=float(fc.double().mean()), n=int(fc.numel()), **kw
            ),
            Row(
                metric="audit_monitor_recall",
                value=float(fa.double().mean()),
                n=int(fa.numel()),
                **kw,
            ),
        ]
