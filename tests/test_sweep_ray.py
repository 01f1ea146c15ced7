"""Sweeps on a local Ray instance: the same table as in-process; a dead address fails fast."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pandas as pd
import pytest
from sweep_helpers import config, copy_series, make_series, make_text

import mindscope as ms
from mindscope.errors import MindscopeError

pytest.importorskip("ray")  # the optional `ray` extra (installed by `dev`)


def test_ray_table_identical_and_dead_address(tmp_path: Path) -> None:
    series = make_series(tmp_path / "q")
    text = make_text(tmp_path / "t.txt")
    small = copy_series(series, tmp_path / "s", [0, 12])
    cfg = config(small, text, tmp_path / "inproc", random_init=True)
    ref = ms.sweep(cfg)
    cfg_ray = config(small, text, tmp_path / "ray", random_init=True)
    cfg_ray["num_cpus"] = 2
    env_before = {
        k: os.environ.get(k) for k in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "PYTHONPATH")
    }
    got = ms.sweep(cfg_ray, backend="ray")
    assert got.loads == ref.loads == 3 and sorted(got.computed) == sorted(ref.computed)
    pd.testing.assert_frame_equal(got.table, ref.table)
    # the workers' environment was lent to the local instance only: the driver's is restored
    assert {k: os.environ.get(k) for k in env_before} == env_before
    # tasks ran in Ray workers (other processes), in-process ones here; each has its timeline
    assert set(got.tasks) == set(ref.tasks) == {"step0", "step12", "random-init"}
    assert {t["pid"] for t in ref.tasks.values()} == {os.getpid()}
    assert os.getpid() not in {t["pid"] for t in got.tasks.values()}
    assert all(t["finished"] >= t["started"] for t in got.tasks.values())

    # an address that does not answer: one clear error within 30 s, finished work kept
    part = config(small, text, tmp_path / "part")
    part["series"]["select"] = [0]
    ms.sweep(part)
    part["series"]["select"] = [0, 12]
    t0 = time.perf_counter()
    with pytest.raises(MindscopeError, match="does not answer") as exc:
        ms.sweep(part, address="127.0.0.1:9")
    assert time.perf_counter() - t0 < 30 and "\n" not in str(exc.value)
    done = json.loads((tmp_path / "part" / "manifest.json").read_text())["done"]
    assert set(done) == {"step0"} and set(done["step0"]) == {"lens", "elicit"}
