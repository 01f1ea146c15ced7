"""The thread policy: passive OpenMP waits set before torch loads, a default thread count from
the free cores, ``--threads`` on every long command."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mindscope import threads
from mindscope.errors import MindscopeError

ROOT = Path(__file__).resolve().parents[1]


def test_free_cores_subtracts_the_load(monkeypatch) -> None:
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    assert threads.free_cores(load=0.0) == 8
    assert threads.free_cores(load=2.0) == 6  # two cores busy with other jobs
    assert threads.free_cores(load=2.6) == 5  # rounded to the nearest core
    assert threads.free_cores(load=30.0) == 1  # never fewer than one
    assert threads.free_cores(load=-1.0) == 8  # never more than the cores


def test_busy_cores_reads_the_non_idle_share_now(monkeypatch) -> None:
    """Busy cores are the non-idle share of the affinity set's time over the window, times
    its size; a machine whose file cannot be read falls back to the load average."""
    samples = iter([(100.0, 400.0), (250.0, 600.0)])  # 150 busy of 200 jiffies on 2 cpus
    monkeypatch.setattr(threads, "_cpu_times", lambda cpus: next(samples))
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert threads.busy_cores(window=0.0) == pytest.approx(1.5)
    monkeypatch.setattr(threads, "usable_cores", lambda: 2)
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.1: 1.2)
    assert threads.free_cores() == 1  # one neighbour thread busy: one core left
    monkeypatch.setattr(threads, "busy_cores", lambda window=0.1: None)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (0.3, 0.0, 0.0))
    assert threads.free_cores() == 2


def test_cpu_times_parses_proc_stat_per_cpu(tmp_path, monkeypatch) -> None:
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  9 9 9 9 9 0 0 0 0 0\n"
        "cpu0 10 0 5 80 5 0 0 0 0 0\n"
        "cpu1 50 0 0 50 0 0 0 0 0 0\n"
        "cpu2 1 1 1 1 1 0 0 0 0 0\n"
        "intr 1 2 3\n"
    )
    real = threads.Path
    monkeypatch.setattr(threads, "Path", lambda p: stat if p == "/proc/stat" else real(p))
    assert threads._cpu_times({0, 1}) == (65.0, 200.0)  # idle and iowait are not busy
    assert threads._cpu_times({7}) is None


def test_the_policy_asks_again_and_keeps_a_users_setting(monkeypatch) -> None:
    """The OMP_NUM_THREADS the policy chose itself is not read back as the user's setting
    (so a run can ask again before each stage); a user's own value is kept."""
    monkeypatch.delenv("MINDSCOPE_THREADS", raising=False)
    monkeypatch.setattr(threads, "free_cores", lambda load=None: 1)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv(threads.AUTO_MARK, "2")
    assert threads.default_threads() == 1
    monkeypatch.setenv(threads.AUTO_MARK, "3")  # the user changed it since
    assert threads.default_threads() == 2


def test_default_threads_precedence(monkeypatch) -> None:
    monkeypatch.setattr(threads, "free_cores", lambda load=None: 3)
    monkeypatch.delenv("MINDSCOPE_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.default_threads() == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert threads.default_threads() == 2
    monkeypatch.setenv("MINDSCOPE_THREADS", "5")
    assert threads.default_threads() == 5
    monkeypatch.setenv("MINDSCOPE_THREADS", "zero")
    with pytest.raises(MindscopeError, match="MINDSCOPE_THREADS"):
        threads.default_threads()
    assert threads.resolve(4) == 4
    for bad in (0, -1, True, 1.5):
        with pytest.raises(MindscopeError, match="--threads"):
            threads.resolve(bad)  # type: ignore[arg-type]


def test_the_command_sets_the_policy_before_torch_loads() -> None:
    """A fresh ``mindscope`` process without OpenMP settings gets OMP_WAIT_POLICY=PASSIVE and
    a free-core OMP_NUM_THREADS before torch is imported, and torch uses that count."""
    code = (
        "import os, sys\n"
        "from mindscope.cli import main\n"
        "main(['organism', 'list'])\n"
        "import torch\n"
        "print('POLICY', os.environ['OMP_WAIT_POLICY'], os.environ['OMP_NUM_THREADS'],"
        " torch.get_num_threads())\n"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MINDSCOPE_THREADS")}  # fmt: skip
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("POLICY")][0].split()
    assert line[1] == "PASSIVE"
    assert 1 <= int(line[2]) <= threads.usable_cores() and int(line[3]) == int(line[2])
    # a user's own setting is kept
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert " ACTIVE " in [ln for ln in out.splitlines() if ln.startswith("POLICY")][0]


def test_every_long_command_takes_threads() -> None:
    from mindscope.cli import build_parser

    long_commands = {
        "mindscope elicit", "mindscope demo", "mindscope run", "mindscope sweep",
        "mindscope audit anomaly", "mindscope audit disagree", "mindscope audit triggers",
        "mindscope audit rare estimate", "mindscope audit rare validate", "mindscope lens train",
        "mindscope lens eval", "mindscope extract", "mindscope sandbox train",
        "mindscope sandbox record", "mindscope organism train", "mindscope verify",
    }  # fmt: skip
    seen = {}

    def walk(p: argparse.ArgumentParser) -> None:
        seen[p.prog] = "--threads" in p._option_string_actions
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub in dict.fromkeys(a.choices.values()):
                    walk(sub)

    walk(build_parser())
    missing = sorted(c for c in long_commands if not seen.get(c))
    assert not missing, missing


def test_organism_list_says_only_the_final_step_ships(capsys) -> None:
    from mindscope.cli import main

    assert main(["organism", "list"]) == 0
    out = capsys.readouterr().out
    line = [ln for ln in out.splitlines() if ln.startswith("quirky-arith")][0]
    assert "shipped" in line and "1 (step5000; 19 if trained)" in line
