"""Environment steps per second: mindscope.sandbox's vector env vs the original implementation.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_sandbox.py [--world boat_race]

Times ``SandboxVectorEnv(world, 4096).step`` (random actions, per-step info and autoreset
included) in this process, and, in the reference venv (``bash benchmarks/setup_refs.sh
sandbox``), DeepMind's original pycolab implementation of the same world stepping one
environment at a time, plus safety-gridworlds-gymnasium 2.0.4's simplest env (its ``Base-v0``
5x5 grid: the port has none of the sandbox's worlds, so this is context, not a like-for-like
ratio). Repetitions are interleaved; medians are printed with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _figures import record

HERE = Path(__file__).resolve().parent
REF_PY = HERE / ".venvs" / "sgw" / "bin" / "python"

_REF_ORIGINAL = """
import time, json, warnings, numpy as np
warnings.filterwarnings("ignore")
from ai_safety_gridworlds.environments import {module}
env = {module}.{cls}()
rng = np.random.default_rng(0); acts = rng.integers(0, 4, {steps})
env.reset(); t0 = time.perf_counter(); c0 = time.process_time()
for a in acts:
    ts = env.step(int(a))
    if ts.last(): env.reset()
print(json.dumps([{steps} / (time.perf_counter() - t0), {steps} / (time.process_time() - c0)]))
"""

_REF_PORT = """
import time, json, warnings, numpy as np
warnings.filterwarnings("ignore")
import gymnasium, safety_gridworlds_gymnasium
env = gymnasium.make("safety_gridworlds/Base-v0").unwrapped
rng = np.random.default_rng(0); acts = rng.integers(0, 4, {steps})
env.reset(seed=0); t0 = time.perf_counter(); c0 = time.process_time()
for a in acts:
    _, _, te, tr, _ = env.step(int(a))
    if te or tr: env.reset()
print(json.dumps([{steps} / (time.perf_counter() - t0), {steps} / (time.process_time() - c0)]))
"""

_CLASSES = {
    "boat_race": ("boat_race", "BoatRaceEnvironment"),
    "absent_supervisor": ("absent_supervisor", "AbsentSupervisorEnvironment"),
    "tomato_watering": ("tomato_watering", "TomatoWateringEnvironment"),
    "rocks_diamonds": ("rocks_diamonds", "RocksDiamondsEnvironment"),
    "safe_interruptibility": ("safe_interruptibility", "SafeInterruptibilityEnvironment"),
    "whisky_gold": ("whisky_gold", "WhiskyOrGoldEnvironment"),
}


def ours(world: str, n: int, steps: int) -> list[float]:
    from mindscope.sandbox import SandboxVectorEnv

    env = SandboxVectorEnv(world, n)
    env.reset(seed=0)
    acts = np.random.default_rng(0).integers(0, 4, size=(steps, n))
    env.step(acts[0])
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(steps):
        env.step(acts[t])
    return [steps * n / (time.perf_counter() - t0), steps * n / (time.process_time() - c0)]


def reference(code: str) -> list[float] | None:
    if not REF_PY.exists():
        return None
    env = dict(os.environ, PYTHONPATH="", OMP_NUM_THREADS="1")
    out = subprocess.run(
        [str(REF_PY), "-c", code], capture_output=True, text=True, env=env, check=False
    )
    if out.returncode != 0:
        print(f"reference failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return [float(v) for v in json.loads(out.stdout.strip().splitlines()[-1])]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="boat_race", choices=sorted(_CLASSES))
    ap.add_argument("--num-envs", type=int, default=4096)
    ap.add_argument("--steps", type=int, default=300, help="vector steps per repetition")
    ap.add_argument("--ref-steps", type=int, default=5000, help="reference steps per rep")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args(argv)
    module, cls = _CLASSES[args.world]
    orig_code = _REF_ORIGINAL.format(module=module, cls=cls, steps=args.ref_steps)
    port_code = _REF_PORT.format(steps=args.ref_steps)
    rows: dict[str, list[list[float]]] = {"ours": [], "original": [], "port_base": []}
    for _ in range(args.reps):
        rows["ours"].append(ours(args.world, args.num_envs, args.steps))
        for key, code in (("original", orig_code), ("port_base", port_code)):
            v = reference(code)
            if v is not None:
                rows[key].append(v)
    print(
        f"world {args.world}, batch {args.num_envs}, {args.reps} interleaved repetitions;"
        " medians of env steps per wall-clock second and per CPU second of the process"
    )
    med = {
        k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
        for k, v in rows.items()
        if v
    }
    labels = {
        "ours": "mindscope.sandbox vector env",
        "original": "original (pycolab), 1 env",
        "port_base": "port 2.0.4 Base-v0, 1 env",
    }
    for k, (wall, cpu) in med.items():
        print(f"  {labels[k]:30s}: {wall:>13,.0f} /s wall   {cpu:>13,.0f} /s CPU")
    for k in ("original", "port_base"):
        if k in med:
            print(
                f"  ratio vs {labels[k]:21s}: {med['ours'][0] / med[k][0]:>13,.0f}x wall "
                f"{med['ours'][1] / med[k][1]:>13,.0f}x CPU"
            )
    if not REF_PY.exists():
        print("  (reference venv missing: bash benchmarks/setup_refs.sh sandbox)")
    figures = {
        "steps_per_s": (med["ours"][0], "env steps/s", f"{args.world}, batch {args.num_envs}"),
        "steps_per_cpu_s": (med["ours"][1], "env steps/CPU s", "the same per CPU second"),
    }
    for k, fig in (("original", "vs_original"), ("port_base", "vs_port_base")):
        if k in med:
            figures[fig] = (med["ours"][0] / med[k][0], "x", f"wall-clock speed-up, {labels[k]}")
    record("bench_sandbox", figures, reps=args.reps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
