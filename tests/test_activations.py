"""Extraction engine and store: exactness against plain hooks, pairs, resume, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import mindscope as ms
from mindscope.data import ContrastPair
from mindscope.errors import MindscopeError, StoreError

PROMPTS = [
    "the cat sat on the mat",
    "a dog",
    "alice is red and blue and green",
    "one two three four five six seven",
    "bob was in london",
]


def _reference(h: ms.ModelHandle, texts: list[str], position: str) -> torch.Tensor:
    """[layers, n, d] computed one text at a time with plain capture hooks."""
    out = []
    for t in texts:
        enc = h.tokenizer(t, return_tensors="pt")
        with h.capture(["embed"] + [f"resid_post.{i}" for i in range(h.n_layers)]) as c:
            h.model(input_ids=enc.input_ids)
        hs = [c["embed"]] + [c[f"resid_post.{i}"] for i in range(h.n_layers)]
        if position == "last":
            out.append(torch.stack([x[0, -1] for x in hs]))
        else:
            out.append(torch.stack([x[0].mean(0) for x in hs]))
    return torch.stack(out, 1)


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama", "opt", "bert"])
@pytest.mark.parametrize("position", ["last", "mean"])
def test_batched_extraction_matches_unbatched(
    tiny_dirs: dict[str, Path], tmp_path: Path, arch: str, position: str
) -> None:
    h = ms.load_model(tiny_dirs[arch])
    acts = ms.extract(h, PROMPTS, position=position, batch_size=2, store=tmp_path, progress=False)
    assert acts.layers == list(range(h.n_layers + 1)) and acts.shape == (5, 32)
    torch.testing.assert_close(acts.stack(), _reference(h, PROMPTS, position), atol=1e-5, rtol=0)


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_tokenizer_padding_side_does_not_matter(
    tiny_dirs: dict[str, Path], tmp_path: Path, padding_side: str
) -> None:
    h = ms.load_model(tiny_dirs["gpt_neox"])
    h.tokenizer.padding_side = padding_side
    acts = ms.extract(h, PROMPTS, batch_size=5, store=tmp_path / padding_side, progress=False)
    torch.testing.assert_close(acts.stack(), _reference(h, PROMPTS, "last"), atol=1e-5, rtol=0)


def test_mark_position(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    h = ms.load_model(tiny_dirs["gpt2"])
    texts = ["one plus two equals three", "four equals four and more"]
    acts = ms.extract(h, texts, layers=[2], position="mark:equals", store=tmp_path, progress=False)
    for i, t in enumerate(texts):
        ids = h.tokenizer(t, return_tensors="pt").input_ids
        k = ids[0].tolist().index(h.tokenizer.convert_tokens_to_ids("equals"))
        with h.capture(["resid_post.1"]) as c:
            h.model(input_ids=ids)
        torch.testing.assert_close(acts[2][i], c["resid_post.1"][0, k], atol=1e-5, rtol=0)
    with pytest.raises(MindscopeError, match="not found"):
        ms.extract(h, ["no mark here"], position="mark:zebra", store=tmp_path, progress=False)


@pytest.mark.parametrize("arch", ["gpt2", "gpt_neox", "llama", "opt"])
@pytest.mark.parametrize("position", ["last", "mean"])
def test_shared_prefix_pairs_match_separate_sides(
    tiny_dirs: dict[str, Path], tmp_path: Path, arch: str, position: str
) -> None:
    h = ms.load_model(tiny_dirs[arch])
    pairs = [
        ContrastPair(p + " is", (" false", " true and red"), i % 2) for i, p in enumerate(PROMPTS)
    ]
    shared = ms.extract(
        h, pairs, position=position, batch_size=3, store=tmp_path / "a", progress=False
    )
    separate = ms.extract(
        h,
        pairs,
        position=position,
        batch_size=3,
        share_prefix=False,
        store=tmp_path / "b",
        progress=False,
    )
    assert shared.shape == (5, 2, 32)
    torch.testing.assert_close(shared.stack(), separate.stack(), atol=1e-5, rtol=0)
    # and side 1 equals extracting the full text as a prompt
    texts = [p.texts[1] for p in pairs]
    ref = _reference(h, texts, position)
    torch.testing.assert_close(shared.stack()[:, :, 1], ref, atol=1e-5, rtol=0)


def test_store_reuses_and_adds_layers(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    h = ms.load_model(tiny_dirs["gpt_neox"])
    a = ms.extract(h, PROMPTS, layers=[0, 1], store=tmp_path, progress=False)
    before = {p.name: p.stat().st_mtime_ns for p in a.path.glob("layer_*.npy")}
    b = ms.extract(h, PROMPTS, layers=[1, 3], store=tmp_path, progress=False)
    assert a.path == b.path and b.layers == [1, 3]
    after = {p.name: p.stat().st_mtime_ns for p in a.path.glob("layer_*.npy")}
    assert before["layer_001.npy"] == after["layer_001.npy"]  # not rewritten
    assert set(after) == {"layer_000.npy", "layer_001.npy", "layer_003.npy"}
    man = json.loads((a.path / "manifest.json").read_text())
    assert man["shards"]["3"]["shape"] == [5, 32] and man["mindscope_version"] == ms.__version__
    b.verify()
    # another position rule or dataset -> another folder
    c = ms.extract(h, PROMPTS, layers=[1], position="mean", store=tmp_path, progress=False)
    assert c.path != a.path


def test_interrupted_extraction_resumes(
    tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mindscope.activations import engine

    h = ms.load_model(tiny_dirs["gpt2"])
    texts = [f"{PROMPTS[i % 5]} {'red ' * (i % 7)}".strip() for i in range(40)]
    calls = {"n": 0}
    real = engine._Engine.texts

    def flaky(self: engine._Engine, toks: list) -> dict:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, toks)

    monkeypatch.setattr(engine._Engine, "texts", flaky)
    with pytest.raises(KeyboardInterrupt):
        ms.extract(h, texts, batch_size=8, store=tmp_path, progress=False)
    calls["n"] = 10  # no more failures; count the batches run on resume
    acts = ms.extract(h, texts, batch_size=8, store=tmp_path, progress=False)
    assert calls["n"] == 10 + 3  # 5 batches, 2 done before the interruption
    monkeypatch.setattr(engine._Engine, "texts", real)
    fresh = ms.extract(h, texts, batch_size=8, store=tmp_path / "fresh", progress=False)
    torch.testing.assert_close(acts.stack(), fresh.stack())


def test_early_exit_runs_only_needed_blocks(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    h = ms.load_model(tiny_dirs["gpt_neox"])
    ran = []
    handles = [
        b.register_forward_hook(lambda m, a, o, i=i: ran.append(i)) for i, b in enumerate(h.layers)
    ]
    try:
        ms.extract(h, PROMPTS, layers=[0, 1], batch_size=5, store=tmp_path, progress=False)
    finally:
        for x in handles:
            x.remove()
    assert ran == [0]


def test_bad_inputs(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    h = ms.load_model(tiny_dirs["gpt2"])
    with pytest.raises(MindscopeError, match="empty dataset"):
        ms.extract(h, [], store=tmp_path)
    with pytest.raises(MindscopeError, match="out of range"):
        ms.extract(h, PROMPTS, layers=[7], store=tmp_path)
    with pytest.raises(MindscopeError, match="longer than the model's context"):
        ms.extract(h, ["red " * 200], store=tmp_path)
    with pytest.raises(MindscopeError, match="unknown position"):
        ms.extract(h, PROMPTS, position="middle", store=tmp_path)
    with pytest.raises(MindscopeError, match="mixed"):
        ms.extract(h, ["a", ContrastPair("b")], store=tmp_path)  # type: ignore[list-item]


def test_truncated_shard_and_foreign_manifest_are_refused(
    tiny_dirs: dict[str, Path], tmp_path: Path
) -> None:
    h = ms.load_model(tiny_dirs["gpt2"])
    acts = ms.extract(h, PROMPTS, layers=[1], store=tmp_path, progress=False)
    shard = acts.path / "layer_001.npy"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    with pytest.raises(StoreError, match="truncated"):
        ms.extract(h, PROMPTS, layers=[1], store=tmp_path, progress=False)
    assert shard.read_bytes() == data[:-10]  # nothing rewritten behind the user's back
    shard.write_bytes(data)
    man = json.loads((acts.path / "manifest.json").read_text())
    man["key"]["digest"] = "0" * 20
    (acts.path / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(StoreError, match="does not match"):
        ms.extract(h, PROMPTS, layers=[1], store=tmp_path, progress=False)
    assert np.load(shard).shape == (5, 32)
