"""Steering, erasure and patching, scored against known truths (planted circuit, planted
direction, closed forms, sklearn)."""

from __future__ import annotations

import pytest
import torch

from mindscope import erasure, patching, steering
from mindscope.errors import MindscopeError
from mindscope.patching.planted import planted_circuit


def _tokens(n: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 27, (n, t), generator=g)


@pytest.fixture(scope="module")
def circuit():
    return planted_circuit(seed=0)


def _inputs(h, n=12, t=8, k=(3,), seed=0):
    clean = _tokens(n, t, seed)
    corr = clean.clone()
    g = torch.Generator().manual_seed(seed + 1)
    for p in k:
        corr[:, p] = (clean[:, p] + torch.randint(1, 25, (n,), generator=g)) % 26 + 1
    with torch.no_grad():
        ans = h.forward(clean)[:, -1].argmax(-1)
        lx = h.forward(corr)[:, -1]
        lx[torch.arange(len(ans)), ans] = -torch.inf
        wrong = lx.argmax(-1)  # the corrupted run's best other token
    return clean, corr, ans, wrong


KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out")


@pytest.mark.parametrize("changed", [(3,), (1, 5)])
def test_exact_patching_finds_the_planted_circuit(circuit, changed):
    h = circuit.handle
    clean, corr, ans, wrong = _inputs(h, k=changed)
    exact = patching.activation_patching(h, clean, corr, ans, wrong, kinds=KINDS)
    truth = circuit.truth(changed, clean.shape[1])
    loc = patching.localisation(exact, truth, tau=1e-4)
    assert loc["precision"] == 1.0 and loc["recall"] == 1.0
    # outside the circuit the effect is exactly zero
    for kind in KINDS:
        e = exact.effects[kind]
        for layer in range(h.n_layers):
            for pos in range(clean.shape[1]):
                if (kind, layer, pos) not in truth:
                    assert float(e[:, layer, pos].abs().max()) < 1e-5
    # patching the whole last-layer output restores the clean run: effect 1 there
    m, _ = exact.mean("resid_post")
    assert float(m[-1, -1]) == pytest.approx(1.0, abs=1e-4)


def test_exact_patching_equals_one_unbatched_patch(circuit):
    h = circuit.handle
    clean, corr, ans, wrong = _inputs(h, n=4)
    exact = patching.activation_patching(
        h, clean, corr, ans, wrong, kinds=("mlp_out",), batch_size=3
    )
    site = "mlp_out.0"
    with h.capture([site]) as cc:
        h.forward(clean)
    a = cc[site]

    def write(x):
        x = x.clone()
        x[:, 3] = a[:, 3]
        return x

    with torch.no_grad(), h.edit({site: write}):
        lg = h.forward(corr)[:, -1]
    with torch.no_grad():
        base = h.forward(corr)[:, -1]
    r = torch.arange(4)
    want = (lg[r, ans] - lg[r, wrong]) - (base[r, ans] - base[r, wrong])
    assert torch.allclose(exact.effects["mlp_out"][:, 0, 3], want, atol=1e-5)


def test_attribution_patching_is_the_linear_estimate(circuit):
    h = circuit.handle
    clean, corr, ans, wrong = _inputs(h)
    exact = patching.activation_patching(h, clean, corr, ans, wrong, kinds=KINDS)
    atp = patching.attribution_patching(h, clean, corr, ans, wrong, kinds=KINDS)
    assert torch.allclose(atp.clean, exact.clean, atol=1e-5)
    err = patching.atp_error(exact, atp)
    assert set(err) == set(KINDS)
    # attention output at the last position feeds the logits through the head only: close
    assert err["attn_out"]["corr"] > 0.9
    # where clean and corrupted activations are equal the estimate is exactly zero
    assert float(atp.effects["resid_pre"][:, 0, :3].abs().max()) == 0.0
    rows = atp.to_rows(dataset="x")
    assert rows and all(r["method"] == "attribution" for r in rows)


@pytest.mark.parametrize("n_heads", [1, 4])
def test_head_patching_on_the_planted_circuit(n_heads):
    pc = planted_circuit(seed=0, n_heads=n_heads)
    h = pc.handle
    clean, corr, ans, wrong = _inputs(h, n=6, t=6, k=(2,))
    res = patching.head_patching(h, clean, corr, ans, wrong)
    e = res.effects["head"]  # [n, layers, heads]
    closed = [layer for layer in range(h.n_layers) if layer != pc.attn_layer]
    assert float(e[:, closed].abs().max()) == 0.0  # no head outside the open layer matters
    assert float(e[:, pc.attn_layer].abs().max()) > 0
    if n_heads == 1:  # one head = the whole attention output at every position
        site = f"attn_out.{pc.attn_layer}"
        with h.capture([site]) as c:
            h.forward(clean)
        a = c[site]
        with torch.no_grad(), h.edit({site: lambda x: a}):
            lp = h.forward(corr)[:, -1]
        r = torch.arange(len(ans))
        want = (lp[r, ans] - lp[r, wrong]) - res.corrupted
        assert torch.allclose(e[:, pc.attn_layer, 0], want, atol=1e-5)
    rows = res.to_rows()
    assert all("head" in r["extra"] for r in rows)
    # attribution patching per head: zero where the heads cannot matter, close where they do
    atp = patching.attribution_patching(h, clean, corr, ans, wrong, kinds=(), heads=True)
    a = atp.effects["head"]
    assert a.shape == e.shape and float(a[:, closed].abs().max()) == 0.0
    if n_heads > 1:
        err = patching.atp_error(res, atp)["head"]
        assert err["corr"] > 0.9


def test_gaussian_noise_corruption_and_prob_metric(circuit):
    h = circuit.handle
    clean, _, ans, _ = _inputs(h, n=6)
    emb = h.embed(clean).detach()
    where = torch.zeros(clean.shape, dtype=torch.bool)
    where[:, 2] = True
    noised = patching.gaussian_noise(h.embedding_matrix, emb, where, seed=1)
    assert torch.equal(noised[:, :2], emb[:, :2]) and not torch.equal(noised[:, 2], emb[:, 2])
    res = patching.activation_patching(h, clean, noised, ans, kinds=("resid_pre",), metric="prob")
    assert float(res.effects["resid_pre"][:, 0, :2].abs().max()) == 0.0
    assert torch.all(res.clean <= 1) and torch.all(res.clean >= 0)


def test_patching_grouped_query_attention():
    from transformers import LlamaConfig, LlamaForCausalLM

    from mindscope.models import wrap_model
    from mindscope.organisms.tokenization import to_hf, word_level_tokenizer

    tok = to_hf(word_level_tokenizer([], "abcdefghijklmnopqrstuvwxyz"))
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=1,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    h = wrap_model(LlamaForCausalLM(cfg), tok, name="tiny-gqa")
    clean, corr, ans, wrong = _inputs(h, n=4, t=6, k=(2,))
    ex = patching.activation_patching(h, clean, corr, ans, wrong, kinds=("resid_pre", "attn_out"))
    at = patching.attribution_patching(h, clean, corr, ans, wrong, kinds=("resid_pre", "attn_out"))
    assert float(ex.effects["resid_pre"][:, :, :2].abs().max()) == 0.0
    assert torch.isfinite(at.effects["attn_out"]).all()
    heads = patching.head_patching(h, clean, corr, ans, wrong)  # Llama's o_proj, 4 query heads
    assert heads.effects["head"].shape == (4, 2, 4)


def test_forward_logits_at_one_position(circuit):
    h = circuit.handle
    ids = _tokens(3, 7)
    full = h.forward(ids)
    for at in (-1, 2, 0, -7):
        assert torch.allclose(h.forward(ids, logits_at=at), full[:, at % 7][:, None], atol=1e-6)
    with pytest.raises(MindscopeError, match="out of range"):
        h.forward(ids, logits_at=7)


def test_patching_bad_input(circuit):
    h = circuit.handle
    clean, corr, ans, wrong = _inputs(h)
    with pytest.raises(MindscopeError, match="differ in shape"):
        patching.activation_patching(h, clean, corr[:, :-1], ans, wrong)
    with pytest.raises(MindscopeError, match="unknown patching site"):
        patching.activation_patching(h, clean, corr, ans, wrong, kinds=("resid_mid",))
    with pytest.raises(MindscopeError, match="wrong"):
        patching.activation_patching(h, clean, corr, ans, None)


# ------------------------------------------------------------------------------- erasure
def _concept_data(n=1200, d=12, k=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (n,), generator=g)
    mix = torch.randn(d, d, generator=g)
    x = torch.randn(n, d, generator=g) @ mix + torch.randn(k, d, generator=g)[y] * 2
    return x, y


@pytest.mark.parametrize("k", [2, 3])
def test_leace_equalises_class_means_and_defeats_a_linear_probe(k):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    x, y = _concept_data(k=k)
    eraser = erasure.LeaceFitter().fit(x[:800], y[:800]).eraser_
    xe = eraser(x[:800])
    for c in range(k):
        assert torch.allclose(xe[y[:800] == c].mean(0), xe.mean(0), atol=1e-3)
    clf = LogisticRegression(max_iter=2000).fit(eraser(x[:800]).numpy(), y[:800].numpy())
    proba = clf.predict_proba(eraser(x[800:]).numpy())
    auc = roc_auc_score(y[800:].numpy(), proba[:, 1] if k == 2 else proba, multi_class="ovr")
    before = LogisticRegression(max_iter=2000).fit(x[:800].numpy(), y[:800].numpy())
    pb = before.predict_proba(x[800:].numpy())
    auc_before = roc_auc_score(y[800:].numpy(), pb[:, 1] if k == 2 else pb, multi_class="ovr")
    assert auc_before > 0.9 and abs(auc - 0.5) < 0.08


def test_leace_streaming_equals_batch_and_oracle_edits_less():
    x, y = _concept_data()
    batch = erasure.LeaceFitter().fit(x, y).eraser_
    stream = erasure.LeaceFitter()
    for s in range(0, len(x), 97):
        stream.update(x[s : s + 97], y[s : s + 97], n_classes=2)
    assert torch.allclose(stream.eraser_.P, batch.P, atol=1e-6)
    no_shrink = erasure.LeaceFitter(shrinkage=False, constrain_cov_trace=False).fit(x, y).eraser_
    oracle = erasure.OracleFitter().fit(x, y).eraser_
    d_leace = (no_shrink(x) - x).pow(2).sum(-1).mean()
    d_oracle = (oracle(x, y) - x).pow(2).sum(-1).mean()
    assert d_oracle <= d_leace + 1e-6


def test_leace_bad_input_and_audit():
    x, y = _concept_data()
    with pytest.raises(MindscopeError, match="one class"):
        erasure.LeaceFitter().fit(x, torch.zeros(len(x), dtype=torch.long))
    for bad in (float("nan"), float("inf")):
        xb = x.clone()
        xb[5, 2] = bad
        with pytest.raises(MindscopeError, match="NaN or infinite"):
            erasure.LeaceFitter().fit(xb, y)
    fitter = erasure.LeaceFitter(dtype=torch.float32).fit(x[:600], y[:600])
    first = fitter.eraser_
    bias = first.bias.clone()
    fitter.update(x[600:], y[600:])  # a later update leaves an eraser already taken alone
    assert torch.equal(first.bias, bias) and not torch.equal(fitter.eraser_.bias, bias)
    audit = erasure.erasure_audit(x[:800], y[:800], x[800:], y[800:], n_boot=50)
    lo, hi = audit["linear_auroc_after"][1:]
    assert audit["linear_auroc_before"][0] > 0.9 and lo <= 0.5 <= hi + 0.02
    assert audit["distortion_ratio"][0] >= 0.99


def test_erasing_inside_the_model(circuit):
    h = circuit.handle
    ids = _tokens(40, 6)
    with h.capture(["resid_post.1"]) as c:
        h.forward(ids)
    x = c["resid_post.1"].reshape(-1, h.d_model)  # [n * pos, d]
    y = (ids.reshape(-1) % 2).long()
    eraser = erasure.LeaceFitter().fit(x, y).eraser_
    # the next block's input is the erased value
    with erasure.erasing(h, "resid_post.1", eraser), h.capture(["resid_pre.2"]) as c3:
        h.forward(ids)
    assert torch.allclose(c3["resid_pre.2"].reshape(-1, h.d_model), eraser(x), atol=1e-5)
    with pytest.raises(MindscopeError, match="width"):
        with erasure.erasing(h, "resid_post.1", erasure.LeaceFitter().fit(x[:, :5], y).eraser_):
            pass


# ------------------------------------------------------------------------------ steering
def _planted_direction(circuit, seed=0):
    """Positive tokens' embeddings = negative tokens' + s_t u, s_t in [0.5, 1.5] (a planted
    direction whose size varies, so that the differences also vary along it)."""
    h = planted_circuit(seed=seed).handle
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(h.d_model, generator=g)
    emb = h.model.get_input_embeddings().weight
    with torch.no_grad():
        for t in range(14, 27):
            emb[t] = emb[t - 13] + (0.5 + (t - 14) / 12) * u
    h.rehash()
    return h, u


def test_mean_difference_recovers_a_planted_direction(circuit):
    h, u = _planted_direction(circuit)
    letters = "abcdefghijklmnopqrstuvwxyz"
    g = torch.Generator().manual_seed(3)
    ctx = [
        "".join(letters[int(i)] for i in torch.randint(0, 26, (5,), generator=g)) for _ in range(40)
    ]
    neg = [c + letters[int(torch.randint(0, 13, (1,), generator=g))] for c in ctx]
    pos = [c + letters[letters.index(n[-1]) + 13] for c, n in zip(ctx, neg, strict=True)]
    caa = steering.mean_difference(h, pos, neg, "embed")
    pca = steering.pca_difference(h, pos, neg, "embed")
    assert caa.cosine(u) > 0.999
    assert abs(pca.cosine(u)) > 0.99
    deep = steering.mean_difference(h, pos, neg, "resid_post.3")
    assert deep.site == "resid_post.3" and deep.d == h.d_model


@pytest.fixture(scope="module")
def planted_dir():
    return steering.planted_direction(seed=0, steps=100, batch=48)


def test_planted_direction_controls_the_answer_and_caa_recovers_it(planted_dir):
    pd = planted_dir
    h, u = pd.handle, pd.direction
    pos, neg = pd.contrast(100, seed=7)
    neutral = pd.prompts(100, 0, seed=8)
    # the organism: polarity letters decide the answer, and so does the planted direction
    assert float((pd.answer_margin(pos) > 0).float().mean()) > 0.95
    assert float((pd.answer_margin(neg) < 0).float().mean()) > 0.95
    assert float((pd.answer_margin(neutral, pd.scale * u) > 0).float().mean()) > 0.95
    assert float((pd.answer_margin(neutral, -pd.scale * u) < 0).float().mean()) > 0.95
    caa = steering.mean_difference(h, pos, neg, pd.site)
    pca = steering.pca_difference(h, pos, neg, pd.site)
    assert caa.cosine(u) > 0.95 and abs(pca.cosine(u)) > 0.9
    # the recovered vector steers as the planted one does (half of it: one unit of polarity)
    half = caa.vector * 0.5
    assert float((pd.answer_margin(neutral, half) > 0).float().mean()) > 0.9
    # a random direction of the same size is no such control
    g = torch.Generator().manual_seed(0)
    r = torch.randn(h.d_model, generator=g)
    r = r - (r @ u) * u
    r = pd.scale * r / r.norm()
    up = float((pd.answer_margin(neutral, r) > 0).float().mean())
    down = float((pd.answer_margin(neutral, -r) < 0).float().mean())
    assert min(up, down) < 0.9
    with pytest.raises(MindscopeError, match="layer"):
        steering.planted_direction(layer=2, n_layers=3)


def test_steering_positions_and_padding(circuit):
    h = circuit.handle
    prompts = ["abcde", "fg", "hijk"]
    vec = steering.mean_difference(h, ["ab", "cd"], ["ef", "gh"], "resid_post.1") * 20.0
    plain = steering.generate(h, prompts, 4)
    gen_only = steering.generate(h, prompts, 4, vector=vec, positions="generated")
    assert [g[0] for g in gen_only] == [g[0] for g in plain]  # first token never steered
    for pos in ("all", "prompt", "generated"):
        right = steering.generate(h, prompts, 4, vector=vec, positions=pos, padding="right")
        left = steering.generate(h, prompts, 4, vector=vec, positions=pos, padding="left")
        assert right == left
    steered = steering.generate(h, prompts, 4, vector=vec, positions="all")
    assert steered != plain
    # a steered forward equals adding the vector at the site by hand
    ids = _tokens(3, 5)
    with steering.steering(h, vec, 0.5):
        a = h.forward(ids)
    with h.add({"resid_post.1": vec.vector * 0.5}):
        b = h.forward(ids)
    assert torch.allclose(a, b)


def test_steering_bad_input_and_save_load(circuit, tmp_path):
    h = circuit.handle
    vec = steering.mean_difference(h, ["ab", "cd"], ["ef", "gh"], "resid_post.1")
    with pytest.raises(MindscopeError, match="finite"):
        with steering.steering(h, vec, float("nan")):
            pass
    other = planted_circuit(seed=1).handle
    with pytest.raises(MindscopeError, match="read from model"):
        with steering.steering(other, vec, 1.0):
            pass
    with pytest.raises(MindscopeError, match="unknown site"):
        steering.mean_difference(h, ["ab"], ["cd"], "resid_mid.1")
    path = vec.save(tmp_path / "v")
    back = steering.load_vector(path, h)
    assert torch.equal(back.vector, vec.vector) and back.site == vec.site
    with pytest.raises(MindscopeError, match="read from model"):
        steering.load_vector(path, other)
    with pytest.raises(MindscopeError, match="refusing"):
        vec.save(path)
    both = (vec + vec) - vec * 0.5
    assert torch.allclose(both.vector, vec.vector * 1.5)


def test_dose_response_rates_and_selection(circuit):
    h = circuit.handle
    vec = steering.mean_difference(h, ["ab", "cd"], ["ef", "gh"], "resid_post.2")
    c0, c1 = 1, 2
    prompts = ["abc", "def", "ghi", "jkl", "mno", "pqr"]
    with torch.no_grad():
        base = []
        for p in prompts:
            lg = h.forward(torch.tensor(h.encode([p])))[0, -1]
            base.append(int(lg[c1] > lg[c0]))
    src = torch.tensor(base)
    tgt = torch.tensor([1 - b if i % 2 else b for i, b in enumerate(base)])
    task = steering.SteerTask(prompts, (c0, c1), src, tgt)
    rows = steering.dose_response(h, [vec], task, [0.0, 5.0, -5.0], prompts, n_boot=20)
    at0 = {r["metric"]: r["value"] for r in rows if r.get("extra", {}).get("multiplier") == 0.0}
    assert at0["flip_rate"] == 0.0 and at0["damage_rate"] == 0.0  # unsteered: the source labels
    assert at0["kl_neutral"] == pytest.approx(0.0, abs=1e-6)
    assert {"steer_slope", "wrong_way"} <= {r["metric"] for r in rows}
    best = steering.select_dose(rows, kl_budget=1e-9)
    assert best is not None and best["multiplier"] == 0.0
    with pytest.raises(MindscopeError, match="finite"):
        steering.dose_response(h, [vec], task, [float("nan")], prompts)


# ----------------------------------------------------------------------------- stages/CLI
def test_cli_patch_and_bad_input(tmp_path, capsys):
    from mindscope.cli import main

    out = tmp_path / "p"
    rc = main(
        [
            "patch",
            "--model",
            "organism:quirky-arith",
            "--out",
            str(out),
            "--n",
            "8",
            "--kinds",
            "resid_pre",
            "--corruption",
            "str",
        ]
    )
    assert rc == 0
    import pandas as pd

    df = pd.read_parquet(out / "results.parquet")
    assert {"patch_logit_diff", "atp_mae", "atp_corr"} <= set(df.metric)
    assert (
        main(
            [
                "steer",
                "--model",
                "organism:quirky-arith",
                "--out",
                str(tmp_path / "s"),
                "--multipliers",
                "nan",
            ]
        )
        == 2
    )
    assert main(["patch", "--model", "organism:quirky-arith", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "Traceback" not in err


def test_patch_stage_on_any_dataset_with_corrupted_prompts(tmp_path, capsys):
    import json

    import mindscope as ms
    from mindscope.analyses import run_stage
    from mindscope.analyses._interventions import swap_persona
    from mindscope.analyses.patch import quirky_patch_inputs
    from mindscope.cli import main
    from mindscope.data import quirky_arith

    h = ms.load_model("organism:quirky-arith")
    pairs = quirky_arith(80, seed=5, split="test")
    path = tmp_path / "pairs.jsonl"
    with path.open("w") as f:
        for p in pairs:
            rec = {
                "prompt": swap_persona(p.prompt, "alice"),
                "completions": list(p.completions),
                "label": p.meta["alice_label"],
                "meta": {
                    "corrupted": swap_persona(p.prompt, "bob"),
                    "corrupted_label": p.meta["bob_label"],
                },
            }
            f.write(json.dumps(rec) + "\n")
    cfg = {"dataset": str(path), "n": 12, "kinds": ["resid_pre"], "corruption": ["str"]}
    res = run_stage("patch", h, {**cfg, "heads": True})
    assert res.info["pairing"] == "meta" and res.info["n_used"] == 12
    # the same pairs through the Python API give the same map
    clean, corr, ans, wrong = quirky_patch_inputs(h, list(pairs), 12)
    exact = patching.activation_patching(h, clean, corr, ans, wrong)
    m, _ = exact.mean("resid_pre")
    rows = res.rows[(res.rows.metric == "patch_logit_diff") & (res.rows.method == "activation")]
    rows = rows[[json.loads(e)["site"] == "resid_pre" for e in rows.extra]]
    got = {(int(r.layer), json.loads(r.extra)["position"]): r.value for r in rows.itertuples()}
    assert all(abs(got[(la, po)] - float(m[la, po])) < 1e-5 for la, po in got)
    sites = {json.loads(e)["site"] for e in res.rows[res.rows.metric == "atp_corr"].extra}
    assert sites == {"resid_pre", "head"}  # AtP per head scored against exact head patching
    # bad inputs: no corrupted prompts, prompts that do not align, a persona pairing elsewhere
    with pytest.raises(MindscopeError, match="corrupted prompt"):
        run_stage("patch", h, {**cfg, "dataset": "facts"})
    bad = tmp_path / "unaligned.jsonl"
    bad.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"{i} + 1 = 2. Alice:",
                    "completions": [" False", " True"],
                    "label": 1,
                    "meta": {"corrupted": f"{i} + 1 + 1 = 2. Bob:"},
                }
            )
            + "\n"
            for i in range(10)
        )
    )
    with pytest.raises(MindscopeError, match="same token length"):
        run_stage("patch", h, {**cfg, "dataset": str(bad)})
    with pytest.raises(MindscopeError, match="persona"):
        run_stage("patch", h, {**cfg, "dataset": str(bad), "pairing": "persona"})
    out = tmp_path / "cli"
    assert (
        main(
            [
                "patch",
                "--model",
                "organism:quirky-arith",
                "--out",
                str(out),
                "--dataset",
                str(path),
                "--n",
                "6",
                "--kinds",
                "resid_pre",
                "--corruption",
                "noise",
                "--no-heads",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "patch",
                "--model",
                "organism:quirky-arith",
                "--out",
                str(tmp_path / "c2"),
                "--dataset",
                str(bad),
            ]
        )
        == 2
    )
    assert "same token length" in capsys.readouterr().err


def test_stages_feed_the_report_sections():
    import mindscope as ms
    from mindscope.analyses import run_stage
    from mindscope.report.registry import build_sections
    from mindscope.results import stamp

    h = ms.load_model("organism:quirky-arith")
    steer = run_stage(
        "steer",
        h,
        {"layers": [4], "n": 32, "n_test": 48, "n_boot": 10, "multipliers": [0.0, 2.0]},
    )
    # the unsteered model gives Alice's labels: at multiplier 0 a flip is an error of the model
    rows = steer.rows
    assert {"flip_rate", "damage_rate", "kl_neutral", "steer_slope"} <= set(rows.metric)
    erase = run_stage("erase", h, {"layers": [4], "n": 64, "n_test": 48, "n_boot": 10})
    after = erase.rows[erase.rows.metric == "linear_auroc_after"].iloc[0]
    before = erase.rows[erase.rows.metric == "linear_auroc_before"].iloc[0]
    assert before.value > 0.9 and after.ci_low <= 0.5 + 1e-9 <= after.ci_high + 0.05
    patch = run_stage("patch", h, {"n": 6, "kinds": ["resid_pre"], "corruption": ["noise"]})
    import pandas as pd

    df = stamp(pd.concat([steer.rows, erase.rows, patch.rows], ignore_index=True), h)
    names = {s.id for s in build_sections(df)}
    assert {"steering-dose", "erasure-audit", "patching-maps"} <= names
