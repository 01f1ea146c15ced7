"""Reporters recover a planted truth direction; the contract (shapes, batching, save/load)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mindscope.probes import (
    CcsReporter,
    CrcReporter,
    DiffMeanReporter,
    LdaReporter,
    LogisticReporter,
    RandomReporter,
    Reporter,
    load_reporter,
)
from mindscope.probes.metrics import roc_auc
from mindscope.probes.synthetic import planted_pairs

ALL = [LogisticReporter, DiffMeanReporter, LdaReporter, CcsReporter, CrcReporter, RandomReporter]


@pytest.fixture(scope="module")
def data():
    x, y, truth = planted_pairs(800, d=24, layers=3, seed=0)
    xt, yt, _ = planted_pairs(400, d=24, layers=3, seed=1)
    return x, y, xt, yt, truth


@pytest.fixture(scope="module")
def fitted(data):
    x, y, *_ = data
    return {k: k().fit(x, y) for k in ALL}


@pytest.mark.parametrize(
    "klass", [LogisticReporter, DiffMeanReporter, CcsReporter, LdaReporter, CrcReporter]
)
def test_recovers_planted_direction(fitted, data, klass):
    _, _, xt, yt, truth = data
    rep = fitted[klass]
    cos = (rep.direction() * truth).sum(-1)  # [layers]; sign fixed by labels
    assert cos.min() >= 0.9, cos
    auc = roc_auc(rep.predict_proba(xt), yt)
    assert auc.min() >= 0.95, auc


def test_distractor_fools_a_single_text_direction(data):
    # The distractor dominates raw variance: PCA of the single texts would find it, not the truth.
    x, _, _, _, truth = data
    flat = x[0].reshape(-1, x.shape[-1])
    top = torch.linalg.svd(flat - flat.mean(0), full_matrices=False).Vh[0]
    assert abs(float(top @ truth[0])) < 0.5


def test_random_baseline_is_near_chance_in_high_dimension():
    x, y, _ = planted_pairs(300, d=256, layers=2, strength=0.6, seed=3)
    xt, yt, _ = planted_pairs(300, d=256, layers=2, strength=0.6, seed=4)
    rand = roc_auc(RandomReporter(seed=0).fit(x, y).predict_proba(xt), yt)
    lr = roc_auc(DiffMeanReporter().fit(x, y).predict_proba(xt), yt)
    assert (rand - 0.5).abs().max() < 0.15
    assert (lr - rand).min() > 0.2


@pytest.mark.parametrize("klass", ALL)
def test_shapes_and_layouts(fitted, data, klass):
    x, y, xt, *_ = data
    p = fitted[klass].predict_proba(xt)
    assert p.shape == (3, 400) and ((p >= 0) & (p <= 1)).all()
    one = klass().fit(x[1], y)  # single layer [n, 2, d]
    q = one.predict_proba(xt[1])
    assert q.shape == (400,)
    # numpy input gives the same answer as torch input
    q_np = one.predict_proba(xt[1].numpy())
    torch.testing.assert_close(q, q_np)


@pytest.mark.parametrize("klass", [LogisticReporter, DiffMeanReporter, LdaReporter, CrcReporter])
def test_batched_over_layers_equals_layer_by_layer(data, klass):
    x, y, xt, *_ = data
    params = {"C": 1.0} if klass is LogisticReporter else {}
    batched = klass(**params).fit(x, y).predict_proba(xt)
    for layer in range(x.shape[0]):
        single = klass(**params).fit(x[layer], y).predict_proba(xt[layer])
        torch.testing.assert_close(batched[layer], single, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("klass", [LogisticReporter, DiffMeanReporter, LdaReporter])
def test_single_text_inputs(klass):
    x, y, truth = planted_pairs(300, d=16, layers=2, seed=5)
    texts = x[:, :, 1]  # [layers, n, d]: the "positive" completion only
    rep = klass().fit(texts, y)
    assert rep.predict_proba(texts).shape == (2, 300)
    # one side alone carries +/- strength/2 against content noise and the distractor;
    # DiffMean ignores the covariance, so the distractor hurts it most
    floor = 0.55 if klass is DiffMeanReporter else 0.75
    assert roc_auc(rep.predict_proba(texts), y).min() > floor


def test_does_not_mutate_inputs(data):
    x, y, *_ = data
    x0, y0 = x.clone(), y.clone()
    for klass in ALL:
        klass().fit(x, y)
    assert torch.equal(x, x0) and torch.equal(y, y0)


def test_ccs_without_labels_is_consistent_up_to_sign(data):
    x, _, xt, yt, truth = data
    rep = CcsReporter().fit(x)
    assert not rep.labels_used_
    auc = roc_auc(rep.predict_proba(xt), yt)
    assert torch.maximum(auc, 1 - auc).min() >= 0.95
    assert (rep.direction() * truth).sum(-1).abs().min() >= 0.9
    # consistency: credence of the pair (x1, x0) swapped is 1 - credence. Only without the
    # per-side offset: with it, swapped sides are normalised with the other side's statistics.
    x0, _, _ = planted_pairs(800, d=24, layers=3, seed=0, side_offset=0.0)
    xt0, _, _ = planted_pairs(400, d=24, layers=3, seed=1, side_offset=0.0)
    rep0 = CcsReporter().fit(x0)
    torch.testing.assert_close(
        rep0.predict_proba(xt0.flip(2)), 1 - rep0.predict_proba(xt0), atol=0.05, rtol=0
    )


def test_ccs_keeps_lowest_loss_restart(data):
    x, y, *_ = data
    rep = CcsReporter(n_restarts=4, n_steps=40, pca_init=False).fit(x, y)
    assert rep.restart_losses_.shape == (3, 4)
    torch.testing.assert_close(rep.loss_, rep.restart_losses_.min(dim=1).values)


def test_logistic_cv_picks_a_strength_per_layer(data):
    x, y, *_ = data
    rep = LogisticReporter(Cs=(1e-4, 1.0), cv=3).fit(x, y)
    assert rep.C_.shape == (3,)
    # with a clean signal the weakest penalty wins over a crushing one
    assert (rep.C_ == 1.0).all()


@pytest.mark.parametrize("klass", ALL)
def test_save_load_roundtrip(fitted, data, tmp_path, klass):
    _, _, xt, *_ = data
    rep = fitted[klass]
    rep.save(tmp_path / "rep", meta={"model": "toy"})
    assert (tmp_path / "rep" / "config.json").is_file()
    assert not list((tmp_path / "rep").glob("*.pkl")) and not list((tmp_path / "rep").glob("*.pt"))
    back = load_reporter(tmp_path / "rep", expect_meta={"model": "toy"})
    assert type(back) is klass and back.get_params() == rep.get_params()
    torch.testing.assert_close(back.predict_proba(xt), rep.predict_proba(xt))
    assert isinstance(klass.load(tmp_path / "rep"), Reporter)


def test_score_is_auroc(fitted, data):
    _, _, xt, yt, _ = data
    rep = fitted[DiffMeanReporter]
    torch.testing.assert_close(rep.score(xt, yt), roc_auc(rep.predict_proba(xt), yt))
    single = DiffMeanReporter().fit(xt[0], yt)
    assert isinstance(single.score(xt[0], yt), float)


def test_numpy_float64_inputs():
    x, y, _ = planted_pairs(200, d=8, layers=1, seed=7)
    rep = LogisticReporter(C=1.0).fit(x[0].double().numpy(), np.asarray(y))
    assert rep.predict_proba(x[0].numpy()).dtype == torch.float32
