"""Cross-checks against scikit-learn (an independent implementation; dev dependency only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve  # noqa: E402
from sklearn.covariance import ledoit_wolf_shrinkage  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from mindscope.probes import LogisticReporter  # noqa: E402
from mindscope.probes.lda import ledoit_wolf_shrinkage as ms_lw  # noqa: E402
from mindscope.probes.metrics import (  # noqa: E402
    bootstrap_auroc_ci,
    calibrated_accuracy,
    expected_calibration_error,
    roc_auc,
)
from mindscope.probes.synthetic import planted_pairs  # noqa: E402


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_logistic_matches_sklearn_same_c(C):
    x, y, _ = planted_pairs(300, d=12, layers=2, strength=0.5, seed=11)
    xt, _, _ = planted_pairs(200, d=12, layers=2, strength=0.5, seed=12)
    rep = LogisticReporter(C=C, normalize=False).fit(x, y)
    ours = rep.predict_proba(xt)  # [2, 200]
    for layer in range(2):
        diff = (x[layer, :, 1] - x[layer, :, 0]).double().numpy()
        diff_t = (xt[layer, :, 1] - xt[layer, :, 0]).double().numpy()
        sk = LogisticRegression(C=C, tol=1e-10, max_iter=10_000).fit(diff, y.numpy())
        np.testing.assert_allclose(ours[layer].numpy(), sk.predict_proba(diff_t)[:, 1], atol=2e-4)
        np.testing.assert_allclose(rep.coef_[layer, 0].numpy(), sk.coef_[0], rtol=2e-3, atol=2e-4)


def test_logistic_single_texts_match_sklearn():
    x, y, _ = planted_pairs(250, d=8, layers=1, strength=0.8, seed=13)
    texts = x[0, :, 1].double().numpy()
    ours = LogisticReporter(C=0.3, normalize=False).fit(texts, y.numpy()).predict_proba(texts)
    sk = LogisticRegression(C=0.3, tol=1e-10, max_iter=10_000).fit(texts, y.numpy())
    np.testing.assert_allclose(ours.numpy(), sk.predict_proba(texts)[:, 1], atol=2e-4)


def test_auroc_matches_sklearn_with_ties():
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (3, 200), generator=gen)
    p = torch.round(torch.rand(3, 200, generator=gen) * 10) / 10 + 0.2 * y  # many ties
    ours = roc_auc(p, y)
    for i in range(3):
        assert float(ours[i]) == pytest.approx(roc_auc_score(y[i].numpy(), p[i].numpy()), abs=1e-12)


def test_ece_matches_sklearn_calibration_curve():
    gen = torch.Generator().manual_seed(1)
    p = torch.rand(500, generator=gen)
    y = (torch.rand(500, generator=gen) < p**2).long()
    prob_true, prob_pred = calibration_curve(y.numpy(), p.numpy(), n_bins=10, strategy="uniform")
    bins = np.linspace(0, 1, 11)
    idx = np.searchsorted(bins[1:-1], p.numpy(), side="right")
    counts = np.bincount(idx, minlength=10)
    counts = counts[counts > 0]
    expected = float(np.sum(counts / 500 * np.abs(prob_true - prob_pred)))
    assert float(expected_calibration_error(p, y)) == pytest.approx(expected, abs=1e-12)


def test_ledoit_wolf_matches_sklearn():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(2, 60, 30, generator=gen, dtype=torch.float64)
    x = x - x.mean(1, keepdim=True)
    ours = ms_lw(x)
    for i in range(2):
        ref = ledoit_wolf_shrinkage(x[i].numpy(), assume_centered=True)
        assert float(ours[i]) == pytest.approx(ref, rel=1e-8)


def test_bootstrap_interval_brackets_estimate():
    gen = torch.Generator().manual_seed(3)
    y = torch.randint(0, 2, (300,), generator=gen)
    p = torch.rand(2, 300, generator=gen) + 0.4 * y
    auc, lo, hi = bootstrap_auroc_ci(p, y, n_boot=300)
    assert ((lo <= auc) & (auc <= hi)).all()
    assert ((hi - lo) > 0.01).all() and ((hi - lo) < 0.2).all()


def test_calibrated_accuracy_ignores_miscalibration():
    gen = torch.Generator().manual_seed(4)
    y = torch.randint(0, 2, (400,), generator=gen)
    p = 0.9 + 0.05 * (y + 0.3 * torch.rand(400, generator=gen))  # all above 0.5: acc = mean(y)
    assert float(calibrated_accuracy(p, y)) > 0.95
