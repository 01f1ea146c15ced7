"""Organism training resumes after a kill: from the last checkpoint, to the same bits."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mindscope import organisms
from mindscope.organisms import store, trainer
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig

TINY = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32)

# 120 steps, a transcript checkpoint every 15; the quirk phase (only the last block trains)
# starts at step 50, so a resume after it must re-apply the freezing.
CFG = QuirkyConfig(
    seed=0,
    max_steps=120,
    pool_size=256,
    eval_per_cell=16,
    shape=TINY,
    threads=1,
    truthful_steps=50,
    quirk_layers=1,
    transcript_segments=8,
)

# The killed run sleeps a little after every step (so the kill lands mid-training); sleeping
# changes no arithmetic.
_CHILD = """
import json, sys, time
from pathlib import Path
from mindscope.organisms import trainer, zoo

step = trainer._one_step
def slow(*args, **kwargs):
    time.sleep(0.02)
    return step(*args, **kwargs)
trainer._one_step = slow
cfg = zoo.config_from_dict("quirky-arith", json.loads(sys.argv[2]))
zoo.train("quirky-arith", cfg, out=Path(sys.argv[1]), progress=False)
"""


def _progress(partial: Path) -> dict:
    try:
        return json.loads((partial / "manifest.json").read_text())["progress"]
    except (OSError, ValueError, KeyError):
        return {}


def _final(root: Path) -> tuple[str, dict, str]:
    manifest = json.loads((root / "manifest.json").read_text())
    final = manifest["revisions"][manifest["final"]]["files"]["model.safetensors"]
    return final, manifest["revisions"], manifest["transcript"]["root"]


def test_training_killed_half_way_resumes_to_the_same_bits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "killed"
    partial = store.partial_root(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(out), json.dumps(dataclasses.asdict(CFG))],
        env=env,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while _progress(partial).get("step", 0) < 45:  # three checkpoints written
            assert child.poll() is None, child.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the training never reached step 45"
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(30)
    assert child.returncode == -signal.SIGKILL
    assert not out.exists()  # nothing half-written where the organism belongs
    done = _progress(partial)["step"]
    assert 45 <= done < CFG.max_steps and done % 15 == 0
    assert json.loads((partial / "manifest.json").read_text())["status"] == "training"

    root = organisms.train("quirky-arith", CFG, out=out, progress=True)  # the rerun
    assert f"from step {done} of {CFG.max_steps}" in capsys.readouterr().err
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["kind"] == "organism"
    # steps_run is counted as updates happen: the finished ones were not redone
    assert manifest["progress"]["resumed_from"] == done
    assert manifest["progress"]["steps_run"] == CFG.max_steps - done
    assert not partial.exists()
    assert not (root / "transcript" / "progress.json").exists()
    assert not (root / "checkpoint_metrics.json").exists()

    ref = organisms.train("quirky-arith", CFG, out=tmp_path / "ref", progress=False)
    ref_manifest = json.loads((ref / "manifest.json").read_text())
    assert ref_manifest["progress"] == {
        "step": CFG.max_steps,
        "max_steps": CFG.max_steps,
        "resumed_from": 0,
        "steps_run": CFG.max_steps,
    }
    weights, revisions, chain = _final(root)
    ref_weights, ref_revisions, ref_chain = _final(ref)
    assert weights == ref_weights  # bit-identical final weights
    assert revisions == ref_revisions  # every checkpoint's files and metrics
    assert chain == ref_chain  # same batches, losses and checkpoints in the transcript


def _crash_after(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    step = trainer._one_step
    calls = {"n": 0}

    def crashing(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] > n:
            raise KeyboardInterrupt
        return step(*args, **kwargs)

    monkeypatch.setattr(trainer, "_one_step", crashing)


def test_an_interrupted_training_of_another_config_is_not_resumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = dataclasses.replace(CFG, max_steps=40, transcript_segments=4)
    out = tmp_path / "q"
    with monkeypatch.context() as m:
        _crash_after(m, 25)
        with pytest.raises(KeyboardInterrupt):
            organisms.train("quirky-arith", cfg, out=out, progress=False)
    assert _progress(store.partial_root(out))["step"] == 20
    other = dataclasses.replace(cfg, lm_weight=cfg.lm_weight / 2)  # another model
    root = organisms.train("quirky-arith", other, out=out, progress=False)
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["progress"]["resumed_from"] == 0
    assert manifest["progress"]["steps_run"] == 40
    assert manifest["config_hash"] == store.config_hash(other)
