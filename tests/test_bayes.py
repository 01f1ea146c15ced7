"""The closed-form scorers against brute force: enumeration, Monte Carlo, explicit solves."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from mindscope.bayes import (
    HMM,
    FiniteTaskPrior,
    GaussianPrior,
    HMMMixture,
    dmmse,
    kl_to_bayes,
    mess3,
    predict,
    random_hmms,
    regression_scores,
    ridge_posterior,
    rotation_in_plane,
    sample_contexts,
    shift_tasks,
    spherical_cap,
    transition_point,
)
from mindscope.errors import MindscopeError


def _tiny(n: int = 7, k: int = 5, d: int = 3, m: int = 6, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    tasks = torch.randn(m, d, generator=gen, dtype=torch.float64)
    x = torch.randn(n, k, d, generator=gen, dtype=torch.float64)
    w = torch.randn(n, d, generator=gen, dtype=torch.float64)
    y = (x @ w[..., None])[..., 0] + 0.5 * torch.randn(n, k, generator=gen, dtype=torch.float64)
    return tasks, x, y


def test_dmmse_equals_enumeration() -> None:
    tasks, x, y = _tiny()
    s2 = 0.3
    weights = np.array([0.1, 0.3, 0.05, 0.25, 0.2, 0.1])
    got = dmmse(tasks, s2, x, y, log_weights=torch.tensor(weights).log()).numpy()
    t, xn, yn = tasks.numpy(), x.numpy(), y.numpy()
    for i, k in itertools.product(range(x.shape[0]), range(x.shape[1])):
        post = np.array(
            [
                weights[m]
                * math.exp(-sum((yn[i, j] - xn[i, j] @ t[m]) ** 2 for j in range(k)) / (2 * s2))
                for m in range(len(t))
            ]
        )
        post /= post.sum()
        np.testing.assert_allclose(got[i, k], post @ t, rtol=1e-9, atol=1e-12)


def test_dmmse_chunking_is_exact_and_bounded() -> None:
    tasks, x, y = _tiny(n=9, m=37)
    full = dmmse(tasks, 0.25, x, y, budget=1 << 30)
    tiny = dmmse(tasks, 0.25, x, y, budget=7)  # one task and one context per block
    torch.testing.assert_close(full, tiny, rtol=1e-10, atol=1e-12)


def test_dmmse_far_contexts_do_not_underflow() -> None:
    tasks, x, y = _tiny()
    got = dmmse(tasks, 1e-4, x, 100 * y)  # log-likelihoods around -1e8
    assert torch.isfinite(got).all()


def test_dmmse_plain_path_equals_fused_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    import mindscope.bayes.regression as reg

    tasks, x, y = _tiny(n=5, k=6, d=3, m=23)
    lw = torch.rand(23, dtype=torch.float64).log()
    fused = dmmse(tasks, 0.4, x, y, log_weights=lw, budget=60)  # several task chunks
    monkeypatch.setattr(reg, "_fused_attention", lambda: None)
    plain = dmmse(tasks, 0.4, x, y, log_weights=lw, budget=60)
    torch.testing.assert_close(fused, plain, rtol=1e-10, atol=1e-12)


def test_dmmse_float32_is_close_to_float64_brute_force() -> None:
    """The organisms' sizes (d = 8, K = 16, s^2 = 0.25) in float32, against a float64 loop."""
    gen = torch.Generator().manual_seed(3)
    prior = FiniteTaskPrior.sample_pool(300, 8, 0.25, seed=2)
    x, y = sample_contexts(prior.sample(40, gen), 16, 0.5, gen)
    got = dmmse(prior.tasks, 0.25, x, y, budget=5000)  # float32, 2 contexts x 113 tasks a block
    assert got.dtype == torch.float32
    t, xn, yn = prior.tasks.double().numpy(), x.double().numpy(), y.double().numpy()
    for i in range(40):
        resid = (yn[i][:, None] - xn[i] @ t.T) ** 2  # [K, M]
        ll = -(np.cumsum(resid, 0) - resid) / (2 * 0.25)
        p = np.exp(ll - ll.max(1, keepdims=True))
        want = (p @ t) / p.sum(1, keepdims=True)  # [K, d]
        np.testing.assert_allclose(got[i].numpy(), want, atol=2e-4)


def test_ridge_equals_explicit_solve_and_monte_carlo() -> None:
    _, x, y = _tiny(n=3, k=4, d=2)
    s2 = 0.5
    got = ridge_posterior(x, y, s2).numpy()
    for i, k in itertools.product(range(3), range(4)):
        xk, yk = x[i, :k].numpy(), y[i, :k].numpy()
        want = np.linalg.solve(xk.T @ xk + s2 * np.eye(2), xk.T @ yk)
        np.testing.assert_allclose(got[i, k], want, rtol=1e-9, atol=1e-12)
    # Monte Carlo posterior under a non-standard Gaussian prior, by importance weighting
    mean, cov = (
        torch.tensor([0.5, -1.0], dtype=torch.float64),
        torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=torch.float64),
    )
    got_mc = ridge_posterior(x, y, s2, mean, cov)
    rng = np.random.default_rng(0)
    w = rng.multivariate_normal(mean.numpy(), cov.numpy(), size=400_000)  # [S, 2]
    for i in range(3):
        k = 2
        resid = y[i, :k].numpy()[None] - w @ x[i, :k].numpy().T  # [S, k]
        lw = -(resid**2).sum(1) / (2 * s2)
        p = np.exp(lw - lw.max())
        mc = (p[:, None] * w).sum(0) / p.sum()
        ess = p.sum() ** 2 / (p**2).sum()
        assert ess > 1000
        np.testing.assert_allclose(got_mc[i, k].numpy(), mc, atol=6 / math.sqrt(ess))


def test_predictors_are_bayes_optimal_on_their_own_prior() -> None:
    # dMMSE beats ridge on pool tasks; ridge beats dMMSE on Gaussian tasks (K = 8, D = 4)
    gen = torch.Generator().manual_seed(3)
    pool = FiniteTaskPrior.sample_pool(8, 4, 0.25, seed=1)
    ridge = GaussianPrior(4, 0.25)
    x, y = sample_contexts(pool.sample(4000, gen), 8, 0.5, gen)
    assert ((predict(pool, x, y) - y) ** 2).mean() < ((predict(ridge, x, y) - y) ** 2).mean()
    x, y = sample_contexts(ridge.sample(4000, gen), 8, 0.5, gen)
    assert ((predict(ridge, x, y) - y) ** 2).mean() < ((predict(pool, x, y) - y) ** 2).mean()


def test_single_task_prior_is_that_task() -> None:
    _, x, y = _tiny()
    task = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    got = dmmse(task, 0.1, x, y)
    torch.testing.assert_close(got, task.expand_as(got))


def _brute_hmm(mix: HMMMixture, obs: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """p(o_t | o_<t) and P(h, s_t | o_<t) by summing over every hidden path."""
    h_n, s_n = mix.n_hmms, mix.n_states
    t_len = len(obs)
    joint = np.zeros((t_len + 1, h_n, s_n))  # unnormalised P(h, s_t, o_<t)
    for h in range(h_n):
        tr, em, ini = mix.trans[h].numpy(), mix.emit[h].numpy(), mix.init[h].numpy()
        for path in itertools.product(range(s_n), repeat=t_len + 1):
            p = float(mix.weights[h]) * ini[path[0]]
            for t in range(t_len + 1):
                joint[t, h, path[t]] += p
                if t < t_len:
                    p *= em[path[t], obs[t]] * tr[path[t], path[t + 1]]
    belief = joint[:t_len] / joint[:t_len].sum((1, 2), keepdims=True)
    emit = mix.emit.numpy()
    pred = np.einsum("ths,hsv->tv", belief, emit)
    return belief, pred


def test_forward_algorithm_equals_enumeration() -> None:
    hmms = random_hmms(2, 2, 3, seed=4) + [mess3()]
    mix = HMMMixture(hmms, torch.tensor([0.2, 0.5, 0.3], dtype=torch.float64))
    obs = torch.tensor([[0, 2, 1, 1], [2, 2, 0, 1]])
    belief, pred = mix.forward(obs)
    for i in range(2):
        b, p = _brute_hmm(mix, obs[i].tolist())
        np.testing.assert_allclose(belief[i].numpy(), b, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(pred[i].numpy(), p, rtol=1e-10, atol=1e-14)


def test_hmm_sampling_matches_its_predictive() -> None:
    # Monte Carlo: the frequency of o_2 after a fixed prefix equals the forward predictive
    mix = HMMMixture(random_hmms(3, 3, 3, seed=2))
    obs, _, _ = mix.sample(60_000, 3, torch.Generator().manual_seed(0))
    _, pred = mix.forward(obs)
    for prefix in ([0, 0], [1, 2]):
        sel = (obs[:, 0] == prefix[0]) & (obs[:, 1] == prefix[1])
        freq = torch.bincount(obs[sel, 2], minlength=3).double() / sel.sum()
        want = pred[sel][0, 2]
        assert torch.allclose(freq, want, atol=4 / math.sqrt(int(sel.sum())))


def test_kl_to_bayes() -> None:
    p = torch.softmax(torch.randn(4, 5, 3, dtype=torch.float64), -1)
    assert kl_to_bayes(p, p.log()).abs().max() < 1e-12
    q = torch.log_softmax(torch.randn(4, 5, 3, dtype=torch.float64), -1)
    want = (p * (p.log() - q)).sum(-1)
    torch.testing.assert_close(kl_to_bayes(p, q), want)


def test_misspecification_transforms() -> None:
    gen = torch.Generator().manual_seed(0)
    r = rotation_in_plane(6, 0.7, gen).double()
    torch.testing.assert_close(r @ r.T, torch.eye(6, dtype=torch.float64), atol=1e-6, rtol=0)
    # exactly two eigenvalues leave 1, at exp(+-0.7i)
    ev = torch.linalg.eigvals(r)
    assert torch.allclose(
        ev.angle().abs().sort().values[-2:],
        torch.tensor([0.7, 0.7], dtype=torch.float64),
        atol=1e-5,
    )
    pts = spherical_cap(2000, 5, 0.4, gen, radius=2.0).double()
    torch.testing.assert_close(
        pts.norm(dim=1), torch.full((2000,), 2.0, dtype=torch.float64), atol=1e-5, rtol=0
    )
    centre = pts.mean(0) / pts.mean(0).norm()
    ang = torch.arccos((pts / 2.0 @ centre).clamp(-1, 1))
    assert 0.35 < ang.max() < 0.42  # (the empirical centre is within a few mrad of the pole)
    unit = pts / 2.0
    pair = torch.arccos((unit @ unit.T).clamp(-1, 1))
    assert pair.max() <= 0.8 + 1e-4  # every pair within the cap's diameter
    pool = torch.randn(5, 4, generator=gen)
    scaled = shift_tasks("scaled", pool, 100, gen, scale=3.0)
    assert all(any(torch.allclose(s, 3 * p) for p in pool) for s in scaled)
    with pytest.raises(MindscopeError, match="unknown task shift"):
        shift_tasks("sideways", pool, 3, gen)


def test_regression_scores_directions() -> None:
    gen = torch.Generator().manual_seed(0)
    truth = torch.randn(500, 4, generator=gen)
    y = truth + 0.5 * torch.randn(500, 4, generator=gen)
    post = truth + 0.3 * torch.randn(500, 4, generator=gen)
    rows = regression_scores(truth.clone(), y, truth, {"p": post})
    get = {(r.method, r.metric): r.value for r in rows if r._extra["k"] == "all"}
    assert get[("p", "toward_truth")] > 0.08  # the model sits on the truth: towards it
    assert get[("model", "truth_mse")] == 0.0
    rows = regression_scores(post + 1.0, y, truth, {"p": post})
    get = {(r.method, r.metric): r.value for r in rows if r._extra["k"] == "all"}
    assert get[("p", "toward_truth")] < -0.9  # away from the truth
    assert get[("p", "dist")] == pytest.approx(1.0)


def test_transition_point() -> None:
    assert transition_point([1, 4, 16, 64], [0.1, 0.2, 0.8, 0.9]) == pytest.approx(8.0)
    assert math.isnan(transition_point([1, 2], [0.1, 0.2]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: FiniteTaskPrior.sample_pool(0, 4, 0.25, 0), "M must be"),
        (lambda: GaussianPrior(4, 0.0), "noise must be a positive"),
        (lambda: FiniteTaskPrior(torch.zeros(3, 2), -1.0), "noise must be a positive"),
        (lambda: dmmse(torch.zeros(3, 2), 0.25, torch.zeros(1, 2, 3), torch.zeros(1, 2)), "width"),
        (
            lambda: HMM(
                torch.tensor([[0.5, 0.4], [0.5, 0.5]]), torch.eye(2), torch.tensor([0.5, 0.5])
            ),
            "transition matrix row 0 sums to 0.9",
        ),
        (
            lambda: HMM(
                torch.eye(2), torch.tensor([[0.5, 0.5], [1.0, 0.1]]), torch.tensor([0.5, 0.5])
            ),
            "emission matrix row 1",
        ),
        (
            lambda: sample_contexts(
                torch.zeros(2, 2), 3, 0.5, torch.Generator(), noise="student_t", df=2.0
            ),
            "df > 2",
        ),
    ],
)
def test_bad_input_is_one_line(call, message) -> None:
    with pytest.raises(MindscopeError, match=message) as info:
        call()
    assert "\n" not in str(info.value)


def test_student_t_noise_has_the_asked_variance() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.zeros(20_000, 2)
    _, y = sample_contexts(w, 8, 0.5, gen, noise="student_t", df=5.0)
    assert y.var().item() == pytest.approx(0.25, rel=0.08)
    kurt = ((y - y.mean()) ** 4).mean() / y.var() ** 2
    assert kurt > 5  # Student-t(5) has kurtosis 9; Gaussian 3
