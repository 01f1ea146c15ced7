"""The SAE stage and command on a tiny organism: training at two sites in one pass, loss
recovered by splicing, save/load with the model's hash, resumption, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.sweep_helpers import make_series, make_text


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    import mindscope as ms

    root = tmp_path_factory.mktemp("sae_org")
    series = make_series(root / "series")
    step = sorted(series.glob("step*"))[-1]
    text = make_text(root / "text.txt")
    return ms.load_model(str(step)), text, step


def _cfg(text: Path, **over):
    cfg = {
        "sites": ["resid_post.0", "resid_post.1"],
        "archs": ["topk", "jumprelu"],
        "n_latents": 64,
        "k": 4,
        "steps": 30,
        "batch_size": 128,
        "seq_len": 16,
        "buffer_windows": 32,
        "eval_windows": 16,
        "train_text": str(text),
    }
    cfg.update(over)
    return cfg


def test_stage_trains_scores_and_saves_with_the_hash(tiny, tmp_path):
    from mindscope.analyses import run_stage
    from mindscope.sae import load_sae

    h, text, _ = tiny
    out = run_stage("sae", h, _cfg(text, feature_cards=2), seed=0)
    df = out.rows
    out.artefacts["sae-resid_post.0-topk-features.json"](tmp_path / "cards.json")
    cards = json.loads((tmp_path / "cards.json").read_text())
    assert len(cards) == 2 and cards[0]["site"] == "resid_post.0" and cards[0]["contexts"]
    assert set(df.method) == {"sae:topk", "sae:jumprelu"}
    assert set(df.layer) == {0, 1}
    l0 = df[(df.metric == "l0") & (df.method == "sae:topk")].value
    assert (l0 <= 4 + 1e-9).all() and (l0 > 0).all()
    rec = df[df.metric == "ce_recovered_zero"].value
    assert rec.notna().all()
    # CE with the SAE spliced in lies at or above the clean CE, and the clean CE is the model's
    ce = df[df.metric == "ce_sae"].value.to_numpy()
    clean = df[df.metric == "ce_clean"].value.to_numpy()
    assert (ce >= clean - 1e-6).all()
    out.artefacts["sae-resid_post.1-topk"](tmp_path / "s")
    back = load_sae(
        tmp_path / "s", expect_meta={"weights_hash": h.weights_hash, "site": "resid_post.1"}
    )
    assert back.n_latents == 64
    from mindscope.errors import MindscopeError

    with pytest.raises(MindscopeError, match="site='resid_post.1', not 'resid_post.0'"):
        load_sae(tmp_path / "s", expect_meta={"site": "resid_post.0"})
    again = run_stage("sae", h, _cfg(text, loss_recovered=False), seed=0)
    a = df[df.metric == "fve"].value.to_numpy()
    b = again.rows[again.rows.metric == "fve"].value.to_numpy()
    assert a == pytest.approx(b)  # deterministic for a seed


def test_splice_of_identity_recovers_everything(tiny):
    from mindscope.analyses.sae import loss_recovered
    from mindscope.sae import token_windows

    h, text, _ = tiny

    class Identity:
        def reconstruct(self, x):
            return x

    w = token_windows(h, text.read_text().split("\n\n"), 16)[:8]
    r = loss_recovered(h, "resid_post.0", Identity(), w, torch.zeros(h.d_model))
    assert r["ce_sae"] == pytest.approx(r["ce_clean"], abs=1e-5)
    assert r["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    assert r["ce_recovered_zero"] == pytest.approx(1.0, abs=1e-4)


def test_resumes_after_a_kill(tiny, tmp_path, monkeypatch):
    from mindscope.analyses.sae import train_saes
    from mindscope.sae import SparseAutoencoder, token_windows

    h, text, _ = tiny
    w = token_windows(h, text.read_text().split("\n\n"), 16)
    kw: dict[str, Any] = dict(n_latents=32, k=3, batch_size=64, buffer_inputs=16, seed=1, steps=120)
    full = train_saes(h, w, ["resid_post.1"], ["batchtopk"], **kw)
    step = SparseAutoencoder.partial_fit

    def dies(self, x):
        if getattr(self, "step_", 0) == 105:
            raise KeyboardInterrupt
        return step(self, x)

    monkeypatch.setattr(SparseAutoencoder, "partial_fit", dies)
    with pytest.raises(KeyboardInterrupt):
        train_saes(h, w, ["resid_post.1"], ["batchtopk"], checkpoint=tmp_path, **kw)
    monkeypatch.setattr(SparseAutoencoder, "partial_fit", step)
    resumed = train_saes(h, w, ["resid_post.1"], ["batchtopk"], checkpoint=tmp_path, **kw)
    a, b = full[("resid_post.1", "batchtopk")], resumed[("resid_post.1", "batchtopk")]
    assert b.step_ == 120
    assert torch.allclose(a.W_dec_, b.W_dec_, atol=1e-6)
    assert torch.equal(a.threshold_, b.threshold_)


def test_cli_train_and_errors(tiny, tmp_path, capsys):
    from mindscope.cli import main

    _, text, step = tiny
    out = tmp_path / "run"
    code = main(
        [
            "sae",
            "train",
            "--model",
            str(step),
            "--sites",
            "resid_post.1",
            "--archs",
            "topk",
            "--n-latents",
            "32",
            "--k",
            "4",
            "--steps",
            "10",
            "--batch-size",
            "64",
            "--seq-len",
            "16",
            "--buffer-windows",
            "16",
            "--eval-windows",
            "4",
            "--train-text",
            str(text),
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert (out / "results.parquet").is_file()
    assert (out / "saes" / "resid_post.1-topk" / "model.safetensors").is_file()
    assert main(["sae", "train", "--model", str(step), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    code = main(
        [
            "sae",
            "train",
            "--model",
            str(step),
            "--k",
            "40",
            "--n-latents",
            "32",
            "--out",
            str(tmp_path / "x"),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "k=40" in err and len(err.strip().splitlines()) == 1
    code = main(
        ["sae", "train", "--model", str(step), "--archs", "topkk", "--out", str(tmp_path / "y")]
    )
    assert code == 2 and "unknown architecture" in capsys.readouterr().err


def test_cli_planted_bench(tmp_path, capsys):
    from mindscope.cli import main

    code = main(
        [
            "sae",
            "planted",
            "--setting",
            "easy",
            "--n-features",
            "32",
            "--d",
            "48",
            "--archs",
            "topk",
            "--k",
            "2",
            "--steps",
            "20",
            "--batch-size",
            "64",
            "--out",
            str(tmp_path / "p.json"),
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "mcc" in capsys.readouterr().out


def test_report_section_draws_sae_rows(tiny):
    from mindscope.analyses import run_stage
    from mindscope.report.registry import build_sections

    h, text, _ = tiny
    out = run_stage("sae", h, _cfg(text, archs=["topk"], steps=5), seed=0)
    sections = build_sections(out.rows)
    sae = [s for s in sections if s.id == "sae"]
    assert sae and sae[0].table is not None
    assert set(sae[0].table["method"]) == {"sae:topk"}
    assert len(sae[0].figures) == 4  # two sites x (loss recovered, dead fraction)


def test_report_draws_a_feature_page_per_card(tiny, tmp_path):
    from mindscope.analyses import run_stage
    from mindscope.report import write_report
    from mindscope.report.registry import build_sections
    from mindscope.results import read_table, write_table

    h, text, _ = tiny
    cfg = _cfg(text, archs=["topk"], sites=["resid_post.1"], steps=10, feature_cards=3)
    out = run_stage("sae", h, cfg, seed=0)
    out.artefacts["sae-resid_post.1-topk-features.json"](tmp_path / "cards.json")
    cards = json.loads((tmp_path / "cards.json").read_text())
    write_table(out.rows, tmp_path / "results.parquet")  # the page is read back from the rows
    df = read_table(tmp_path / "results.parquet")
    page = [s for s in build_sections(df) if s.id == "sae-features"]
    assert page, "no feature pages"
    table = page[0].table
    assert table is not None and len(table) == len(cards) == 3
    assert len(page[0].figures) == 2 * len(cards)  # a histogram and a table per latent
    by_latent = {c["latent"]: c for c in cards}
    for _, row in table.iterrows():
        card = by_latent[row["latent"]]
        assert row["top_context"] == card["contexts"][0]["context"]
        assert row["fire_rate"] == pytest.approx(card["histogram"]["fire_rate"], abs=1e-4)
    hist = page[0].figures[0].data[0]
    assert list(hist.y) == by_latent[table["latent"].iloc[0]]["histogram"]["counts"]
    html = write_report(df, tmp_path / "r.html").read_text()
    assert "top contexts" in html and "promoted tokens" in html


def test_feature_card_finds_the_top_contexts(tiny):
    from mindscope.sae import TopKSAE, feature_card, site_activations, token_windows

    h, text, _ = tiny
    w = token_windows(h, text.read_text().split("\n\n"), 16)[:12]
    x = site_activations(h, w, ["resid_post.1"])["resid_post.1"]
    model = TopKSAE(32, 3, n_steps=20, batch_size=64).fit(x)
    z = model.transform(x)
    latent = int((z > 0).sum(0).argmax())
    card = feature_card(h, model, "resid_post.1", w, latent, top=3)
    acts = [c["activation"] for c in card["contexts"]]
    assert acts == sorted(acts, reverse=True)
    assert acts[0] == pytest.approx(float(z[:, latent].max()), rel=1e-5)
    best = card["contexts"][0]
    assert best["window"] * 16 + best["position"] == int(z[:, latent].argmax())
    assert len(card["logit_effect"]["promoted"]) == 3
    assert sum(card["histogram"]["counts"]) == int((z[:, latent] > 0).sum())
    json.dumps(card)  # JSON-ready


def test_trains_from_the_activation_store_at_two_layers(tiny, tmp_path, monkeypatch):
    import mindscope as ms
    from mindscope.analyses.sae import train_saes
    from mindscope.sae import SparseAutoencoder, store_source

    h, _, _ = tiny
    texts = [f"cat {i} on {i % 7}" for i in range(200)]
    acts = ms.extract(h, texts, layers=[1, 2], position="mean", store=tmp_path / "store")
    src = store_source(acts, [1, 2], batch_size=48, seed=3)
    b = src(2)
    assert set(b) == {1, 2} and b[1].shape == (48, acts.shape[-1])
    full1, full2 = acts[1], acts[2]
    # the batch holds store rows, the same rows at both layers, and the same rows again
    idx = torch.cdist(b[1], full1).argmin(1)
    assert torch.equal(full1[idx], b[1]) and torch.equal(full2[idx], b[2])
    assert torch.equal(store_source(acts, [1, 2], batch_size=48, seed=3)(2)[2], b[2])
    # an epoch visits distinct rows (200 // 48 = 4 batches)
    seen = torch.cat([torch.cdist(src(s)[1], full1).argmin(1) for s in range(4)])
    assert len(seen.unique()) == 4 * 48
    kw: dict[str, Any] = dict(n_latents=32, k=3, steps=60, batch_size=48, seed=1)
    full = train_saes(None, None, [1, 2], ["topk"], source=src, **kw)
    step = SparseAutoencoder.partial_fit

    def dies(self, x):
        if getattr(self, "step_", 0) == 45:
            raise KeyboardInterrupt
        return step(self, x)

    monkeypatch.setattr(SparseAutoencoder, "partial_fit", dies)
    with pytest.raises(KeyboardInterrupt):
        train_saes(None, None, [1, 2], ["topk"], source=src, checkpoint=tmp_path / "c", **kw)
    monkeypatch.setattr(SparseAutoencoder, "partial_fit", step)
    again = store_source(acts, [1, 2], batch_size=48, seed=3)  # a fresh process's source
    resumed = train_saes(
        None, None, [1, 2], ["topk"], source=again, checkpoint=tmp_path / "c", **kw
    )
    for layer in (1, 2):
        a, r = full[(layer, "topk")], resumed[(layer, "topk")]
        assert r.step_ == 60 and torch.allclose(a.W_dec_, r.W_dec_, atol=1e-6)
    from mindscope.errors import MindscopeError

    with pytest.raises(MindscopeError, match="not in the activation store"):
        store_source(acts, [0])


def test_transcoder_trained_from_a_model_in_the_same_pass(tiny):
    from mindscope.analyses.sae import train_saes
    from mindscope.sae import reconstruction_metrics, site_activations, token_windows

    h, text, _ = tiny
    w = token_windows(h, text.read_text().split("\n\n"), 16)
    kw: dict[str, Any] = dict(n_latents=64, k=4, batch_size=64, buffer_inputs=16, seed=0, steps=80)
    pair = ("resid_post.0", "mlp_out.1")
    out = train_saes(h, w, ["resid_post.1"], ["topk"], transcoders=[pair], **kw)
    assert set(out) == {("resid_post.1", "topk"), ("resid_post.0->mlp_out.1", "topk")}
    tc = out[("resid_post.0->mlp_out.1", "topk")]
    assert tc.transcoder_ and not out[("resid_post.1", "topk")].transcoder_
    acts = site_activations(h, w[-8:], list(pair))
    x, y = acts[pair[0]], acts[pair[1]]
    r = reconstruction_metrics(y, tc.reconstruct(x), tc.transform(x))
    assert r["fve"] > 0.3, r  # predicts the MLP's output from the residual before it


def test_stage_scores_a_transcoder_spliced_at_its_output_site(tiny, tmp_path, capsys):
    from mindscope.analyses import run_stage
    from mindscope.cli import main
    from mindscope.errors import MindscopeError
    from mindscope.results import extra_values

    h, text, step = tiny
    cfg = _cfg(text, archs=["topk"], sites=[], transcoders=["resid_post.0 -> mlp_out.1"])
    out = run_stage("sae", h, {**cfg, "steps": 40}, seed=0)
    df = out.rows
    assert set(extra_values(df, "site")) == {"resid_post.0->mlp_out.1"}
    assert set(df.layer) == {1}
    m = dict(zip(df.metric, df.value, strict=False))
    assert m["ce_sae"] >= m["ce_clean"] - 1e-6 and m["fve"] > 0
    out.artefacts["sae-resid_post.0->mlp_out.1-topk"](tmp_path / "tc")
    assert main(["sae", "eval", "--model", str(step), "--sae", str(tmp_path / "tc"),
                 "--text", str(text), "--seq-len", "16", "--windows", "8"]) == 0  # fmt: skip
    assert "ce_recovered_zero" in capsys.readouterr().out
    with pytest.raises(MindscopeError, match="input_site->output_site"):
        run_stage("sae", h, {**cfg, "transcoders": ["resid_post.0"]}, seed=0)
