"""The split-conformal monitor: its FPR guarantee against the closed form, its interval, the
shift test and warning, and its one-line errors."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from mindscope.audit.monitor import (
    Monitor,
    MonitorShiftWarning,
    _log_beta_binom,
    conformal_threshold,
    exceedance_pvalue,
    min_calibration,
    wilson_interval,
)
from mindscope.errors import MindscopeError


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_conformal_threshold_keeps_the_false_positive_rate_on_exchangeable_data(fpr: float) -> None:
    """Over many calibration draws the expected held-out FPR is the closed form
    ``(n + 1 - k) / (n + 1)`` with ``k = ceil((n + 1)(1 - fpr))``: in ``[fpr - 1/(n+1), fpr]``."""
    gen = torch.Generator().manual_seed(0)
    n, m, draws = 199, 2000, 300
    realised = []
    for _ in range(draws):
        mon = Monitor(_identity, fpr=fpr).calibrate(torch.randn(n, generator=gen))
        realised.append(float(mon.flag(torch.randn(m, generator=gen)).double().mean()))
    k = math.ceil((n + 1) * (1 - fpr))
    expected = (n + 1 - k) / (n + 1)
    mean = sum(realised) / draws
    assert fpr - 1 / (n + 1) <= expected <= fpr
    # sd of the mean over draws: the Beta(n+1-k, k) sd / sqrt(draws) ~ 0.0004 / 0.0009
    assert mean == pytest.approx(expected, abs=4 * math.sqrt(expected / n / draws) + 1e-3)


def test_threshold_is_the_conformal_order_statistic() -> None:
    s = torch.arange(1, 100, dtype=torch.float64)  # 99 scores 1..99
    assert conformal_threshold(s, 0.01) == 99.0  # k = ceil(100 * 0.99) = 99
    assert conformal_threshold(s, 0.05) == 95.0  # k = ceil(100 * 0.95) = 95
    assert min_calibration(0.01) == 99 and min_calibration(0.05) == 19
    with pytest.raises(MindscopeError, match="at least 99 calibration"):
        conformal_threshold(s[:98], 0.01)


def test_wilson_interval_and_exceedance_test() -> None:
    lo, hi = wilson_interval(10, 1000)
    assert lo < 0.01 < hi and hi - lo < 0.02
    # the beta-binomial is a distribution and the p-value is largest near its mean
    n, k, m = 199, 190, 400
    total = sum(math.exp(_log_beta_binom(j, m, n + 1 - k, k)) for j in range(m + 1))
    assert total == pytest.approx(1.0, abs=1e-9)
    assert exceedance_pvalue(20, m, n, k) > 0.5  # 20 / 400 = the mean (n + 1 - k) / (n + 1)
    assert exceedance_pvalue(80, m, n, k) < 1e-3


def test_shift_warning_fires_on_a_shifted_clean_set_and_rarely_without() -> None:
    gen = torch.Generator().manual_seed(1)
    mon = Monitor(_identity, fpr=0.05).calibrate(torch.randn(500, generator=gen))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning on data of the calibration distribution
        rows = {r.metric: r for r in mon.evaluate(torch.randn(400, generator=gen))}
    assert rows["audit_monitor_fpr"].ci_low <= 0.05 <= rows["audit_monitor_fpr"].ci_high
    assert rows["audit_monitor_shift"].value > 0.01
    with pytest.warns(MonitorShiftWarning, match="shifted"):
        rows = {r.metric: r for r in mon.evaluate(torch.randn(400, generator=gen) + 1.0)}
    assert rows["audit_monitor_shift"].value < 0.01
    assert rows["audit_monitor_fpr"].ci_low > 0.05
    # false alarms: at a 1% level, few of 100 unshifted held-out sets trip it
    alarms = 0
    for _ in range(100):
        m = Monitor(_identity, fpr=0.05).calibrate(torch.randn(300, generator=gen))
        alarms += m.shift_test(torch.randn(300, generator=gen))["pvalue"] < 0.01
    assert alarms <= 5


def test_monitor_errors_are_one_line() -> None:
    for rate in (0, 1, -0.5, 2.0):
        with pytest.raises(MindscopeError, match=r"must be in \(0, 1\)"):
            Monitor(_identity, fpr=rate)
    with pytest.raises(MindscopeError, match="calibration split is empty"):
        Monitor(_identity, fpr=0.05).calibrate(torch.zeros(0))
    with pytest.raises(MindscopeError, match="not calibrated"):
        Monitor(_identity).shift_test(torch.zeros(3))


def test_combined_ranking_and_precision_recall_rows_on_a_planted_pool() -> None:
    """A pool where the reporter errs on half the trusted-looking inputs: combining its
    disagreement with an anomaly score puts the planted positives (disagreeing *and*
    anomalous) first; average precision is the closed form on a perfect ranking."""
    from types import SimpleNamespace

    from mindscope.audit.disagree import (
        combine_ranks,
        precision_recall_rows,
        rank_disagreements,
    )

    n = 400
    gen = torch.Generator().manual_seed(0)
    positive = torch.zeros(n, dtype=torch.bool)
    positive[:50] = True
    anomalous = torch.zeros(n, dtype=torch.bool)
    anomalous[:100] = True  # 50 positives + 50 anomalous inputs the reporter agrees on
    reporter_errs = torch.zeros(n, dtype=torch.bool)
    reporter_errs[100:200] = True  # 100 ordinary inputs where the reporter merely errs
    gap = torch.where(positive | reporter_errs, 0.9, 0.1) + 0.05 * torch.rand(n, generator=gen)
    anomaly = anomalous.double() * 3 + torch.randn(n, generator=gen, dtype=torch.float64) * 0.3
    q = torch.full((n,), 0.95, dtype=torch.float64)
    cred = (q - gap).clamp(0, 1)
    pairs = [SimpleNamespace(prompt=str(i), meta={}) for i in range(n)]
    lo = torch.logit(q)
    alone = [d.index for d in rank_disagreements(cred, lo, pairs)][:50]
    both = [d.index for d in rank_disagreements(cred, lo, pairs, anomaly=anomaly)][:50]
    p_alone = float(positive[alone].double().mean())
    p_both = float(positive[both].double().mean())
    # the reporter's errors crowd the top without the anomaly score (1/3 of the top-150 gaps
    # are positives); with it, only errs that also look anomalous by chance stay in front
    assert p_alone < 0.6 and p_both >= 0.8
    ranks = combine_ranks(torch.tensor([1.0, 2.0, 2.0, 4.0]))
    assert ranks.tolist() == pytest.approx([0.25, 0.625, 0.625, 1.0])

    def ap_of(order: list[int]) -> float:
        rows = precision_recall_rows(order, positive.tolist(), method="m")
        return next(r.value for r in rows if r.metric == "audit_average_precision")

    assert ap_of(list(range(n))) == 1.0  # the positives first
    worst = list(range(50, n)) + list(range(50))  # the positives last: AP = mean j / (350 + j)
    assert ap_of(worst) == pytest.approx(sum(j / (350 + j) for j in range(1, 51)) / 50)
    with pytest.raises(MindscopeError, match="anomaly scores must be"):
        rank_disagreements(cred, lo, pairs, anomaly=anomaly[:3])
    # the gate: a monitor calibrated on trusted-looking inputs flags the anomalous ones; they
    # come first, each group ordered by the gap, so the 50 positives fill the top but for the
    # ordinary inputs the 1% gate lets through that also have a large gap (one here)
    from mindscope.audit.monitor import Monitor

    trusted = torch.randn(300, generator=gen, dtype=torch.float64) * 0.3
    mon = Monitor(lambda x: x, fpr=0.01).calibrate(trusted)
    flags = mon.flag(anomaly)
    gated = rank_disagreements(cred, lo, pairs, anomaly=anomaly, flagged=flags)
    top = [d.index for d in gated][:50]
    assert float(positive[top].double().mean()) >= 0.95 > p_both
    assert all(d.flagged for d in gated[:50]) and not gated[-1].flagged
    assert [d.score for d in gated[:50]] == sorted((d.score for d in gated[:50]), reverse=True)
    with pytest.raises(MindscopeError, match="flagged must be"):
        rank_disagreements(cred, lo, pairs, flagged=flags[:3])
    with pytest.raises(MindscopeError, match="flagged must be"):
        rank_disagreements(cred, lo, pairs, flagged=flags.double())
