"""Anomaly detectors on synthetic data: the streaming covariance against numpy and
scikit-learn, planted anomalies, recall at a fixed FPR in closed form, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mindscope as ms
from mindscope.audit import (
    ClassMoments,
    IsolationForestDetector,
    LofDetector,
    MahalanobisDetector,
    MahalanobisFitter,
    QueDetector,
    StreamingMoments,
    fingerprint,
    recall_at_fpr,
)
from mindscope.audit.covariance import ledoit_wolf_shrinkage
from mindscope.errors import MindscopeError


def _gauss(n: int, d: int, seed: int = 0, shift: float = 5.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    return rng.normal(size=(n, d)) @ mix + shift  # correlated, off-centre


def test_streaming_moments_match_numpy_whatever_the_batching() -> None:
    x = _gauss(301, 7) * 1e3 + 1e6  # a large offset: raw sums of squares would lose digits
    m = StreamingMoments()
    for s, e in ((0, 1), (1, 50), (50, 51), (51, 301)):
        m.update(x[s:e])
    xc = x - x.mean(0)
    assert m.n == 301
    np.testing.assert_allclose(m.mean[0].numpy(), x.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.covariance()[0].numpy(), np.cov(x.T, bias=True), rtol=1e-9)
    sq = (xc**2).sum(1)
    np.testing.assert_allclose(m.b[0].numpy(), (sq[:, None] * xc).sum(0), rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(float(m.c[0]), (sq**2).sum(), rtol=1e-9)
    # merging two accumulators = one accumulator over everything
    a, b = StreamingMoments().update(x[:100]), StreamingMoments().update(x[100:])
    a.merge(b)
    np.testing.assert_allclose(a.m2.numpy(), m.m2.numpy(), rtol=1e-9)


def test_mahalanobis_matches_sklearn_empirical_ledoit_wolf_and_oas() -> None:
    from sklearn.covariance import OAS, EmpiricalCovariance, LedoitWolf

    x = _gauss(400, 30, seed=1)
    q = _gauss(60, 30, seed=2, shift=4.0)
    emp = MahalanobisDetector(shrinkage=0).fit(x)
    np.testing.assert_allclose(
        emp.score(q).numpy(), EmpiricalCovariance().fit(x).mahalanobis(q), rtol=1e-8
    )
    lw = MahalanobisDetector().fit(x)
    ref = LedoitWolf().fit(x)
    assert float(lw.shrinkage_[0]) == pytest.approx(ref.shrinkage_, rel=1e-9)
    np.testing.assert_allclose(lw.score(q).numpy(), ref.mahalanobis(q), rtol=1e-8)
    oas = MahalanobisDetector("oas").fit(x)
    assert float(oas.shrinkage_[0]) == pytest.approx(OAS().fit(x).shrinkage_, rel=1e-9)
    # the streaming fitter, fed in odd-sized batches, gives the same detector
    f = MahalanobisFitter()
    for s in range(0, 400, 37):
        f.update(x[s : s + 37])
    np.testing.assert_allclose(f.detector().score(q).numpy(), ref.mahalanobis(q), rtol=1e-8)


def test_layered_fit_is_each_layer_on_its_own_and_aggregates() -> None:
    x = np.stack([_gauss(200, 8, seed=s) for s in range(3)])  # [3, 200, 8]
    q = np.stack([_gauss(20, 8, seed=10 + s) for s in range(3)])
    det = MahalanobisDetector().fit(x)
    s = det.score(q)
    assert s.shape == (3, 20)
    for k in range(3):
        torch.testing.assert_close(s[k], MahalanobisDetector().fit(x[k]).score(q[k]))
    agg = det.score_aggregate(q)
    assert agg.shape == (20,)
    torch.testing.assert_close(agg, det.standardise(s).mean(0))


def test_class_moments_give_lda_pooled_covariance_and_its_shrinkage() -> None:
    """The shared covariance code reproduces LDA's pooled within-class covariance and
    Ledoit-Wolf intensity (mindscope.probes.lda)."""
    from mindscope.probes.lda import ledoit_wolf_shrinkage as lda_lw

    x = torch.from_numpy(_gauss(300, 10, seed=3))
    y = torch.arange(300) % 3 == 0
    cm = ClassMoments.empty()
    cm.update(x[:120], y[:120]).update(x[120:], y[120:])
    means = cm.means()
    centred = x - torch.where(y[:, None], means[1][0], means[0][0])
    pooled = cm.pooled()
    torch.testing.assert_close(pooled.covariance()[0], centred.T @ centred / 300)
    alpha = ledoit_wolf_shrinkage(pooled.covariance(), pooled.c, pooled.n)
    torch.testing.assert_close(alpha, lda_lw(centred[None]))


def test_planted_anomalies_are_found_by_every_detector() -> None:
    """Anomalies shifted along the trusted data's lowest-variance direction: small in
    Euclidean norm, large in Mahalanobis distance."""
    from mindscope.probes.metrics import roc_auc

    rng = np.random.default_rng(4)
    d = 16
    scales = np.linspace(3.0, 0.1, d)
    trusted = rng.normal(size=(600, d)) * scales
    clean = rng.normal(size=(200, d)) * scales
    bad = rng.normal(size=(200, d)) * scales
    bad[:, -1] += 2.0  # 20 sd along the last axis, two thirds of the first axis' sd
    y = torch.cat([torch.zeros(200), torch.ones(200)])
    both = np.concatenate([clean, bad])
    # an isolation forest splits one random axis at a time, so it finds a shift along one of
    # 16 axes only in the splits that pick it: weaker, but well above chance
    floors = {"mahalanobis": 0.97, "lof": 0.9, "que": 0.9, "iforest": 0.7}
    for det in (
        MahalanobisDetector(),
        LofDetector(),
        IsolationForestDetector(n_estimators=100),
        QueDetector(),
    ):
        auc = float(roc_auc(det.fit(trusted).score(both), y))
        print(det.method, round(auc, 3))
        assert auc > floors[det.method], (det, auc)
    # Euclidean distance to the mean barely sees them: the anomaly lives in the covariance
    euclid = torch.from_numpy(np.linalg.norm(both - trusted.mean(0), axis=1))
    assert float(roc_auc(euclid, y)) < 0.75


def test_que_with_zero_alpha_is_the_whitened_squared_norm() -> None:
    x = _gauss(300, 6, seed=5)
    q = _gauss(40, 6, seed=6, shift=4.5)
    maha = MahalanobisDetector().fit(x).score(q)
    que = QueDetector(alpha=0.0).fit(x).score(q)
    torch.testing.assert_close(que, maha / 6)


def test_recall_at_fpr_closed_form() -> None:
    clean = torch.arange(100.0)  # 0..99
    anom = torch.tensor([97.5, 98.0, 98.5, 200.0])
    recall, t, real = recall_at_fpr(clean, anom, 0.01)
    assert float(t) == 98.0  # the 2nd largest clean score: only 99 (1%) lies above
    assert float(real) == pytest.approx(0.01)
    assert float(recall) == pytest.approx(0.5)  # 98.5 and 200
    recall0, t0, _ = recall_at_fpr(clean, anom, 0.0)
    assert float(t0) == 99.0 and float(recall0) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("make", "x", "match"),
    [
        (lambda: MahalanobisDetector(shrinkage=0), _gauss(10, 20), "at least 21 for d=20"),
        (lambda: MahalanobisDetector(), np.zeros((0, 4)), "trusted set is empty"),
        (lambda: LofDetector(), _gauss(15, 4), "more than 20 trusted examples"),
        (lambda: QueDetector(), np.zeros((0, 4)), "trusted set is empty"),
        (lambda: MahalanobisDetector(), np.full((30, 4), np.nan), "NaN"),
        (lambda: MahalanobisDetector(), np.ones((30, 4)), "constant"),
        (lambda: MahalanobisDetector(), np.zeros((3, 4, 5, 6)), r"\[n, d\] or \[layers, n, d\]"),
    ],
)
def test_bad_trusted_sets_give_one_line_errors(make, x, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MindscopeError, match=match) as info:
        make().fit(x)
    assert "\n" not in str(info.value)


def test_few_trusted_examples_work_with_shrinkage() -> None:
    det = MahalanobisDetector().fit(_gauss(10, 20))  # n < d: Ledoit-Wolf keeps it invertible
    assert 0 < float(det.shrinkage_[0]) <= 1
    assert torch.isfinite(det.score(_gauss(5, 20, seed=9))).all()


def test_scoring_activations_from_elsewhere_is_refused() -> None:
    x = _gauss(100, 8)
    det = MahalanobisDetector().fit(x, source=fingerprint("weights-a", [3]))
    det.score(x, source=fingerprint("weights-a", [3]))
    with pytest.raises(MindscopeError, match="fingerprint"):
        det.score(x, source=fingerprint("weights-b", [3]))  # another model
    with pytest.raises(MindscopeError, match="fingerprint"):
        det.score(x, source=fingerprint("weights-a", [4]))  # another layer
    with pytest.raises(MindscopeError, match="width 8"):
        det.score(_gauss(5, 9))
    with pytest.raises(MindscopeError, match="NaN"):
        det.score(np.full((2, 8), np.nan))
    with pytest.raises(MindscopeError, match="not fitted"):
        MahalanobisDetector().score(x)
    layered = MahalanobisDetector().fit(np.stack([x, x + 1]))
    with pytest.raises(MindscopeError, match="2 layer"):
        layered.score(x[None])


def test_fingerprint_comes_from_the_activation_store(tiny_dirs) -> None:  # type: ignore[no-untyped-def]
    h = ms.load_model(tiny_dirs["gpt2"])
    texts = [f"the cat sat on the mat {i % 9}" for i in range(40)]
    a1 = ms.extract(h, texts, layers=[1], progress=False)
    a2 = ms.extract(h, texts, layers=[2], progress=False)
    det = MahalanobisDetector().fit(a1)
    assert det.fingerprint_ is not None
    assert det.score(a1).shape == (40,)
    with pytest.raises(MindscopeError, match="another model, revision, position or layers"):
        det.score(a2)
