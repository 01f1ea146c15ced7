"""The one engine: a differentiable forward path, generic hooked modules, device-aware reporters.

Gradients are checked against central finite differences in float64; the generic path is
checked on small MLP and CNN policy networks whose probed quantity is planted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import mindscope as ms
from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError
from mindscope.models import HookedModule
from mindscope.probes import LogisticReporter, RidgeReporter
from mindscope.probes.metrics import roc_auc


@pytest.fixture(scope="module")
def neox(tmp_path_factory: pytest.TempPathFactory) -> ms.ModelHandle:
    from mindscope.testing import save_tiny_model

    d = save_tiny_model("gpt_neox", tmp_path_factory.mktemp("neox") / "m", n_layers=2)
    h = ms.load_model(d, device="cpu")
    h.model.double()
    return h


def _ids(h: ms.ModelHandle) -> torch.Tensor:
    return torch.tensor([[5, 9, 12, 7, 20], [3, 8, 8, 30, 11]])


def test_forward_matches_hf_and_embeds_path(neox: ms.ModelHandle) -> None:
    ids = _ids(neox)
    with torch.no_grad():
        ref = neox.model(input_ids=ids).logits
    got = neox.forward(ids)
    torch.testing.assert_close(got, ref, rtol=0, atol=0)
    via_embeds = neox.forward(inputs_embeds=neox.embed(ids))
    torch.testing.assert_close(via_embeds, ref, rtol=1e-12, atol=1e-12)
    onehot = torch.nn.functional.one_hot(ids, neox.vocab_size).double()
    torch.testing.assert_close(
        neox.forward(inputs_embeds=onehot @ neox.embedding_matrix), ref, rtol=1e-10, atol=1e-10
    )
    assert neox.embedding_matrix.shape == (neox.vocab_size, neox.d_model)
    assert not got.requires_grad


def test_gradient_wrt_one_hot_matches_finite_differences(neox: ms.ModelHandle) -> None:
    ids = _ids(neox)[:1]
    target = 17
    onehot = torch.nn.functional.one_hot(ids, neox.vocab_size).double()

    def f(oh: torch.Tensor, grad: bool = False) -> torch.Tensor:
        logits = neox.forward(inputs_embeds=oh @ neox.embedding_matrix, grad=grad)
        return logits[0, -1].log_softmax(-1)[target]

    oh = onehot.clone().requires_grad_(True)
    f(oh, grad=True).backward()
    assert oh.grad is not None
    eps = 1e-6
    rng = np.random.default_rng(0)
    for _ in range(6):
        pos, tok = int(rng.integers(ids.shape[1])), int(rng.integers(neox.vocab_size))
        e = torch.zeros_like(onehot)
        e[0, pos, tok] = eps
        fd = (f(onehot + e) - f(onehot - e)) / (2 * eps)
        assert abs(float(fd) - float(oh.grad[0, pos, tok])) < 1e-6 * max(1.0, abs(float(fd)))
    # parameters stay frozen: no gradient accumulates on the model
    assert all(p.grad is None for p in neox.model.parameters())


def test_capture_keeps_graph_and_add_receives_gradients(neox: ms.ModelHandle) -> None:
    ids = _ids(neox)
    vec = torch.zeros(neox.d_model, dtype=torch.float64, requires_grad=True)
    with neox.add({"resid_post.0": vec}), neox.capture(["resid_post.1"], detach=False) as cache:
        logits = neox.forward(ids, grad=True)
    assert cache["resid_post.1"].requires_grad
    logits[:, -1, 3].sum().backward()
    assert vec.grad is not None and float(vec.grad.abs().sum()) > 0
    # finite differences along the steering vector's first coordinate
    eps = 1e-6

    def g(delta: float) -> float:
        v = torch.zeros(neox.d_model, dtype=torch.float64)
        v[0] = delta
        with neox.add({"resid_post.0": v}):
            return float(neox.forward(ids)[:, -1, 3].sum())

    fd = (g(eps) - g(-eps)) / (2 * eps)
    assert abs(fd - float(vec.grad[0])) < 1e-6 * max(1.0, abs(fd))


def test_reporter_is_differentiable_in_its_input() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(200, 8, generator=gen, dtype=torch.float64)
    y = (x[:, 0] + 0.3 * torch.randn(200, generator=gen, dtype=torch.float64) > 0).long()
    rep = LogisticReporter(C=1.0).fit(x, y)
    xq = x[:5].clone().requires_grad_(True)
    p = rep.predict_proba(xq)
    assert p.requires_grad
    p.sum().backward()
    assert xq.grad is not None
    eps = 1e-6
    for j in range(3):
        e = torch.zeros_like(xq)
        e[1, j] = eps
        fd = (rep.predict_proba(x[:5] + e).sum() - rep.predict_proba(x[:5] - e).sum()) / (2 * eps)
        assert abs(float(fd) - float(xq.grad[1, j])) < 1e-5


def test_reporter_refuses_tensors_on_two_devices() -> None:
    x = torch.randn(40, 4)
    y = torch.randint(0, 2, (40,), device="meta")
    with pytest.raises(MindscopeError, match="put them on one device"):
        LogisticReporter(C=1.0).fit(x, y)


def test_embeds_of_wrong_width_and_bad_forward_inputs(neox: ms.ModelHandle) -> None:
    with pytest.raises(MindscopeError, match=r"inputs_embeds must be \[batch, pos, 32\]"):
        neox.forward(inputs_embeds=torch.zeros(1, 3, 7, dtype=torch.float64))
    with pytest.raises(MindscopeError, match="exactly one of"):
        neox.forward()
    with pytest.raises(MindscopeError, match="longer than"):
        neox.forward(torch.zeros(1, 500, dtype=torch.long))


# ----------------------------------------------------------------------------- generic modules
class _Policy(nn.Module):
    """A tiny MLP policy: obs [batch, 6] -> logits [batch, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(6, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh())
        self.head = nn.Linear(64, 3)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(obs))


def test_mlp_policy_hooked_and_probed_through_the_generic_path() -> None:
    torch.manual_seed(0)
    pol = _Policy()
    hm = HookedModule(pol, sites={"hidden": "body.3", "obs": "body.0:in"}, name="policy")
    gen = torch.Generator().manual_seed(1)
    obs = torch.randn(1200, 6, generator=gen)
    # capture: the hidden site equals a manual forward of the body
    with hm.capture(["hidden"]) as cache:
        out = pol(obs[:10])
    torch.testing.assert_close(cache["hidden"], pol.body(obs[:10]))
    # run with stop: the head never runs, and the observation site is the input itself
    calls = []
    handle = pol.head.register_forward_hook(lambda *a: calls.append(1))
    try:
        none, acts = hm.run(obs[:10], sites=["hidden", "obs"], stop=True)
    finally:
        handle.remove()
    assert none is None and not calls
    torch.testing.assert_close(acts["obs"], obs[:10])
    # add: a vector at the hidden site shifts the logits by head.weight @ vec
    vec = torch.randn(64)
    with hm.add({"hidden": vec}):
        shifted = pol(obs[:10])
    torch.testing.assert_close(shifted - out, (pol.head.weight @ vec).expand(10, 3))
    # extract from arbitrary batches, then probe a planted binary and a continuous quantity
    feats = hm.extract(list(obs.split(100)), ["hidden"])["hidden"]  # [1200, 64]
    assert feats.shape == (1200, 64)
    label = (obs[:, 0] - obs[:, 1] > 0).long()
    lr = LogisticReporter().fit(feats[:800], label[:800])
    assert float(roc_auc(lr.predict_proba(feats[800:]), label[800:])) > 0.95
    target = obs[:, 2] + 0.5 * obs[:, 3]
    ridge = RidgeReporter().fit(feats[:800], target[:800])
    assert ridge.score(feats[800:], target[800:]) > 0.9
    shuffled = target[:800][torch.randperm(800, generator=gen)]
    assert RidgeReporter().fit(feats[:800], shuffled).score(feats[800:], target[800:]) < 0.1


def test_cnn_policy_sites_and_errors() -> None:
    torch.manual_seed(0)
    cnn = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 5 * 5, 4)
    )
    hm = HookedModule(cnn)  # every submodule path is a site
    assert hm.sites == ["0", "1", "2", "3"]
    _, acts = hm.run(torch.randn(2, 3, 5, 5), sites=["1"], stop=True)
    assert acts["1"].shape == (2, 8, 5, 5)
    assert len(hm.weights_hash) == 16
    with pytest.raises(MindscopeError, match="no submodule 'conv9'"):
        hm.run(torch.randn(2, 3, 5, 5), sites=["conv9"])
    named = HookedModule(cnn, sites={"features": "1"})
    with pytest.raises(MindscopeError, match="has no site 'pixels'"):
        named.capture(["pixels"]).__enter__()
    with pytest.raises(MindscopeError, match="width 3, the site's width is 4"):
        with HookedModule(cnn, sites={"logits": "3"}).add({"logits": torch.zeros(3)}):
            cnn(torch.randn(1, 3, 5, 5))
    with pytest.raises(TypeError, match="wraps a torch.nn.Module"):
        HookedModule("not a module")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- one tokenization
def test_lm_answer_and_extraction_see_the_same_tokens(tmp_path: Path) -> None:
    """With a tokenizer that adds BOS, the model's answer is read on exactly the ids that
    extraction reads the probe on (the previous engine used add_special_tokens=False)."""
    from tokenizers import processors

    from mindscope.activations import lm_logodds
    from mindscope.testing import save_tiny_model

    d = save_tiny_model("gpt_neox", tmp_path / "m", n_layers=2)
    h = ms.load_model(d, device="cpu")
    bos = h.tokenizer.bos_token_id
    h.tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", special_tokens=[("[BOS]", bos)]
    )
    pairs = [
        ContrastPair("the cat sat on the mat . alice :", (" false", " true"), label=1),
        ContrastPair("two plus two equals five . bob :", (" false", " true"), label=0),
    ]
    ids = h.encode([p.prompt for p in pairs])
    assert all(seq[0] == bos for seq in ids)
    got = lm_logodds(h, pairs)
    tok = h.tokenizer
    for i in range(len(pairs)):
        logits = h.forward(torch.tensor([ids[i]]))[0, -1].log_softmax(-1)
        t, f = tok.convert_tokens_to_ids("true"), tok.convert_tokens_to_ids("false")
        assert abs(float(logits[t] - logits[f]) - float(got[i])) < 1e-5
    # the probe side: extraction's last position is the prompt's last token, after BOS
    acts = ms.extract(h, [p.prompt for p in pairs], layers=[2], store=tmp_path / "store")
    with h.capture(["resid_post.1"]) as cache:
        h.forward(torch.tensor([ids[0]]))
    torch.testing.assert_close(torch.as_tensor(acts[2][0]), cache["resid_post.1"][0, -1])


# ----------------------------------------------------------------------------- offloading
def test_offloaded_model_extracts_the_same_numbers(tmp_path: Path) -> None:
    from mindscope.testing import save_tiny_model

    d = save_tiny_model("gpt_neox", tmp_path / "m", n_layers=3)
    full = ms.load_model(d, device="cpu")
    dmap = {
        "gpt_neox.embed_in": "cpu",
        "gpt_neox.rotary_emb": "cpu",
        "gpt_neox.layers.0": "cpu",
        "gpt_neox.layers.1": "disk",
        "gpt_neox.layers.2": "disk",
        "gpt_neox.final_layer_norm": "cpu",
        "lm_head": "cpu",
    }
    off = ms.load_model(d, device_map=dmap, offload_folder=tmp_path / "offload")
    assert off.model.hf_device_map["gpt_neox.layers.2"] == "disk"
    # offloaded weights are not held in memory: their parameters are placeholders
    assert next(off.model.gpt_neox.layers[2].parameters()).device.type == "meta"
    assert off.weights_hash == full.weights_hash  # from the files, no parameter copied
    texts = ["the cat sat on the mat", "paris is the capital of france"]
    a = ms.extract(full, texts, store=tmp_path / "s1", progress=False)
    b = ms.extract(off, texts, store=tmp_path / "s2", progress=False)
    np.testing.assert_allclose(a.stack(), b.stack(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(
        off.forward(_ids(off)), full.forward(_ids(full)), rtol=1e-5, atol=1e-5
    )
    with pytest.raises(ms.MindscopeError, match="need device_map"):
        ms.load_model(d, offload_folder=tmp_path / "x")
