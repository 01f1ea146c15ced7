"""Open-world steps per second: mindscope's batched NumPy world vs crafter 1.8.3.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_openworld.py [--envs 4096] [--reps 3]

Times ``OpenWorldVectorEnv(num_envs).step`` (random actions over Crafter's 17, per-step info
and autoreset with fresh maps included) in this process, and, in the reference venv (``bash
benchmarks/setup_refs.sh crafter``), ``crafter.Env`` (its 64x64 default area, pixel
observations as it always renders them) stepping ``--crafter-envs`` environments one after
the other for as many steps in total. Repetitions are interleaved; medians are recorded.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _figures import record

HERE = Path(__file__).resolve().parent
REF_PY = HERE / ".venvs" / "crafter" / "bin" / "python"

_REF = """
import time, json, numpy as np, crafter
envs = [crafter.Env(seed=i) for i in range({n})]
for e in envs: e.reset()
rng = np.random.default_rng(0); acts = rng.integers(0, 17, ({steps}, {n}))
t0 = time.perf_counter()
for row in acts:
    for e, a in zip(envs, row):
        _, _, done, _ = e.step(int(a))
        if done: e.reset()
print(json.dumps({n} * {steps} / (time.perf_counter() - t0)))
"""


def ours(envs: int, steps: int) -> float:
    from mindscope.sandbox.openworld import OpenWorldVectorEnv

    venv = OpenWorldVectorEnv(envs)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 17, (steps, envs))
    venv.step(acts[0])  # warm-up
    t0 = time.perf_counter()
    for a in acts:
        venv.step(a)
    return envs * steps / (time.perf_counter() - t0)


def crafter(envs: int, steps: int) -> float | None:
    if not REF_PY.is_file():
        return None
    out = subprocess.run(
        [str(REF_PY), "-c", _REF.format(n=envs, steps=steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--crafter-envs", type=int, default=16)
    ap.add_argument("--crafter-steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    mine, ref = [], []
    for _ in range(args.reps):
        mine.append(ours(args.envs, args.steps))
        r = crafter(args.crafter_envs, args.crafter_steps)
        if r is not None:
            ref.append(r)
    figures = {
        "open_world_steps_per_s": (
            statistics.median(mine),
            "env steps/s",
            f"OpenWorldVectorEnv, {args.envs} envs, random actions, one process",
        )
    }
    print(f"open world: {statistics.median(mine):,.0f} env steps/s at {args.envs} envs")
    if ref:
        figures["crafter_steps_per_s"] = (
            statistics.median(ref),
            "env steps/s",
            f"crafter 1.8.3, {args.crafter_envs} envs stepped in turn, random actions",
        )
        figures["ratio_vs_crafter"] = (
            statistics.median(mine) / statistics.median(ref),
            "x",
            "open world steps/s over crafter's",
        )
        print(f"crafter 1.8.3: {statistics.median(ref):,.0f} env steps/s")
    record(
        "bench_openworld", figures, reps=args.reps, notes="2-core machine shared with other jobs"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
