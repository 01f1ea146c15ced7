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
