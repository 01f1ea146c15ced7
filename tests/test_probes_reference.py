"""Reporters against independent references: scikit-learn and plain eigendecompositions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.linear_model import Ridge, RidgeCV

from mindscope.probes import (
    CcsReporter,
    CrcReporter,
    DiffMeanReporter,
    LdaReporter,
    LogisticReporter,
    RandomReporter,
    RidgeReporter,
    load_reporter,
)
from mindscope.probes.synthetic import planted_pairs


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_lda_matches_sklearn_without_shrinkage() -> None:
    x, y, _ = planted_pairs(600, d=10, layers=2, seed=3)
    rep = LdaReporter(shrinkage=0.0).fit(x, y)
    for layer in range(2):
        diff = (x[layer, :, 1] - x[layer, :, 0]).double().numpy()
        sk = LinearDiscriminantAnalysis(solver="lsqr").fit(diff, y.numpy())
        # sklearn's binary coef_ is Sigma^-1 (mu1 - mu0) with the prior-weighted class
        # covariance, which is the pooled within-class covariance LdaReporter uses.
        assert _cos(rep.direction()[layer].double().numpy(), sk.coef_[0]) > 1 - 1e-6


def test_lda_shrinkage_is_the_stated_formula() -> None:
    x, y, _ = planted_pairs(300, d=8, layers=1, seed=4)
    a = 0.3
    rep = LdaReporter(shrinkage=a).fit(x, y)
    f = (x[0, :, 1] - x[0, :, 0]).double().numpy()
    yy = y.numpy().astype(bool)
    mu1, mu0 = f[yy].mean(0), f[~yy].mean(0)
    c = np.where(yy[:, None], f - mu1, f - mu0)
    s = c.T @ c / len(f)
    shrunk = (1 - a) * s + a * np.trace(s) / s.shape[0] * np.eye(s.shape[0])
    ref = np.linalg.solve(shrunk, mu1 - mu0)
    assert _cos(rep.direction()[0].double().numpy(), ref) > 1 - 1e-6


def test_crc_is_the_top_eigenvector_of_the_difference_covariance() -> None:
    x, y, _ = planted_pairs(500, d=12, layers=2, seed=5)
    rep = CrcReporter().fit(x)
    for layer in range(2):
        f = (x[layer, :, 1] - x[layer, :, 0]).double().numpy()
        f = f - f.mean(0)
        _, vecs = np.linalg.eigh(f.T @ f / len(f))
        assert _cos(rep.direction()[layer].double().numpy(), vecs[:, -1]) > 1 - 1e-6


@pytest.mark.parametrize("alpha", [0.1, 10.0])
def test_ridge_matches_sklearn_at_fixed_alpha(alpha: float) -> None:
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(2, 150, 12, generator=gen, dtype=torch.float64)
    w = torch.randn(12, generator=gen, dtype=torch.float64)
    y = x[1] @ w + 0.5 * torch.randn(150, generator=gen, dtype=torch.float64) + 3.0
    rep = RidgeReporter(alpha=alpha, normalize=False).fit(x, y)
    xt = torch.randn(2, 50, 12, generator=gen, dtype=torch.float64)
    ours = rep.predict(xt)  # [2, 50]
    for layer in range(2):
        sk = Ridge(alpha=alpha).fit(x[layer].numpy(), y.numpy())
        np.testing.assert_allclose(ours[layer].numpy(), sk.predict(xt[layer].numpy()), atol=1e-4)
    r2 = rep.score(xt, xt[1] @ w + 3.0)
    assert float(r2[1]) > 0.9 and float(r2[0]) < 0.2  # the target lives in layer 1 only


def test_ridge_leave_one_out_picks_sklearn_ridgecv_alpha() -> None:
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(1, 80, 30, generator=gen, dtype=torch.float64)
    w = torch.randn(30, generator=gen, dtype=torch.float64) * 0.3
    y = x[0] @ w + 1.0 * torch.randn(80, generator=gen, dtype=torch.float64)
    alphas = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
    rep = RidgeReporter(alphas=alphas, normalize=False).fit(x, y)
    sk = RidgeCV(alphas=alphas).fit(x[0].numpy(), y.numpy())
    assert float(rep.alpha_[0]) == pytest.approx(sk.alpha_)


def test_ridge_bad_targets() -> None:
    x = torch.randn(20, 4)
    from mindscope.errors import MindscopeError

    with pytest.raises(MindscopeError, match="constant"):
        RidgeReporter().fit(x, torch.ones(20))
    with pytest.raises(MindscopeError, match="NaN"):
        RidgeReporter().fit(x, torch.full((20,), float("nan")))
    with pytest.raises(MindscopeError, match="use predict"):
        RidgeReporter().fit(x, torch.randn(20)).predict_proba(x)


ALL = [
    LogisticReporter,
    DiffMeanReporter,
    LdaReporter,
    CcsReporter,
    CrcReporter,
    RandomReporter,
    RidgeReporter,
]


@pytest.mark.parametrize("klass", ALL)
def test_sklearn_clone_and_set_params(klass: type) -> None:
    rep = klass()
    twin = clone(rep)
    assert type(twin) is klass and twin.get_params() == rep.get_params()
    if rep.get_params():
        key = next(iter(rep.get_params()))
        with pytest.raises(Exception, match="no hyper-parameter"):
            rep.set_params(not_a_param=1)
        assert rep.set_params(**{key: rep.get_params()[key]}) is rep


def test_learned_hyper_parameters_survive_save_load(tmp_path: Path) -> None:
    x, y, _ = planted_pairs(200, d=6, layers=2, seed=8)
    lr = LogisticReporter().fit(x, y)
    back = load_reporter(lr.save(tmp_path / "lr"))
    torch.testing.assert_close(back.C_, lr.C_)
    lda = LdaReporter().fit(x, y)
    torch.testing.assert_close(load_reporter(lda.save(tmp_path / "lda")).shrinkage_, lda.shrinkage_)
    rid = RidgeReporter().fit(x[:, :, 1], y.double() * 2 + 1)
    torch.testing.assert_close(load_reporter(rid.save(tmp_path / "ridge")).alpha_, rid.alpha_)


@pytest.mark.parametrize("C", [0.01, 1.0])
def test_logistic_with_more_features_than_examples_matches_sklearn(C: float) -> None:
    """d > n: LogisticReporter solves in the span of the examples; the solution is sklearn's."""
    from sklearn.linear_model import LogisticRegression

    x, y, _ = planted_pairs(30, d=100, layers=2, seed=3)
    xt, _, _ = planted_pairs(50, d=100, layers=2, seed=4)
    rep = LogisticReporter(C=C, normalize=False).fit(x, y)
    for layer in range(2):
        f = (x[layer, :, 1] - x[layer, :, 0]).double().numpy()
        ft = (xt[layer, :, 1] - xt[layer, :, 0]).double().numpy()
        sk = LogisticRegression(C=C, tol=1e-12, max_iter=100_000).fit(f, y.numpy())
        np.testing.assert_allclose(
            rep.predict_proba(xt)[layer].numpy(), sk.predict_proba(ft)[:, 1], atol=1e-5
        )
        np.testing.assert_allclose(rep.coef_[layer, 0].numpy(), sk.coef_[0], atol=1e-5)
