"""SAEs: metrics on hand-computed cases, trainers against a plain dense reference, the easy
regime recovered, determinism, resumption, save/load and bad input."""

from __future__ import annotations

import copy

import pytest
import torch

from mindscope import sae
from mindscope.errors import MindscopeError

# ---------------------------------------------------------------- metrics


def test_mcc_perfect_dictionary_is_one_whatever_order_and_scale():
    gen = sae.PlantedDictionary(300, 40, seed=1)
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    learned = gen.features_[perm] * torch.rand(300, 1).add(0.5)
    m = sae.match_features(gen.features_, learned)
    assert m.mcc == pytest.approx(1.0, abs=1e-9)
    assert (perm[torch.as_tensor(m.latent_idx)] == torch.as_tensor(m.true_idx)).all()


def test_mcc_hungarian_beats_greedy_on_a_hand_case():
    # cos(e1, A) = 0.6, cos(e1, B) = 0.55, cos(e2, A) = 0.55, cos(e2, B) = 0.05: greedy pairs
    # e1-A first (the largest) and is left with e2-B (mean 0.325); Hungarian pairs e1-B, e2-A.
    true = torch.eye(3)[:2]
    a = torch.tensor([0.6, 0.55, (1 - 0.36 - 0.3025) ** 0.5])
    b = torch.tensor([0.55, 0.05, (1 - 0.3025 - 0.0025) ** 0.5])
    m = sae.match_features(true, torch.stack([a, b]))
    assert m.mcc == pytest.approx((0.55 + 0.55) / 2)
    assert list(m.latent_idx) == [1, 0]
    s = 2**-0.5  # a dictionary at 45 degrees to both features reaches only cos 45 degrees
    assert sae.mcc(torch.eye(2), torch.tensor([[s, s], [s, -s]])) == pytest.approx(s)


def test_random_dictionary_gives_the_null_value():
    gen = sae.PlantedDictionary(256, 64, seed=3)
    rand = torch.randn(256, 64, generator=torch.Generator().manual_seed(11))
    got = sae.mcc(gen.features_, rand)
    null = sae.null_mcc(gen.features_, 256, reps=3, seed=99)
    assert abs(got - null) < 0.02
    assert got < 0.4


def test_firing_scores_by_hand():
    m = sae.match_features(torch.eye(2), torch.eye(2))
    codes = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    # feature 0: fires on rows 0,1; latent 0 on rows 0,2 -> P = 1/2, R = 1/2
    # feature 1: fires on rows 1,2; latent 1 on rows 1,2,3 -> P = 2/3, R = 1
    s = sae.firing_scores(codes, z, m)
    assert s["precision"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert s["recall"] == pytest.approx(0.75)
    assert s["f1"] == pytest.approx((0.5 + 0.8) / 2)


def test_reconstruction_metrics_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    z = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    r = sae.reconstruction_metrics(x, 0.5 * x, z, dense_threshold=0.5)
    assert r["l0"] == pytest.approx(4 / 3)
    assert r["dead_frac"] == pytest.approx(1 / 3)
    assert r["dense_frac"] == pytest.approx(1 / 3)
    assert r["shrinkage"] == pytest.approx(0.5)
    var = float((x - x.mean(0)).pow(2).sum())
    assert r["fve"] == pytest.approx(1 - float((0.5 * x).pow(2).sum()) / var)
    assert sae.uniqueness(torch.eye(3), torch.tensor([[1.0, 0.1, 0], [1.0, 0, 0.1]])) == 0.5


# ---------------------------------------------------------------- the generator


def test_generator_statistics():
    gen = sae.PlantedDictionary(
        400, 32, mean_active=5, hierarchy=0.3, children_per_parent=3, correlation=0.3, seed=0
    )
    x, codes = gen.sample(4000, seed=1)
    assert x.shape == (4000, 32) and codes.shape == (4000, 400)
    assert torch.allclose(x, codes @ gen.features_, atol=1e-5)
    assert torch.allclose(gen.features_.norm(dim=1), torch.ones(400), atol=1e-5)
    fire = codes > 0
    h = gen.hierarchy_
    assert h is not None
    # children fire only with their parent, and siblings never together
    assert not (fire[:, h.child] & ~fire[:, h.parent]).any()
    sib = fire[:, h.child].view(4000, -1, 3).sum(-1)
    assert int(sib.max()) <= 1
    # non-children fire at their planted rates
    free = torch.ones(400, dtype=torch.bool)
    free[h.child] = False
    emp = fire[:, free].float().mean(0)
    assert torch.allclose(emp, gen.probs_[free].float(), atol=0.04)
    again, _ = gen.sample(4000, seed=1)
    assert torch.equal(x, again)


def test_orthogonalize_lowers_superposition():
    loose = sae.PlantedDictionary(64, 32, seed=0)
    tight = sae.PlantedDictionary(64, 32, orthogonalize=30, seed=0)
    assert tight.coherence_ < loose.coherence_
    assert sae.PlantedDictionary(32, 48, orthogonalize=1).coherence_ < 1e-5


# ---------------------------------------------------------------- trainers vs a plain reference


def _reference_step(
    model: sae.SparseAutoencoder, x: torch.Tensor, y: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """One step of a plain dense implementation (dense latents, torch.optim.Adam) from the
    model's current state; returns the new parameters. With targets ``y``: a transcoder."""
    p = {
        n: getattr(model, n).detach().clone().requires_grad_(True)
        for n in ("W_enc_", "b_enc_", "W_dec_", "b_dec_")
    }
    xn = x * model.scale_
    if y is None:
        pre = (xn - p["b_dec_"]) @ p["W_enc_"].T + p["b_enc_"]  # [B, n]
    else:
        pre = xn @ p["W_enc_"].T + p["b_enc_"]  # a transcoder does not centre its input
        xn = y * model.out_scale_  # what is reconstructed
    n, k, B = model.n_latents, model.k, len(x)
    if model.arch == "topk":
        idx = pre.topk(k, dim=-1).indices
        mask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, idx, True)
    elif model.arch in ("batchtopk", "matryoshka"):
        flat = pre.detach().reshape(-1)
        thr = flat.topk(k * B).values[-1]
        mask = (pre.detach() >= thr) & (pre.detach() > 0)
    else:  # l1
        mask = pre.detach() > 0
    z = torch.relu(pre) * mask
    if model.arch == "matryoshka":
        losses = []
        for m in model._sizes():
            zm = z * (torch.arange(n) < m)
            losses.append(((zm @ p["W_dec_"] + p["b_dec_"] - xn) ** 2).sum(-1).mean())
        loss = sum(losses) / len(losses)
        x_hat = zm @ p["W_dec_"] + p["b_dec_"]
    else:
        x_hat = z @ p["W_dec_"] + p["b_dec_"]
        loss = ((x_hat - xn) ** 2).sum(-1).mean()
    if model.arch == "l1":
        loss = loss + model.coef_ * z.sum(-1).mean()
    dead = model.since_fired_ > model.dead_tokens
    if model.aux_coef > 0 and dead.any():
        ka = min(model.d_out_ // 2, int(dead.sum()))
        aidx = pre.detach().masked_fill(~dead, -torch.inf).topk(ka, dim=-1).indices
        amask = torch.zeros_like(pre, dtype=torch.bool).scatter(1, aidx, True)
        e = (xn - x_hat).detach()
        e_hat = (torch.relu(pre) * amask) @ p["W_dec_"]
        aux = ((e_hat - e) ** 2).sum(-1).mean() / ((e - e.mean(0)) ** 2).sum(-1).mean()
        aux = aux * ((xn - xn.mean(0)) ** 2).sum(-1).mean()  # in the main loss's units
        loss = loss + model.aux_coef * aux
    loss.backward()
    w = p["W_dec_"]
    w.grad -= (w.grad * w).sum(-1, keepdim=True) * w
    opt = torch.optim.Adam(list(p.values()), lr=model.learning_rate)
    for name, t in p.items():  # the moments of the steps already taken
        m, v = model._adam[name]
        opt.state[t] = {
            "step": torch.tensor(float(model.step_)),
            "exp_avg": m.clone(),
            "exp_avg_sq": v.clone(),
        }
    opt.step()
    with torch.no_grad():
        p["W_dec_"] /= p["W_dec_"].norm(dim=-1, keepdim=True)
    return {n: t.detach() for n, t in p.items()}


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "matryoshka", "l1"])
def test_trainer_step_equals_plain_dense_reference(arch):
    gen = sae.PlantedDictionary(48, 16, mean_active=3, seed=0)
    x0, _ = gen.sample(64, seed=0)
    x1, _ = gen.sample(64, seed=1)
    kw = {"coef_rate": 0.0} if arch == "l1" else {}
    model = sae.make_sae(arch, 40, 4, lr=1e-2, n_steps=100, dead_tokens=30, **kw)
    model.partial_fit(x0)  # one step from the init (no latent dead yet)
    model.since_fired_[:7] = 1000  # make seven latents dead: AuxK now contributes
    ref = _reference_step(copy.deepcopy(model), x1)
    model.partial_fit(x1)
    for name, want in ref.items():
        assert torch.allclose(getattr(model, name), want, atol=2e-5), (arch, name)


@pytest.mark.parametrize("arch", ["topk", "matryoshka"])
def test_transcoder_step_equals_plain_dense_reference(arch):
    gen = sae.PlantedDictionary(48, 16, mean_active=3, seed=0)
    out = torch.randn(48, 12, generator=torch.Generator().manual_seed(5))
    (x0, c0), (x1, c1) = gen.sample(64, seed=0), gen.sample(64, seed=1)
    model = sae.make_sae(arch, 40, 4, lr=1e-2, n_steps=100, dead_tokens=30)
    model.partial_fit(x0, c0 @ out)
    assert model.transcoder_ and model.W_dec_.shape == (40, 12) and model.W_enc_.shape == (40, 16)
    model.since_fired_[:7] = 1000
    ref = _reference_step(copy.deepcopy(model), x1, c1 @ out)
    model.partial_fit(x1, c1 @ out)
    for name, want in ref.items():
        assert torch.allclose(getattr(model, name), want, atol=2e-5), (arch, name)


def test_transcoder_recovers_the_output_dictionary(tmp_path):
    # the same sparse codes written in two spaces: x through one dictionary, y through another
    gen = sae.PlantedDictionary(32, 48, mean_active=2, zipf_exponent=0.0, orthogonalize=1, seed=2)
    f_out = sae.PlantedDictionary(32, 40, orthogonalize=1, seed=3).features_  # [32, 40]
    x, codes = gen.sample(20_000, seed=1)
    y = codes @ f_out
    model = sae.TopKSAE(64, 2, n_steps=600, batch_size=256, lr=3e-3, dead_tokens=5000)
    model.fit(x, y)
    assert sae.mcc(f_out, model.decoder_) >= 0.95
    xt, ct = gen.sample(2000, seed=9)
    r = sae.reconstruction_metrics(ct @ f_out, model.reconstruct(xt), model.transform(xt))
    assert r["fve"] >= 0.8, r
    model.save(tmp_path / "tc")
    back = sae.load_sae(tmp_path / "tc")
    assert back.transcoder_ and torch.allclose(back.reconstruct(xt), model.reconstruct(xt))
    with pytest.raises(MindscopeError, match="as a transcoder"):
        model.partial_fit(x[:8])
    with pytest.raises(MindscopeError, match="targets of width 40"):
        model.partial_fit(x[:8], y[:8, :5])


def test_jumprelu_loss_and_threshold_gradient_match_the_paper():
    torch.manual_seed(0)
    model = sae.JumpReLUSAE(8, 2, bandwidth=0.5, coef_rate=0.0)
    x = torch.randn(32, 6)
    model.partial_fit(x)
    xn = x * model.scale_
    pre = (xn - model.b_dec_) @ model.W_enc_.T + model.b_enc_
    theta = model.threshold_
    z = pre * (pre > theta)
    recon = ((z @ model.W_dec_ + model.b_dec_ - xn) ** 2).sum(-1).mean()
    l0 = (pre > theta).float().sum(-1).mean()
    model.coef_rate = 0.0
    logs = model._step(x)
    assert logs["recon"] == pytest.approx(float(recon), rel=1e-5)
    assert logs["loss"] == pytest.approx(float(recon + model.coef_ * l0), rel=1e-5)
    assert logs["l0"] >= float(l0)  # the band's entries are carried (with zero value)


# ---------------------------------------------------------------- recovery of the truth


def test_easy_regime_recovers_the_dictionary():
    # few features active (2 on average), more features than dimensions (128 in 64, pushed
    # apart), a dictionary twice the truth: MCC >= 0.99 (docs/examples/sae_planted.py measures
    # it on three seeds and at 256 and 512 features)
    gen = sae.planted("easy", seed=0, n_features=128, d=64, mean_active=2)
    model = sae.TopKSAE(256, 2, n_steps=800, batch_size=256, lr=3e-3, dead_tokens=20_000)
    model.fit(sae.planted_source(gen, 256, seed=1))
    r = sae.evaluate_planted(model, gen, n=4096)
    assert r["mcc"] >= 0.99, r
    assert r["uniqueness"] >= 0.95, r
    assert sae.null_mcc(gen.features_, 256) < 0.4


# ---------------------------------------------------------------- contract


def test_deterministic_and_resumable_after_a_kill(tmp_path):
    gen = sae.PlantedDictionary(64, 16, seed=0)
    src = sae.planted_source(gen, 32, seed=5)
    a = sae.TopKSAE(32, 3, n_steps=20, batch_size=32).fit(src)
    b = sae.TopKSAE(32, 3, n_steps=20, batch_size=32).fit(src)
    assert torch.equal(a.W_dec_, b.W_dec_)

    def kill(step: int, logs: dict) -> None:
        if step == 13:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sae.TopKSAE(32, 3, n_steps=20).fit(
            src, checkpoint=tmp_path / "ck", checkpoint_every=5, callback=kill
        )
    c = sae.TopKSAE(32, 3, n_steps=20).fit(src, checkpoint=tmp_path / "ck", checkpoint_every=5)
    assert c.step_ == 20
    for n in ("W_enc_", "W_dec_", "b_enc_", "b_dec_"):
        assert torch.allclose(getattr(a, n), getattr(c, n), atol=1e-6), n
    with pytest.raises(MindscopeError, match="another SAE configuration"):
        sae.TopKSAE(32, 4, n_steps=20).fit(src, checkpoint=tmp_path / "ck")


def test_save_load_roundtrip_and_hash_refusal(tmp_path):
    gen = sae.PlantedDictionary(64, 16, seed=0)
    x, _ = gen.sample(256, seed=0)
    for arch in sae.ARCHITECTURES:
        m = sae.make_sae(arch, 32, 3, n_steps=5, batch_size=64).fit(x)
        m.save(tmp_path / arch, meta={"weights_hash": "abc", "site": "resid_post.1"})
        back = sae.load_sae(tmp_path / arch, expect_meta={"weights_hash": "abc"})
        assert type(back) is type(m)
        assert torch.allclose(back.transform(x), m.transform(x))
        assert torch.allclose(back.reconstruct(x), m.reconstruct(x))
    with pytest.raises(MindscopeError, match="weights_hash='abc', not 'zzz'"):
        sae.load_sae(tmp_path / "topk", expect_meta={"weights_hash": "zzz"})
    with pytest.raises(MindscopeError, match="site"):
        sae.TopKSAE.load(tmp_path / "topk", expect_meta={"site": "resid_post.0"})


def test_latents_feed_other_estimators():
    from sklearn.base import clone

    gen = sae.PlantedDictionary(64, 16, seed=0)
    x, _ = gen.sample(256, seed=0)
    m = sae.TopKSAE(32, 3, n_steps=5, batch_size=64)
    assert clone(m).get_params() == m.get_params()
    z = m.fit(x).transform(x)
    assert z.shape == (256, 32) and int((z > 0).sum(-1).max()) <= 3


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: sae.TopKSAE(8, 9), "k=9 active latents cannot be met by a dictionary of 8"),
        (lambda: sae.BatchTopKSAE(0, 1), "n_latents must be a positive int"),
        (lambda: sae.make_sae("topkk", 8, 2), "did you mean 'topk'"),
        (lambda: sae.MatryoshkaSAE(8, 2, prefixes=[0.5, 0.4]), "prefixes"),
        (lambda: sae.TopKSAE(8, 2).fit(torch.full((4, 3), float("nan"))), "NaN"),
        (lambda: sae.TopKSAE(8, 2).fit(torch.zeros(4, 0)), "empty"),
        (lambda: sae.planted("huge"), "unknown planted setting"),
        (lambda: sae.PlantedDictionary(10, 4, mean_active=20), "mean_active"),
    ],
)
def test_bad_input_one_line(make, match):
    with pytest.raises(MindscopeError, match=match) as e:
        make()
    assert "\n" not in str(e.value)
