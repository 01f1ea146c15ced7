"""Model access's key/value caches: a suffix on a cached prefix equals the plain forward."""

from __future__ import annotations

import pytest
import torch

import mindscope as ms
from mindscope.models.cache import (
    cache_kwarg,
    expand_cache,
    new_cache,
    prefix_inputs,
    suffix_inputs,
    supports_cache,
)
from mindscope.testing import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ms.ModelHandle:
    torch.manual_seed(0)
    d = save_tiny_model("gpt_neox", tmp_path_factory.mktemp("cache") / "neox")
    return ms.load_model(str(d), device="cpu")


def test_right_padded_prefixes_expanded_then_suffixes_equal_the_plain_forward(
    tiny: ms.ModelHandle,
) -> None:
    gen = torch.Generator().manual_seed(1)
    lengths = [5, 2, 4]  # right-padded to 5
    prefixes = [torch.randint(0, tiny.vocab_size, (n,), generator=gen) for n in lengths]
    pids = torch.zeros(len(lengths), 5, dtype=torch.long)
    pmask = torch.zeros(len(lengths), 5, dtype=torch.long)
    for i, p in enumerate(prefixes):
        pids[i, : len(p)], pmask[i, : len(p)] = p, 1
    sids = torch.randint(0, tiny.vocab_size, (2 * len(lengths), 3), generator=gen)  # 2 per prefix
    smask = torch.ones_like(sids)

    model = tiny.model
    cache = new_cache(tiny)
    with torch.no_grad():
        model(**prefix_inputs(model, cache, pids, pmask, "cpu"))
        expand_cache(cache, 2)
        kw = suffix_inputs(model, cache, pmask.repeat_interleave(2, 0), sids, smask, "cpu")
        got = model(**kw)["logits"].float()  # [2n, 3, vocab]
    for row in range(sids.shape[0]):
        whole = torch.cat([prefixes[row // 2], sids[row]])[None]  # [1, Lp + 3]
        ref = tiny.forward(whole)[0, -3:].float()
        assert torch.allclose(got[row], ref, atol=1e-5), float((got[row] - ref).abs().max())


def test_suffix_positions_continue_from_each_prefix_length() -> None:
    class Fake(torch.nn.Module):
        def forward(self, input_ids, attention_mask=None, position_ids=None, past_key_values=None):
            return input_ids

    pmask = torch.tensor([[1, 1, 1], [1, 0, 0]])
    kw = suffix_inputs(
        Fake(), "C", pmask, torch.ones(2, 2, dtype=torch.long), torch.ones(2, 2), "cpu"
    )
    assert kw["past_key_values"] == "C" and kw["use_cache"] is True
    assert kw["position_ids"].tolist() == [[3, 4], [1, 2]]
    assert kw["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 0, 0, 1, 1]]


def test_modules_without_a_cache_are_told_apart() -> None:
    lin = torch.nn.Linear(2, 2)
    assert cache_kwarg(lin) is None and not supports_cache(lin)
    with pytest.raises(ms.MindscopeError, match="takes no key/value cache"):
        prefix_inputs(lin, None, torch.zeros(1, 2, dtype=torch.long), torch.ones(1, 2), "cpu")
