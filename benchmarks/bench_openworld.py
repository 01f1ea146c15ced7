"""Open-world steps per second: mindscope's batched NumPy world vs crafter 1.8.3.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/bench_openworld.py
        [--envs 4096 16384 65536] [--steps 30] [--warmup 150] [--reps 3] [--quick]
        [--procs 2] [--proc-envs 16384 65536] [--ppo-steps 16384]

Times ``OpenWorldVectorEnv(num_envs).step`` (random actions over Crafter's 17; the symbolic
observation, the per-step ``info`` and the autoreset included) in this process, one thread, after
``--warmup`` steps so that episodes end and restart at their steady rate (a random agent's
episode lasts about 200 steps). Two map regimes: ``fresh`` (``map_reuse=1``, the default: every
episode gets a newly generated map, generation included in the timing) and ``pool``
(``map_reuse=256``: each generated map serves 256 episodes, so the figure is the stepping
itself). In the reference venv (``bash benchmarks/setup_refs.sh crafter``), ``crafter.Env`` (its
64x64 default area, pixel observations as it always renders them) steps ``--crafter-envs``
environments one after the other for as many steps in total.

Each figure is taken twice: wall-clock (``*_steps_per_s``) and CPU time of the stepping process
(``*_cpu_steps_per_s``, ``time.process_time``). On an idle machine they agree; on a shared one the
CPU-time figures and the ratios between them are the ones to read. Repetitions are interleaved;
medians are recorded. ``--quick``: 4096 envs, one repetition, short warm-up.

``--procs P`` (P >= 2) also steps the open world in ``P`` processes at once, one thread each,
each with its own batch of ``--proc-envs`` environments (fresh maps; each size a run, the
fastest the headline): every process warms up,
waits at a barrier, then times ``--steps`` steps; the aggregate is all processes' env steps over
the span from the first start to the last end (``open_world_<P>proc_steps_per_s``, wall clock)
and the sum of each process's env steps per CPU-second (``open_world_<P>proc_cpu_steps_per_s``).
Nothing else should run on the machine meanwhile: the figure is what ``P`` cores give.

``--ppo-steps N`` (0 to skip) trains the open world's PPO (:class:`OpenWorldPPO`, 128
environments, episodes of 500 steps) for ``N`` env steps in this process, one thread, and prints
its env steps/s including learning beside the env's own figure (``ppo_steps_per_s_with_learning``).
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
from typing import Any

import numpy as np
from _figures import record

HERE = Path(__file__).resolve().parent
REF_PY = HERE / ".venvs" / "crafter" / "bin" / "python"
POOL_REUSE = 256

_REF = """
import time, json, numpy as np, crafter
envs = [crafter.Env(seed=i) for i in range({n})]
for e in envs: e.reset()
rng = np.random.default_rng(0); acts = rng.integers(0, 17, ({steps}, {n}))
w0, c0 = time.perf_counter(), time.process_time()
for row in acts:
    for e, a in zip(envs, row):
        _, _, done, _ = e.step(int(a))
        if done: e.reset()
w1, c1 = time.perf_counter(), time.process_time()
print(json.dumps([{n} * {steps} / (w1 - w0), {n} * {steps} / (c1 - c0)]))
"""


def ours(envs: int, steps: int, warmup: int, reuse: int, seed: int) -> tuple[float, float, float]:
    """(wall steps/s, CPU steps/s, episodes ended per 1000 env steps) of the vector env."""
    from mindscope.sandbox.openworld import OpenWorldVectorEnv

    venv = OpenWorldVectorEnv(envs, map_reuse=reuse)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(warmup):
        venv.step(rng.integers(0, 17, envs))
    acts = rng.integers(0, 17, (steps, envs))
    ended = 0
    w0, c0 = time.perf_counter(), time.process_time()
    for a in acts:
        _, _, term, trunc, _ = venv.step(a)
        ended += int(term.sum() + trunc.sum())
    w1, c1 = time.perf_counter(), time.process_time()
    del venv
    return envs * steps / (w1 - w0), envs * steps / (c1 - c0), 1000 * ended / (envs * steps)


def _proc_worker(envs: int, steps: int, warmup: int, seed: int, barrier: Any, out: Any) -> None:
    """One process of ``--procs``: warm up, wait for the others, time ``steps`` steps."""
    os.environ["OMP_NUM_THREADS"] = "1"
    from mindscope.sandbox.openworld import OpenWorldVectorEnv

    venv = OpenWorldVectorEnv(envs)
    venv.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(warmup):
        venv.step(rng.integers(0, 17, envs))
    acts = rng.integers(0, 17, (steps, envs))
    barrier.wait()
    w0, c0 = time.perf_counter(), time.process_time()
    for a in acts:
        venv.step(a)
    w1, c1 = time.perf_counter(), time.process_time()
    out.put((seed, w0, w1, c1 - c0, envs * steps))


def processes(procs: int, envs: int, steps: int, warmup: int, rep: int) -> tuple[float, float]:
    """(aggregate wall env steps/s, summed CPU env steps/s) of ``procs`` processes stepping
    their own open worlds of ``envs`` environments (fresh maps) at the same time."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(procs), ctx.Queue()
    ps = [
        ctx.Process(target=_proc_worker, args=(envs, steps, warmup, 1000 * rep + k, barrier, out))
        for k in range(procs)
    ]
    for p in ps:
        p.start()
    got = [out.get() for _ in ps]
    for p in ps:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"a benchmark process failed (exit code {p.exitcode})")
    span = max(g[2] for g in got) - min(g[1] for g in got)
    return sum(g[4] for g in got) / span, sum(g[4] / g[3] for g in got)


def ppo_throughput(steps: int, seed: int = 0) -> float:
    """Env steps/s of the open world's PPO including learning (128 envs, episodes of 500)."""
    from mindscope.sandbox.openworld import OpenWorldVectorEnv
    from mindscope.sandbox.openworld_agents import OpenWorldPPO

    venv = OpenWorldVectorEnv(128, length=500)
    agent = OpenWorldPPO(seed=seed)
    t0 = time.perf_counter()
    agent.learn(venv, steps)
    return steps / (time.perf_counter() - t0)


def crafter(envs: int, steps: int) -> tuple[float, float] | None:
    if not REF_PY.is_file():
        return None
    out = subprocess.run(
        [str(REF_PY), "-c", _REF.format(n=envs, steps=steps)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = json.loads(out.stdout.strip().splitlines()[-1])
    return float(wall), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--envs", type=int, nargs="+", default=[4096, 16384, 65536])
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=150)
    ap.add_argument("--crafter-envs", type=int, default=16)
    ap.add_argument("--crafter-steps", type=int, default=100)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="4096 envs, 1 rep, 40 warm-up steps")
    ap.add_argument("--procs", type=int, default=1, help="also P processes at once (P >= 2)")
    ap.add_argument(
        "--proc-envs",
        type=int,
        nargs="+",
        default=[16384, 65536],
        help="environments per process (each size is a run; the headline is the fastest)",
    )
    ap.add_argument("--ppo-steps", type=int, default=16384, help="PPO env steps (0: skip)")
    ap.add_argument("--no-record", action="store_true", help="print only (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.envs, args.reps, args.warmup, args.crafter_steps = [4096], 1, 40, 30
        args.proc_envs, args.ppo_steps = [4096], 4096
    if os.environ.get("OMP_NUM_THREADS") != "1":
        print(
            "note: OMP_NUM_THREADS is not 1; map generation may use more threads", file=sys.stderr
        )
    runs: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    ref: list[tuple[float, float]] = []
    for rep in range(args.reps):
        for n in args.envs:
            for regime, reuse in (("fresh", 1), ("pool", POOL_REUSE)):
                r = ours(n, args.steps, args.warmup, reuse, seed=rep)
                runs.setdefault((n, regime), []).append(r)
                print(
                    f"rep {rep} {n:6d} envs {regime:5s}: {r[0]:12,.0f} steps/s wall, "
                    f"{r[1]:12,.0f} CPU, {r[2]:.1f} episodes ended per 1000 steps",
                    flush=True,
                )
        for pe in args.proc_envs if args.procs >= 2 else []:
            pr = processes(args.procs, pe, args.steps, args.warmup, rep)
            runs.setdefault((pe, f"{args.procs}proc"), []).append((*pr, 0.0))
            print(
                f"rep {rep} {args.procs} processes x {pe} envs fresh: "
                f"{pr[0]:12,.0f} steps/s wall (aggregate), {pr[1]:12,.0f} CPU (summed)",
                flush=True,
            )
        c = crafter(args.crafter_envs, args.crafter_steps)
        if c is not None:
            ref.append(c)
            print(f"rep {rep} crafter 1.8.3: {c[0]:,.0f} steps/s wall, {c[1]:,.0f} CPU", flush=True)
    figures: dict[str, tuple[float, str, str]] = {}
    med = {
        k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v))
        for k, v in runs.items()
    }
    for (n, regime), (wall, cpu) in med.items():
        if regime.endswith("proc"):
            what = (
                f"OpenWorldVectorEnv in {args.procs} processes at once, one thread and {n} "
                "envs each, fresh maps, random actions"
            )
            figures[f"open_world_{regime}_steps_per_s_{n}"] = (
                wall,
                "env steps/s",
                what + ", all processes' steps over the common span, wall clock",
            )
            figures[f"open_world_{regime}_cpu_steps_per_s_{n}"] = (
                cpu,
                "env steps/s",
                what + ", sum of each process's steps per CPU-second",
            )
            continue
        what = f"OpenWorldVectorEnv, {n} envs, random actions, one thread, " + (
            "a fresh map per episode" if regime == "fresh" else f"maps reused {POOL_REUSE}x"
        )
        figures[f"steps_per_s_{regime}_{n}"] = (wall, "env steps/s", what + ", wall clock")
        figures[f"cpu_steps_per_s_{regime}_{n}"] = (cpu, "env steps/s", what + ", CPU time")
    big = max(args.envs)
    # the headline keys (docs quote these): the largest batch, fresh maps (the default world)
    figures["open_world_steps_per_s"] = (
        med[(big, "fresh")][0],
        "env steps/s",
        f"OpenWorldVectorEnv, {big} envs, fresh maps, wall clock",
    )
    figures["open_world_cpu_steps_per_s"] = (
        med[(big, "fresh")][1],
        "env steps/s",
        f"OpenWorldVectorEnv, {big} envs, fresh maps, CPU time",
    )
    figures["open_world_pool_cpu_steps_per_s"] = (
        med[(big, "pool")][1],
        "env steps/s",
        f"OpenWorldVectorEnv, {big} envs, maps reused {POOL_REUSE}x, CPU time",
    )
    figures["episodes_ended_per_1000_steps"] = (
        statistics.median(x[2] for k, v in runs.items() if not k[1].endswith("proc") for x in v),
        "episodes",
        "random actions, steady state (all runs)",
    )
    if ref:
        cw = statistics.median(x[0] for x in ref)
        cc = statistics.median(x[1] for x in ref)
        what = f"crafter 1.8.3, {args.crafter_envs} envs stepped in turn, random actions"
        figures["crafter_steps_per_s"] = (cw, "env steps/s", what + ", wall clock")
        figures["crafter_cpu_steps_per_s"] = (cc, "env steps/s", what + ", CPU time")
        figures["ratio_vs_crafter"] = (
            med[(big, "fresh")][1] / cc,
            "x",
            f"open world ({big} envs, fresh maps) over crafter, CPU time",
        )
        figures["ratio_vs_crafter_pool"] = (
            med[(big, "pool")][1] / cc,
            "x",
            f"open world ({big} envs, maps reused {POOL_REUSE}x) over crafter, CPU time",
        )
        print(
            f"ratio vs crafter at {big} envs (CPU time): fresh maps "
            f"{figures['ratio_vs_crafter'][0]:,.0f}x, pooled maps "
            f"{figures['ratio_vs_crafter_pool'][0]:,.0f}x"
        )
    env_line = f"open world, {big} envs, fresh maps, one thread: {med[(big, 'fresh')][0]:,.0f}"
    if args.procs >= 2:
        # the headline: the fastest batch per process (a batch past the shared cache's size
        # makes the processes compete for memory bandwidth)
        regime = f"{args.procs}proc"
        best = max(args.proc_envs, key=lambda pe: med[(pe, regime)][0])
        for key, i, how in (("steps_per_s", 0, "wall clock"), ("cpu_steps_per_s", 1, "CPU")):
            figures[f"open_world_{regime}_{key}"] = (
                med[(best, regime)][i],
                "env steps/s",
                f"OpenWorldVectorEnv in {args.procs} processes x {best} envs (the fastest of "
                f"{args.proc_envs} per process), fresh maps, {how}",
            )
        env_line += "; " + ", ".join(
            f"{args.procs} processes x {pe}: {med[(pe, regime)][0]:,.0f}" for pe in args.proc_envs
        )
    if args.ppo_steps > 0:
        ppo = ppo_throughput(args.ppo_steps)
        figures["ppo_steps_per_s_with_learning"] = (
            ppo,
            "env steps/s",
            f"OpenWorldPPO, 128 envs, episodes of 500, {args.ppo_steps} env steps including "
            "learning, one thread",
        )
        print(f"env steps/s: {env_line} | PPO including learning (one thread): {ppo:,.0f}")
    else:
        print(f"env steps/s: {env_line}")
    if args.no_record:
        return 0
    record(
        "bench_openworld",
        figures,
        reps=args.reps,
        notes="one thread; wall and CPU-time figures; medians of interleaved reps"
        + (f"; also {args.procs} processes at once, one thread each" if args.procs >= 2 else ""),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
