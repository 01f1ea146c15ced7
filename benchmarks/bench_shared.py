"""``mindscope demo`` alone and beside another torch job, with and without the thread policy.

The policy (:mod:`mindscope.threads`): passive OpenMP waiting, set before torch loads, and a
torch thread count from the free cores. The old behaviour is reproduced by a launcher that
imports torch before mindscope's entry point (so OpenMP reads no policy) and passes
``--threads 2`` (torch's default on a 2-core machine).

Four configurations, interleaved per repetition (policy alone, old alone, policy beside, old
beside); "beside" runs a competing process that multiplies 512 x 512 matrices on 2 torch
threads, started before and killed after the demo. Figures: median wall seconds of each and
the slowdown beside / alone of each.

    .venv/bin/python benchmarks/bench_shared.py            # demo --quick, 1 repetition
    .venv/bin/python benchmarks/bench_shared.py --full --reps 3

Meaningful only on an otherwise idle machine; the load average is recorded with the figures.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _figures import machine, record  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

COMPETITOR = (
    "import torch\n"
    "torch.set_num_threads(2)\n"
    "a = torch.randn(512, 512)\n"
    "while True:\n"
    "    a = torch.tanh(a @ a)\n"
)

OLD = (
    "import sys, torch\n"  # OpenMP loads before mindscope could set its policy
    "torch.set_num_threads(2)\n"
    "from mindscope.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                        "MINDSCOPE_THREADS")}  # fmt: skip
    env["PYTHONPATH"] = str(ROOT)
    return env


def _demo(policy: bool, quick: bool, out: Path) -> float:
    args = ["demo", "--quiet", "--output-dir", str(out)] + (["--quick"] if quick else [])
    if policy:
        cmd = [sys.executable, "-m", "mindscope", *args]
    else:
        cmd = [sys.executable, "-c", OLD, *args, "--threads", "2"]
    t0 = time.perf_counter()
    subprocess.run(cmd, env=_env(), check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def _timed(policy: bool, beside: bool, quick: bool, tmp: Path) -> float:
    comp = None
    if beside:
        comp = subprocess.Popen([sys.executable, "-c", COMPETITOR], env=_env())
        time.sleep(2.0)  # let it reach its loop
    try:
        return _demo(policy, quick, tmp / f"{int(policy)}{int(beside)}-{time.time_ns()}")
    finally:
        if comp is not None:
            comp.kill()
            comp.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="the full demo (default: --quick)")
    ap.add_argument("--reps", type=int, default=1, help="interleaved repetitions (1)")
    args = ap.parse_args()
    quick = not args.full
    configs = [(True, False), (False, False), (True, True), (False, True)]
    times: dict[tuple[bool, bool], list[float]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory() as d:
        for rep in range(args.reps):
            for policy, beside in configs:
                t = _timed(policy, beside, quick, Path(d))
                times[(policy, beside)].append(t)
                print(f"rep {rep}: policy={policy} beside={beside}: {t:.1f} s", flush=True)
    med = {c: statistics.median(v) for c, v in times.items()}
    what = "demo --quick" if quick else "demo"
    figures = {
        "policy_alone_s": (med[(True, False)], "s", f"{what}, thread policy, alone"),
        "policy_beside_s": (med[(True, True)], "s", f"{what}, thread policy, beside the job"),
        "old_alone_s": (med[(False, False)], "s", f"{what}, no policy (2 threads), alone"),
        "old_beside_s": (med[(False, True)], "s", f"{what}, no policy, beside the job"),
        "policy_slowdown": (med[(True, True)] / med[(True, False)], "x", "beside / alone, policy"),
        "old_slowdown": (med[(False, True)] / med[(False, False)], "x", "beside / alone, old"),
    }  # fmt: skip
    for k, (v, unit, _w) in figures.items():
        print(f"{k:18s} {v:8.2f} {unit}")
    m = machine()
    notes = (
        "2-core machine shared with other jobs: the 'alone' runs were not alone, so the ratios "
        "say little about an idle machine"
        if not m["idle"]
        else ""
    )
    record("bench_shared", figures, reps=args.reps, notes=notes, idle=m["idle"])


if __name__ == "__main__":
    main()
