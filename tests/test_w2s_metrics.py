"""PGR, slices, misfit-gain, the paired test and the label interventions against hand-computed
values and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mindscope.errors import MindscopeError
from mindscope.w2s import (
    ce_loss,
    get_loss,
    logconf_loss,
    misfit_gain,
    mix_oracle,
    paired_sign_flip,
    pgr,
    pgr_ci,
    probe_filter,
    slice_accuracy,
)


def test_pgr_by_hand() -> None:
    assert pgr(0.6, 0.8, 1.0) == pytest.approx(0.5)
    assert pgr(0.7, 0.7, 0.9) == 0.0
    assert pgr(0.5, 1.0, 0.75) == pytest.approx(2.0)
    assert math.isnan(pgr(0.8, 0.9, 0.8))


def test_pgr_ci_accuracy_hand_case() -> None:
    # 10 examples: weak right on 6, student on 8, ceiling on all 10 -> PGR 0.5 exactly
    y = np.array([1, 0] * 5, dtype=float)
    weak = y.copy()
    weak[:4] = 1 - weak[:4]
    student = y.copy()
    student[:2] = 1 - student[:2]
    res = pgr_ci(y, weak, student, y, metric="accuracy", n_boot=200, min_gap=0.0)
    assert (res.weak, res.student, res.ceiling) == pytest.approx((0.6, 0.8, 1.0))
    assert res.value == pytest.approx(0.5)
    assert res.refused is None
    assert res.ci_low <= 0.5 <= res.ci_high


def test_pgr_ci_seeds_average_before_the_ratio() -> None:
    y = np.array([1, 0] * 10, dtype=float)
    rng = np.random.default_rng(0)
    weak = np.where(rng.random(20) < 0.3, 1 - y, y)
    students = np.stack([np.where(rng.random(20) < f, 1 - y, y) for f in (0.1, 0.2, 0.0)])
    res = pgr_ci(y, weak, students, y, metric="accuracy", n_boot=100, min_gap=0.0)
    acc = [(s == y).mean() for s in students]
    w = (weak == y).mean()
    assert res.value == pytest.approx((np.mean(acc) - w) / (1 - w))
    assert res.n_seeds == 3


def test_pgr_refused_when_weak_is_perfect_or_ceiling_below() -> None:
    y = np.array([1, 0] * 20, dtype=float)
    noisy = np.where(np.arange(40) % 5 == 0, 1 - y, y)
    perfect = pgr_ci(y, y, noisy, noisy, metric="accuracy", n_boot=200)
    assert math.isnan(perfect.value)
    assert "below the weak supervisor" in (perfect.refused or "")
    same = pgr_ci(y, noisy, y, noisy, metric="accuracy", n_boot=200)
    assert math.isnan(same.value) and "within noise" in (same.refused or "")


def test_pgr_ci_bad_input() -> None:
    y = np.array([1, 0, 1, 0], dtype=float)
    with pytest.raises(MindscopeError, match="single class"):
        pgr_ci(np.ones(4), y, y, y)
    with pytest.raises(MindscopeError, match=r"\[seeds, 4\]"):
        pgr_ci(y, y[:3], y, y)
    with pytest.raises(MindscopeError, match="unknown metric"):
        pgr_ci(y, y, y, y, metric="f1")  # type: ignore[arg-type]


def test_slices_by_hand() -> None:
    truth = np.array([1, 1, 0, 0])
    weak = np.array([1, 0, 0, 1])  # right on 0 and 2
    student = np.array([0.9, 0.8, 0.7, 0.1])  # hard: 1, 1, 1, 0
    s = slice_accuracy(truth, weak, student)
    assert s["acc_weak_right"] == pytest.approx(0.5)
    assert s["acc_weak_wrong"] == pytest.approx(1.0)
    assert s["imitation"] == pytest.approx(0.0)
    assert (s["n_weak_right"], s["n_weak_wrong"]) == (2, 2)
    copycat = slice_accuracy(truth, weak, weak.astype(float))
    assert copycat["imitation"] == 1.0 and copycat["acc_weak_right"] == 1.0


def test_misfit_gain_by_hand() -> None:
    mg = misfit_gain(np.array([1.0, 0.0]), np.array([0.6, 0.6]), np.array([0.8, 0.2]))
    assert mg["err_weak"] == pytest.approx(0.26)
    assert mg["err_student"] == pytest.approx(0.04)
    assert mg["gain"] == pytest.approx(0.22)
    assert mg["misfit"] == pytest.approx(0.10)
    assert mg["slack"] == pytest.approx(0.12)


def test_misfit_gain_is_an_equality_for_a_projection_onto_a_subspace() -> None:
    # Charikar et al.: the student is the squared-loss projection of the weak labels onto a
    # convex class holding the truth; for a linear subspace the Pythagorean theorem makes
    # gain == misfit exactly (in-sample).
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    truth = x @ rng.normal(size=5)
    weak = truth + rng.normal(size=200)
    coef, *_ = np.linalg.lstsq(x, weak, rcond=None)
    student = x @ coef
    mg = misfit_gain(truth, weak, student)
    assert mg["gain"] > 0
    assert mg["gain"] == pytest.approx(mg["misfit"], rel=1e-9)


def test_paired_sign_flip_exact() -> None:
    diff, p = paired_sign_flip(np.array([1.0, 2, 3, 4, 5]), np.zeros(5))
    assert diff == 3.0
    assert p == pytest.approx(2 / 32)  # only all-plus and all-minus reach |mean| = 3
    _, p_null = paired_sign_flip(np.array([1.0, -1, 1, -1]), np.zeros(4))
    assert p_null == 1.0


def test_losses() -> None:
    logits = torch.tensor([2.0, -1.0, 0.5, -3.0])
    labels = torch.tensor([1.0, 0.0, 0.0, 1.0])
    assert logconf_loss(logits, labels, 0.0) == pytest.approx(float(ce_loss(logits, labels)))
    # after the ramp: target = 0.5 * labels + 0.5 * hardened (top half by credence: 2.0, 0.5)
    target = 0.5 * labels + 0.5 * torch.tensor([1.0, 0.0, 1.0, 0.0])
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert logconf_loss(logits, labels, 0.5) == pytest.approx(float(want))
    half = logconf_loss(logits, labels, 0.05)  # halfway through the 10% ramp: weight 0.25
    target = 0.75 * labels + 0.25 * torch.tensor([1.0, 0.0, 1.0, 0.0])
    want = torch.nn.functional.binary_cross_entropy_with_logits(logits, target)
    assert half == pytest.approx(float(want))
    with pytest.raises(MindscopeError, match="unknown loss 'logconff'.*did you mean 'logconf'"):
        get_loss("logconff")


def test_mix_oracle_and_filter_catch_planted_flips() -> None:
    rng = np.random.default_rng(0)
    truth = (np.arange(400) % 2).astype(float)
    x = torch.tensor(rng.normal(size=(400, 8)) + 3.0 * truth[:, None] * np.eye(8)[0])
    flips = rng.choice(400, 40, replace=False)
    weak = truth.copy()
    weak[flips] = 1 - weak[flips]
    mixed, idx = mix_oracle(weak, truth, 25, seed=1)
    assert len(set(idx.tolist())) == 25 and (mixed[idx] == truth[idx]).all()
    assert ((mixed != weak).sum()) == np.isin(idx, flips).sum()
    keep = probe_filter(x.float(), weak, fraction=0.1)
    assert (~keep).sum() == 40
    caught = np.isin(np.nonzero(~keep)[0], flips).mean()
    assert caught > 0.7  # a flip is 10% of the data, but most of what is dropped
