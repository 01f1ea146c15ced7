"""Probe monitors: watch a deployed model's activations with a fitted detector or reporter and
flag inputs whose score exceeds a threshold set for a chosen false-positive rate (the
cognitivist version of a trusted monitor in AI-control terms).

::

    mon = Monitor(MahalanobisDetector().fit(x_fit), fpr=0.01).calibrate(x_cal)
    mon.flag(x_live)                          # [n] bool
    mon.evaluate(x_clean_heldout, x_bad)      # rows: threshold, FPR (Wilson CI), recall, shift

The threshold is **split-conformal**: the calibration set must be disjoint from the scorer's
fit set (its scores are then exchangeable with those of new inputs from the same
distribution), and the threshold is the ``ceil((n + 1)(1 - fpr))``-th smallest of its ``n``
scores. For a new input of the calibration distribution, ``P(flag) <= fpr`` (and
``>= fpr - 1/(n + 1)`` for continuous scores). The guarantee holds only on the calibration
distribution: :meth:`Monitor.shift_test` measures whether held-out clean inputs exceed the
threshold more (or less) often than exchangeability allows, and :meth:`Monitor.evaluate` warns
(``MonitorShiftWarning``) when they do.

The scorer is a fitted :class:`~mindscope.audit.base.Detector` (its aggregate over layers when
fitted on several layers) or a fitted reporter (its credence, or ``1 - credence`` with
``flag_high=False``), or any callable ``x -> [n]`` score.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = [
    "Monitor",
    "MonitorShiftWarning",
    "conformal_threshold",
    "min_calibration",
    "wilson_interval",
    "exceedance_pvalue",
]

SHIFT_ALPHA = 0.01
"""Significance level of the shift warning."""


class MonitorShiftWarning(UserWarning):
    """Held-out clean inputs exceed the threshold at a rate the calibration set cannot explain."""


def _check_fpr(fpr: float) -> float:
    f = float(fpr)
    if not 0.0 < f < 1.0:
        raise MindscopeError(f"target false-positive rate must be in (0, 1), got {fpr}")
    return f


def min_calibration(fpr: float) -> int:
    """Smallest calibration set for which a split-conformal threshold at ``fpr`` exists:
    ``ceil((n + 1)(1 - fpr)) <= n``, i.e. ``n >= (1 - fpr) / fpr``."""
    f = _check_fpr(fpr)
    return max(1, math.ceil((1.0 - f) / f - 1e-9))


def conformal_threshold(scores: Tensor, fpr: float) -> float:
    """Split-conformal threshold of calibration ``scores [n]``: the
    ``ceil((n + 1)(1 - fpr))``-th smallest, so that flagging ``score > t`` flags a new
    exchangeable input with probability at most ``fpr``."""
    f = _check_fpr(fpr)
    s = torch.as_tensor(scores).double().flatten()
    n = int(s.numel())
    if n == 0:
        raise MindscopeError("the calibration split is empty")
    if not torch.isfinite(s).all():
        raise MindscopeError("calibration scores contain NaN or inf")
    k = math.ceil((n + 1) * (1.0 - f) - 1e-9)
    if k > n:
        raise MindscopeError(
            f"a {f:g} false-positive rate needs at least {min_calibration(f)} calibration "
            f"inputs, got {n}"
        )
    return float(s.sort().values[k - 1])


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion ``k / n``."""
    if n <= 0:
        return 0.0, 1.0
    z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + confidence / 2)))
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _log_beta_binom(x: int, m: int, a: float, b: float) -> float:
    lg = math.lgamma
    return (
        lg(m + 1)
        - lg(x + 1)
        - lg(m - x + 1)
        + lg(x + a)
        + lg(m - x + b)
        - lg(m + a + b)
        + lg(a + b)
        - lg(a)
        - lg(b)
    )


def exceedance_pvalue(x: int, m: int, n_cal: int, rank: int) -> float:
    """Two-sided p-value of ``x`` of ``m`` new inputs exceeding the ``rank``-th smallest of
    ``n_cal`` calibration scores, if all ``n_cal + m`` scores are exchangeable.

    The mass above that order statistic is ``Beta(n_cal + 1 - rank, rank)``, so the count is
    beta-binomial; the p-value is twice the smaller tail (at most 1)."""
    a, b = float(n_cal + 1 - rank), float(rank)
    pmf = [math.exp(_log_beta_binom(j, m, a, b)) for j in range(m + 1)]
    upper = sum(pmf[x:])
    lower = sum(pmf[: x + 1])
    return min(1.0, 2.0 * min(upper, lower))


def _n_inputs(x: Any) -> int | None:
    """Number of inputs in ``x`` (``[n]``, ``[n, d]``, ``[layers, n, d]`` or a sequence), if
    it can be told without scoring."""
    if isinstance(x, Tensor):
        return int(x.shape[-2]) if x.ndim >= 2 else int(x.shape[0])
    if isinstance(x, list | tuple):
        return len(x)
    return None


class Monitor:
    """Flag inputs scoring above a split-conformal threshold.

    Args:
        scorer: a fitted detector, a fitted reporter, or a callable ``x -> [n]``.
        fpr: target false-positive rate on the calibration distribution, in (0, 1).
        flag_high: flag high scores (default) or low ones (e.g. a reporter's credence that
            an answer is *true*: flag when low).

    Attributes (after ``calibrate``):
        threshold_: flag when ``score > threshold_``.
        calibration_scores_: ``[n]`` float64 calibration scores (for the shift test).
        calibration_fpr_: fraction of the calibration set above the threshold (``<= fpr``).
        n_calibration_: calibration set size.
        rank_: the order statistic used (``ceil((n + 1)(1 - fpr))``).
    """

    threshold_: float
    calibration_scores_: Tensor
    calibration_fpr_: float
    n_calibration_: int
    rank_: int

    def __init__(self, scorer: Any, fpr: float = 0.01, *, flag_high: bool = True) -> None:
        self.scorer = scorer
        self.fpr = _check_fpr(fpr)
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

    def calibrate(self, calibration: Any) -> Monitor:
        """Set the split-conformal threshold on ``calibration`` inputs (clean, and disjoint
        from the scorer's fit set); returns self."""
        if _n_inputs(calibration) == 0:
            raise MindscopeError("Monitor.calibrate: the calibration split is empty")
        s = self.scores(calibration)
        if s.numel() == 0:
            raise MindscopeError("Monitor.calibrate: the calibration split is empty")
        need = min_calibration(self.fpr)
        if s.numel() < need:
            raise MindscopeError(
                f"Monitor.calibrate: a {self.fpr:g} false-positive rate needs at least {need} "
                f"calibration inputs, got {s.numel()}"
            )
        self.threshold_ = conformal_threshold(s, self.fpr)
        n = int(s.numel())
        self.rank_ = math.ceil((n + 1) * (1.0 - self.fpr) - 1e-9)
        self.calibration_scores_ = s.clone()
        self.calibration_fpr_ = float((s > self.threshold_).double().mean())
        self.n_calibration_ = n
        return self

    def _check(self) -> None:
        if not hasattr(self, "threshold_"):
            raise MindscopeError("Monitor is not calibrated; call calibrate(calibration) first")

    def flag(self, x: Any) -> Tensor:
        """``[n]`` bool: which inputs the monitor flags."""
        self._check()
        return self.scores(x) > self.threshold_

    def shift_test(self, clean: Any) -> dict[str, float]:
        """Compare held-out ``clean`` inputs with the calibration set.

        Returns ``{"pvalue", "shift_auroc", "fpr", "n"}``: ``pvalue`` is the two-sided
        :func:`exceedance_pvalue` of their flag count under exchangeability with the
        calibration set (small: the threshold's guarantee does not carry over), and
        ``shift_auroc`` the probability that a held-out score exceeds a calibration score
        (0.5 with no shift; above 0.5: held-out clean inputs look more anomalous)."""
        self._check()
        s = self.scores(clean)
        if s.numel() == 0:
            raise MindscopeError("Monitor.shift_test: the held-out clean set is empty")
        x = int((s > self.threshold_).sum())
        m = int(s.numel())
        p = exceedance_pvalue(x, m, self.n_calibration_, self.rank_)
        c = self.calibration_scores_
        both = torch.cat([c, s])
        ranks = both.argsort().argsort().double() + 1  # ties broken by order: fine for a flag
        u = float(ranks[len(c) :].sum()) - m * (m + 1) / 2
        return {"pvalue": p, "shift_auroc": u / (m * len(c)), "fpr": x / m, "n": float(m)}

    def evaluate(
        self,
        clean: Any,
        anomalous: Any | None = None,
        *,
        confidence: float = 0.95,
        warn: bool = True,
        **common: Any,
    ) -> list[Row]:
        """Rows on held-out data (``method = "monitor:<scorer>"``):

        * ``audit_monitor_threshold``;
        * ``audit_monitor_fpr`` on ``clean`` with its Wilson ``confidence`` interval;
        * ``audit_monitor_shift``: the shift test's p-value (``extra``: ``shift_auroc``,
          ``shifted`` = p < 0.01);
        * ``audit_monitor_recall`` on ``anomalous`` (with its interval), if given.

        ``warn``: issue a :class:`MonitorShiftWarning` when the clean inputs have shifted."""
        self._check()
        fc = self.flag(clean)
        shift = self.shift_test(clean)
        shifted = shift["pvalue"] < SHIFT_ALPHA
        name = getattr(self.scorer, "method", "") or type(self.scorer).__name__
        if shifted and warn:
            warnings.warn(
                f"monitor:{name}: held-out clean FPR {shift['fpr']:.3f} against a target of "
                f"{self.fpr:g} (p = {shift['pvalue']:.2g}): the clean inputs have shifted from "
                "the calibration set; recalibrate on the deployment distribution",
                MonitorShiftWarning,
                stacklevel=2,
            )
        extra = {
            "target_fpr": self.fpr,
            "n_calibration": self.n_calibration_,
            "calibration_fpr": self.calibration_fpr_,
            "shift_pvalue": shift["pvalue"],
            "shift_auroc": shift["shift_auroc"],
            "shifted": bool(shifted),
        }
        more = common.pop("extra", None) or {}
        extra.update(json.loads(more) if isinstance(more, str) else more)
        kw: dict[str, Any] = {
            "method": f"monitor:{name}",
            "extra": json.dumps(extra, sort_keys=True),
            **common,
        }
        k, m = int(fc.sum()), int(fc.numel())
        lo, hi = wilson_interval(k, m, confidence)
        rows = [
            Row(
                metric="audit_monitor_threshold", value=self.threshold_, n=self.n_calibration_, **kw
            ),
            Row(metric="audit_monitor_fpr", value=k / m, ci_low=lo, ci_high=hi, n=m, **kw),
            Row(metric="audit_monitor_shift", value=shift["pvalue"], n=m, **kw),
        ]
        if anomalous is not None:
            fa = self.flag(anomalous)
            ka, ma = int(fa.sum()), int(fa.numel())
            lo, hi = wilson_interval(ka, ma, confidence)
            rows.append(
                Row(
                    metric="audit_monitor_recall",
                    value=ka / max(1, ma),
                    ci_low=lo,
                    ci_high=hi,
                    n=ma,
                    **kw,
                )
            )
        return rows
