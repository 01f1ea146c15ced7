"""Logit lens and tuned lens: maths against closed forms, training, I/O and evaluation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mindscope.errors import MindscopeError
from mindscope.lenses import (
    LogitLens,
    TrainConfig,
    TunedLens,
    evaluate,
    read_texts,
    residual_stack,
    trajectory,
)
from mindscope.lenses.evaluation import bootstrap_ratio
from mindscope.lenses.train import kl_backward
from mindscope.models import load_model
from mindscope.results import COLUMNS
from mindscope.testing import save_tiny_model

CAUSAL = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "opt")

TEXTS = [
    "the cat sat on the mat . the dog sat on the mat .",
    "alice and bob . one plus two equals three . two plus two equals four .",
    "paris is the capital of france . london is red and blue .",
    "yes no true false . the cat is green . it was one two three four five .",
] * 6
HELDOUT = [
    "the dog sat on the red mat . one plus one equals two .",
    "london is the capital of blue . alice was true and bob was false .",
    "three four five six seven eight nine zero . the cat is on the mat .",
] * 3


@pytest.fixture(scope="module")
def neox(tiny_dirs):
    return load_model(tiny_dirs["gpt_neox"], device="cpu")


@pytest.fixture(scope="module")
def fitted(neox):
    cfg = TrainConfig(num_steps=40, tokens_per_step=256, seq_len=16, batch_size=8, progress=False)
    return TunedLens.fit(neox, TEXTS, cfg)


@pytest.mark.parametrize("arch", CAUSAL)
def test_logit_lens_last_layer_is_the_model(tiny_dirs, arch):
    h = load_model(tiny_dirs[arch], device="cpu", dtype="float32")
    ids = torch.tensor([[5, 9, 12, 7, 30, 8, 11]])
    resid, logits = residual_stack(h, ids)
    assert resid.shape == (h.n_layers + 1, 1, 7, h.d_model)
    with torch.no_grad():
        direct = h.model(input_ids=ids).logits
        lens_logits = LogitLens(h).logits(resid[-1], h.n_layers)
        hf = h.model(input_ids=ids, output_hidden_states=True).hidden_states
    torch.testing.assert_close(lens_logits, direct, atol=1e-4, rtol=0)
    # layer k = 0 is the embedding output, as hidden_states[0]
    torch.testing.assert_close(resid[0], hf[0], atol=1e-5, rtol=0)


def test_encoder_is_refused(tiny_dirs):
    h = load_model(tiny_dirs["bert"], device="cpu")
    for build in (lambda: LogitLens(h), lambda: TunedLens(h), lambda: evaluate(h, None, TEXTS)):
        with pytest.raises(MindscopeError, match="not a causal language model"):
            build()


def test_untrained_tuned_lens_is_the_logit_lens(neox):
    ids = torch.tensor([[5, 9, 12, 7]])
    resid, _ = residual_stack(neox, ids)
    tl, ll = TunedLens(neox), LogitLens(neox)
    for k in range(neox.n_layers + 1):
        torch.testing.assert_close(tl.logits(resid[k], k), ll.logits(resid[k], k))


def test_transform_all_matches_per_layer_affine_map(neox):
    torch.manual_seed(0)
    lens = TunedLens(neox)
    with torch.no_grad():
        lens.weight.normal_(std=0.1)
        lens.bias.normal_()
    x = torch.randn(neox.n_layers, 5, neox.d_model)
    out = lens.transform_all(x)
    for k in range(neox.n_layers):
        a, b = lens.weight[k].detach(), lens.bias[k].detach()
        torch.testing.assert_close(out[k], x[k] + x[k] @ a.T + b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(lens.transform(x[k], k), out[k])
    assert torch.equal(lens.transform(x[0], neox.n_layers), x[0])  # identity at the output


def test_chunked_kl_gradient_matches_naive_loss(neox):
    torch.manual_seed(1)
    ids = torch.randint(7, 60, (2, 6))
    resid, logits = residual_stack(neox, ids)
    r = resid[:-1].flatten(1, 2)  # [L, 12, d]
    final = logits.flatten(0, 1)
    lens = TunedLens(neox)
    with torch.no_grad():
        lens.weight.normal_(std=0.05)
    sums = kl_backward(lens, r, final, scale=0.5, max_chunk_elements=3 * neox.vocab_size)
    g = lens.weight.grad.clone()
    lens.weight.grad = None
    lens.bias.grad = None
    loss = torch.zeros(())
    for k in range(neox.n_layers):
        logq = torch.log_softmax(neox.logits_from_resid(lens.transform(r[k], k)), -1)
        logp = torch.log_softmax(final, -1)
        loss = loss + torch.nn.functional.kl_div(logq, logp, log_target=True, reduction="sum")
    (0.5 * loss).backward()
    torch.testing.assert_close(g, lens.weight.grad, atol=1e-6, rtol=1e-4)
    # the reported KL is sum p log p - sum p log q in float32: round-off ~1e-5 relative
    assert sums.sum().item() == pytest.approx(loss.item(), rel=1e-4)


def test_fit_trains_every_layer_and_beats_the_logit_lens(neox, fitted):
    assert fitted.weight.abs().sum(dim=(1, 2)).min() > 0  # every translator moved
    hist = fitted.info["mean_kl_history"]
    assert len(hist) == 40 and hist[-1] < hist[0]
    df = evaluate(neox, fitted, HELDOUT, n_boot=200, seq_len=32)
    kl = df[df.metric == "kl"].pivot(index="layer", columns="method", values="value")
    last = neox.n_layers
    assert (kl.loc[: last - 1, "tuned_lens"] < kl.loc[: last - 1, "logit_lens"]).all()
    assert kl.loc[last, "logit_lens"] == pytest.approx(0, abs=1e-6)
    assert kl.loc[last, "tuned_lens"] == pytest.approx(0, abs=1e-6)


def test_fit_rejects_too_little_text(neox):
    with pytest.raises(MindscopeError, match="fewer than one batch"):
        TunedLens.fit(neox, ["the cat"], num_steps=1, seq_len=16, progress=False)
    with pytest.raises(MindscopeError, match="empty"):
        TunedLens.fit(neox, ["", "  "], num_steps=1, progress=False)
    with pytest.raises(MindscopeError, match="unknown tuned-lens training option"):
        TunedLens.fit(neox, TEXTS, num_stepz=1)


def test_adam_option_trains(neox):
    lens = TunedLens.fit(
        neox, TEXTS, num_steps=10, tokens_per_step=128, seq_len=16, optimizer="adam",
        progress=False,
    )  # fmt: skip
    assert lens.weight.abs().sum() > 0
    assert math.isfinite(lens.info["mean_kl_history"][-1])


def test_save_load_roundtrip_and_refusals(neox, fitted, tiny_dirs, tmp_path):
    out = fitted.save(tmp_path / "lens")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["unembed_hash"] == neox.unembed_hash and cfg["n_layers"] == neox.n_layers
    again = TunedLens.load(out, neox)
    assert torch.equal(again.weight, fitted.weight) and torch.equal(again.bias, fitted.bias)
    with pytest.raises(MindscopeError, match="not empty"):
        fitted.save(out)
    fitted.save(out, force=True)
    other = load_model(save_tiny_model("gpt_neox", tmp_path / "other", seed=7), device="cpu")
    with pytest.raises(MindscopeError, match="unembedding hash"):
        TunedLens.load(out, other)
    with pytest.raises(MindscopeError, match="wrong model"):
        evaluate(other, fitted, HELDOUT)
    deeper = load_model(save_tiny_model("gpt_neox", tmp_path / "deep", n_layers=4), device="cpu")
    with pytest.raises(MindscopeError, match="4"):
        TunedLens.load(out, deeper)
    with pytest.raises(MindscopeError, match="no lens directory"):
        TunedLens.load(tmp_path / "missing", neox)


def test_evaluate_rows_and_closed_forms(neox, fitted):
    df = evaluate(neox, fitted, HELDOUT, n_boot=300, seq_len=64, dataset="toy", split="heldout")
    assert list(df.columns) == list(COLUMNS)
    k_all = neox.n_layers + 1
    assert len(df) == 2 * 3 * k_all
    assert set(df.method) == {"logit_lens", "tuned_lens"}
    assert set(df.metric) == {"kl", "ce", "entropy"}
    assert (df.n == len(HELDOUT)).all() and (df.dataset == "toy").all()
    assert json.loads(df.extra.iloc[0])["unit"] == "nats"
    assert ((df.ci_low <= df.value + 1e-9) & (df.value <= df.ci_high + 1e-9)).all()
    # at the last layer, the lens CE is the model's own next-token loss (token-weighted)
    tot, cnt = 0.0, 0
    for t in HELDOUT:
        ids = neox.tokenizer(t, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            loss = neox.model(input_ids=ids, labels=ids).loss
        tot += loss.item() * (ids.shape[1] - 1)
        cnt += ids.shape[1] - 1
    ce = df[(df.metric == "ce") & (df.layer == neox.n_layers)].value
    assert ce.to_numpy() == pytest.approx(tot / cnt, rel=1e-4)
    # entropy is at most log(vocab)
    assert (df[df.metric == "entropy"].value <= math.log(neox.vocab_size) + 1e-6).all()


def test_evaluate_is_independent_of_batching_and_chunking(neox):
    a = evaluate(neox, None, HELDOUT[:3], n_boot=0, batch_size=1, seq_len=8)
    b = evaluate(neox, None, HELDOUT[:3], n_boot=0, batch_size=5, seq_len=8, max_chunk_elements=1)
    np.testing.assert_allclose(a.value.to_numpy(), b.value.to_numpy(), rtol=1e-5, atol=1e-7)
    assert a.ci_low.isna().all()


def test_bootstrap_ratio_closed_form_cases():
    sums = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    counts = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    lo, hi = bootstrap_ratio(sums, counts, 200, 0)
    assert lo.item() == pytest.approx(1.0) and hi.item() == pytest.approx(1.0)
    lo, hi = bootstrap_ratio(torch.tensor([[0.0, 10.0, 2.0, 8.0]]), counts, 500, 0)
    assert 0 <= lo.item() < 5 < hi.item() <= 10
    lo, _ = bootstrap_ratio(torch.tensor([[3.0]]), torch.tensor([[1.0]]), 100, 0)
    assert math.isnan(lo.item())


def test_trajectory(neox, fitted):
    prompt = "the cat sat on the"
    tr = trajectory(neox, fitted, prompt)
    ids = neox.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        top = neox.model(input_ids=ids).logits[0].argmax(-1)
    assert tr.top_tokens[-1] == [neox.tokenizer.decode([int(i)]) for i in top]
    assert tr.top_probs.shape == (neox.n_layers + 1, ids.shape[1])
    assert np.allclose(tr.kl[-1], 0, atol=1e-6)
    frame = tr.to_frame()
    assert len(frame) == (neox.n_layers + 1) * ids.shape[1]
    assert tr.table().shape == (neox.n_layers + 1, ids.shape[1])
    json.dumps(tr.to_dict())
    rows = tr.to_rows()
    assert {r.metric for r in rows} == {"top_prob", "entropy", "kl"}
    fig = tr.figure("prob")
    assert fig.data[0].type == "heatmap"
    assert trajectory(neox, None, prompt).method == "logit_lens"
    with pytest.raises(MindscopeError, match="empty"):
        trajectory(neox, None, "   ")


def test_read_texts(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("first doc\nline two\n\n\nsecond doc\n")
    assert read_texts(p) == ["first doc\nline two", "second doc"]
    j = tmp_path / "d.jsonl"
    j.write_text('{"text": "a b"}\n\n{"text": "c", "id": 2}\n')
    assert read_texts(j) == ["a b", "c"]
    (tmp_path / "e.txt").write_text("\n \n")
    with pytest.raises(MindscopeError, match="empty"):
        read_texts(tmp_path / "e.txt")
    (tmp_path / "bad.jsonl").write_text('{"txt": 1}\n')
    with pytest.raises(MindscopeError, match='"text"'):
        read_texts(tmp_path / "bad.jsonl")
    with pytest.raises(MindscopeError, match="no such"):
        read_texts(tmp_path / "nope.txt")
