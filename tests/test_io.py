"""mindscope.io (hashes, atomic writes, locks, manifests) and the provenance stamp."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import stat
import time
from pathlib import Path

import pandas as pd
import pytest

from mindscope import io
from mindscope.results import Row, parse_step, read_table, stamp, to_frame, write_table


def test_hashes_match_hashlib(tmp_path: Path) -> None:
    data = os.urandom(5 << 20)  # more than one 4 MiB chunk
    (tmp_path / "f").write_bytes(data)
    assert io.hash_file(tmp_path / "f") == hashlib.sha256(data).hexdigest()
    assert io.hash_bytes(data) == hashlib.sha256(data).hexdigest()
    b2 = hashlib.blake2b(data, digest_size=16).hexdigest()
    assert io.hash_file(tmp_path / "f", "blake2b") == io.hash_bytes(data, "blake2b") == b2


def test_atomic_writes_use_normal_permissions_and_leave_no_temp_files(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        paths = [
            io.atomic_write_text(tmp_path / "a.txt", "héllo"),
            io.atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01"),
            io.atomic_write_json(tmp_path / "sub" / "c.json", {"x": [1, 2]}),
            write_table(to_frame([Row("acc", 0.5)]), tmp_path / "r.parquet"),
        ]
    finally:
        os.umask(old)
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644, p
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "sub" / "c.json").read_text()) == {"x": [1, 2]}
    assert not [p for p in tmp_path.rglob(".tmp-*")]


def test_a_failed_atomic_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = io.atomic_write_text(tmp_path / "t.txt", "old")
    with pytest.raises(RuntimeError), io.atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old" and not list(tmp_path.glob(".tmp-*"))


def _hold(path: str, seconds: float, started: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    with io.locked(path):
        started.set()
        time.sleep(seconds)


def test_lock_excludes_another_process(tmp_path: Path) -> None:
    ctx = mp.get_context("spawn")
    started = ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(tmp_path / ".lock"), 3.0, started))
    proc.start()
    try:
        assert started.wait(60)
        with pytest.raises(io.MindscopeError, match="locked by another process"):
            with io.locked(tmp_path / ".lock", timeout=0.2):
                pass
    finally:
        proc.join(60)
    with io.locked(tmp_path / ".lock", timeout=5):  # free again
        pass


def test_manifests_are_versioned_and_typed(tmp_path: Path) -> None:
    p = io.write_manifest(tmp_path / "m.json", {"a": 1}, kind="run", version=2)
    assert io.read_manifest(p, kind="run", version=2) == {
        "a": 1,
        "kind": "run",
        "format_version": 2,
    }
    with pytest.raises(io.ManifestError, match="is a 'run' manifest, not a 'activations' one"):
        io.read_manifest(p, kind="activations", version=2)
    with pytest.raises(io.ManifestError, match="format version 2, newer than this mindscope"):
        io.read_manifest(p, kind="run", version=1)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(io.ManifestError, match="corrupted"):
        io.read_manifest(tmp_path / "bad.json", kind="run", version=1)
    (tmp_path / "old.json").write_text('{"format": 1}')  # before kinds: accepted
    assert io.read_manifest(tmp_path / "old.json", kind="run", version=1)["format"] == 1


@pytest.mark.parametrize(
    ("revision", "step"),
    [("step1000", 1000), ("step0", 0), (None, -1), ("main", -1), ("v1-step3", -1), ("", -1)],
)
def test_parse_step(revision: str | None, step: int) -> None:
    assert parse_step(revision) == step


class _Handle:
    name = "organism:pocket-lm"
    revision = "step250"
    weights_hash = "abc123"


def test_stamp_fills_provenance_on_every_row(tmp_path: Path) -> None:
    df = to_frame([Row("kl", 0.1, "logit_lens", 0), Row("kl", 0.2, "tuned_lens", 1, model="x")])
    out = stamp(df, _Handle())
    assert (out["model"] == "organism:pocket-lm").all() and (out["step"] == 250).all()
    assert (out["revision"] == "step250").all() and (out["weights_hash"] == "abc123").all()
    assert (df["model"] != "organism:pocket-lm").all()  # the input is not modified
    back = read_table(write_table(out, tmp_path / "t.parquet"))
    pd.testing.assert_frame_equal(back, out.reset_index(drop=True), check_dtype=False)
    # a table written before the weights_hash column existed still reads
    out.drop(columns=["weights_hash"]).to_parquet(tmp_path / "old.parquet")
    assert (read_table(tmp_path / "old.parquet")["weights_hash"] == "").all()
