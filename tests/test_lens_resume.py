"""Tuned-lens training resumes from its checkpoint after a kill and ends where an uninterrupted
run ends, bit for bit, without redoing the finished steps."""

from __future__ import annotations

import random

import pytest
import torch

from mindscope.cli import main
from mindscope.lenses import TunedLens
from mindscope.lenses import train as train_mod
from mindscope.models import load_model

_rng = random.Random(1)
WORDS = "the a cat dog sat on mat is true false yes no one two three red blue".split()
TEXTS = [" ".join(_rng.choice(WORDS) for _ in range(60)) for _ in range(60)]
BUDGET = {"tokens_per_step": 256, "seq_len": 32, "progress": False}


@pytest.fixture(scope="module")
def neox(tiny_dirs):
    return load_model(tiny_dirs["gpt_neox"], device="cpu")


class Killed(Exception):
    pass


def _kill_after(monkeypatch: pytest.MonkeyPatch, n_checkpoints: int) -> list[int]:
    """Make training die right after its ``n_checkpoints``-th checkpoint; returns the steps
    checkpointed."""
    saved: list[int] = []
    real = train_mod.save_state

    def save_then_die(folder, key, weight, bias, state):  # type: ignore[no-untyped-def]
        real(folder, key, weight, bias, state)
        saved.append(state.steps_done)
        if len(saved) == n_checkpoints:
            raise Killed

    monkeypatch.setattr(train_mod, "save_state", save_then_die)
    return saved


@pytest.mark.parametrize("budget", [{"num_steps": 12}, {"max_steps": 40, "eval_every": 2}])
def test_killed_training_resumes_bit_identical(neox, tmp_path, monkeypatch, budget) -> None:
    ref = TunedLens.fit(neox, TEXTS, **budget, **BUDGET)
    ckpt = tmp_path / "ckpt"
    opts = {**budget, **BUDGET, "checkpoint_dir": str(ckpt), "checkpoint_every": 4}
    with monkeypatch.context() as m:
        saved = _kill_after(m, 2)
        with pytest.raises(Killed):
            TunedLens.fit(neox, TEXTS, **opts)
    assert saved == [4, 8] and (ckpt / "progress.json").is_file()
    assert [p.name for p in ckpt.glob("state-*.safetensors")] == ["state-8.safetensors"]
    again = TunedLens.fit(neox, TEXTS, **opts)
    assert again.info["resumed_from"] == 8  # the first 8 steps were not run again
    assert torch.equal(again.weight, ref.weight) and torch.equal(again.bias, ref.bias)
    assert again.info["steps_used"] == ref.info["steps_used"]
    assert again.info.get("heldout_kl") == ref.info.get("heldout_kl")


def test_another_config_or_text_starts_afresh(neox, tmp_path, monkeypatch) -> None:
    ckpt = tmp_path / "ckpt"
    opts = {"num_steps": 8, **BUDGET, "checkpoint_dir": str(ckpt), "checkpoint_every": 4}
    with monkeypatch.context() as m:
        _kill_after(m, 1)
        with pytest.raises(Killed):
            TunedLens.fit(neox, TEXTS, **opts)
    other = TunedLens.fit(neox, TEXTS[:-5], **opts)  # other texts: the checkpoint is not theirs
    assert other.info["resumed_from"] == 0
    fresh = TunedLens.fit(neox, TEXTS[:-5], num_steps=8, **BUDGET)
    assert torch.equal(other.weight, fresh.weight)


def test_lens_train_cli_resumes_and_cleans_up(tiny_dirs, tmp_path, monkeypatch, capsys) -> None:
    data = tmp_path / "t.txt"
    data.write_text("\n\n".join(TEXTS))
    out = tmp_path / "lens"
    argv = ["lens", "train", "--model", str(tiny_dirs["gpt_neox"]), "--data", str(data)]
    argv += ["--out", str(out), "--num-steps", "8", "--tokens-per-step", "256", "--seq-len", "32"]
    argv += ["--checkpoint-every", "4", "--quiet"]
    with monkeypatch.context() as m:
        _kill_after(m, 1)
        with pytest.raises(Killed):
            main(argv)
    assert not out.exists() and any(tmp_path.glob(".lens.partial*"))
    assert main(argv) == 0
    assert "resumed from step 4" in capsys.readouterr().out
    assert (out / "config.json").is_file() and not any(tmp_path.glob(".lens.partial*"))
