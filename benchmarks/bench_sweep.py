"""Benchmark of checkpoint sweeps (issue 12): resume cost, duplicate cost, Ray vs in-process,
and warm-started vs cold tuned lenses.

    .venv/bin/python benchmarks/bench_sweep.py            # all parts
    .venv/bin/python benchmarks/bench_sweep.py --quick    # smaller sizes
    .venv/bin/python benchmarks/bench_sweep.py --parts warm

Parts:
* ``resume``: a full sweep (lens + elicit stages, ``--ckpts`` checkpoints of a tiny quirky
  organism trained in a temp MINDSCOPE_HOME) vs the same sweep re-run when everything is
  finished; medians of ``--reps`` interleaved repetitions, ratio (target < 0.05).
* ``dups``: base-model forward passes of a sweep over a series with one duplicated checkpoint
  vs the series without it (target: equal, i.e. the duplicate costs 0).
* ``ray``: elicit-stage sweep over ``--ckpts`` checkpoints (``--elicit-n`` pairs each; the
  default makes the in-process sweep take over 2 minutes on an idle 2-core machine),
  in-process with 1 and with 2 torch threads (``--inproc-threads``; the faster is the
  reference) vs 2 Ray workers x 1 thread (``num_cpus=2``), Ray start-up and shutdown included
  (target <= 0.6 for an in-process time of at least 2 minutes); prints both times, the ratio,
  PASS/FAIL and where the Ray run's time went; tables compared (bit for bit at 1 thread).
* ``warm``: on consecutive checkpoints of ``--organism`` (default quirky-arith, must be trained),
  a cold tuned lens trained ``--lens-steps`` steps on the later checkpoint vs lenses warm-started
  from the earlier checkpoint's lens trained 1/8, 1/4, 1/2 of the steps: held-out KL of each,
  and the fewest steps at which the warm start reaches the cold lens's KL (target <= 1/2).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _figures import record

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))


def _series(tmp: Path, steps: int) -> Path:
    from sweep_helpers import make_series

    from mindscope import organisms
    from mindscope.organisms.neox import ModelShape
    from mindscope.organisms.quirky import QuirkyConfig

    if steps == 12:
        return make_series(tmp / "q")
    shape = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32)
    cfg = QuirkyConfig(
        seed=0, max_steps=steps, pool_size=256, eval_per_cell=16, shape=shape, threads=1
    )
    return organisms.train("quirky-arith", cfg, out=tmp / "q", progress=False)


def _pick(series: Path, dst: Path, n: int) -> Path:
    from sweep_helpers import copy_series

    from mindscope.sweeps import folder_checkpoints, log_spaced

    steps = log_spaced([c.step for c in folder_checkpoints(series)], n)
    return copy_series(series, dst, steps)


def part_resume(tmp: Path, args: argparse.Namespace) -> None:
    from sweep_helpers import config, make_text

    import mindscope as ms

    series = _pick(_series(tmp, 12), tmp / "r-series", args.ckpts)
    text = make_text(tmp / "t.txt")
    full, again = [], []
    for rep in range(args.reps):
        cfg = config(series, text, tmp / f"r{rep}")
        t0 = time.perf_counter()
        ms.sweep(cfg)
        full.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = ms.sweep(cfg)
        again.append(time.perf_counter() - t0)
        assert res.computed == [] and res.loads == 0
    f, a = statistics.median(full), statistics.median(again)
    print(
        f"resume: full sweep {f:.2f} s, finished re-run {a:.3f} s, ratio {a / f:.4f} "
        f"({'PASS' if a / f < 0.05 else 'FAIL'} < 0.05); reps {args.reps}, {args.ckpts} ckpts"
    )
    record(
        "bench_sweep_resume",
        {
            "full_s": (f, "s", f"full lens + elicit sweep, {args.ckpts} checkpoints"),
            "resumed_s": (a, "s", "the same sweep re-run with everything finished"),
            "ratio": (a / f, "ratio", "resumed / full (target < 0.05)"),
        },
        reps=args.reps,
    )


def part_dups(tmp: Path, args: argparse.Namespace) -> None:
    from sweep_helpers import ForwardCounter, config, make_text

    import mindscope as ms

    series = _pick(_series(tmp, 12), tmp / "d-series", 3)
    text = make_text(tmp / "t.txt")
    dup = tmp / "d-dup"
    shutil.copytree(series, dup)
    last = sorted(dup.iterdir(), key=lambda p: int(p.name[4:]))[-1]
    shutil.copytree(last, dup / f"step{int(last.name[4:]) + 100}")
    with ForwardCounter() as a:
        ms.sweep(config(series, text, tmp / "d1"))
    with ForwardCounter() as b:
        r = ms.sweep(config(dup, text, tmp / "d2"))
    print(
        f"dups: forwards without the duplicate {a.n}, with it {b.n} (duplicate costs "
        f"{b.n - a.n}; {'PASS' if a.n == b.n else 'FAIL'}); duplicates {r.duplicates}"
    )
    record(
        "bench_sweep_dups",
        {
            "forwards": (a.n, "forward passes", "sweep over 3 checkpoints"),
            "forwards_dup": (b.n, "forward passes", "the same plus a copied checkpoint"),
            "dup_cost": (b.n - a.n, "forward passes", "cost of the duplicate (target 0)"),
        },
        reps=1,
    )


def _ray_breakdown(res: Any, t0_wall: float, total: float) -> str:
    """Where a Ray sweep's wall time went, from its tasks' stats."""
    st = list(res.tasks.values())
    first = min(t["started"] for t in st) - t0_wall
    last = max(t["finished"] for t in st) - t0_wall
    busy: dict[int, float] = {}
    for t in st:
        busy[t["pid"]] = busy.get(t["pid"], 0.0) + t["finished"] - t["started"]
    loads = sorted(t.get("load_seconds", 0.0) for t in st)
    return (
        f"start-up to first task {first:.1f} s, last task done at {last:.1f} s, after it "
        f"{total - last:.1f} s (gather + shutdown); {len(busy)} workers busy "
        + " / ".join(f"{b:.1f}" for b in busy.values())
        + f" s; model loads {loads[0]:.2f}-{loads[-1]:.2f} s (the first per worker imports "
        f"torch + transformers); task CPU {sum(t.get('cpu_seconds', 0.0) for t in st):.1f} s"
    )


def part_ray(tmp: Path, args: argparse.Namespace) -> None:
    import pandas as pd
    from sweep_helpers import config, make_text

    import mindscope as ms

    series = _pick(_series(tmp, 64), tmp / "y-series", args.ckpts)
    text = make_text(tmp / "t.txt")
    threads = [int(t) for t in args.inproc_threads.split(",")]
    ins: dict[int, list[float]] = {t: [] for t in threads}
    rays: list[float] = []
    notes: list[str] = []
    for rep in range(args.reps_ray):  # interleaved: each in-process variant, then Ray
        tables = {}
        for th in threads:
            cfg = config(series, text, tmp / f"yi{rep}-t{th}")
            cfg["stages"] = {"elicit": {"n": args.elicit_n, "n_test": args.elicit_n, "n_boot": 50}}
            cfg["threads"] = th  # torch threads of the in-process run (both cores when 2)
            t0 = time.perf_counter()
            tables[th] = ms.sweep(cfg).table
            ins[th].append(time.perf_counter() - t0)
        cfg = config(series, text, tmp / f"yr{rep}")
        cfg["stages"] = {"elicit": {"n": args.elicit_n, "n_test": args.elicit_n, "n_boot": 50}}
        cfg["num_cpus"] = 2  # 2 workers x 1 torch thread on the 2 cores
        cfg["threads"] = 1
        t0, w0 = time.perf_counter(), time.time()
        b = ms.sweep(cfg, backend="ray")
        rays.append(time.perf_counter() - t0)
        notes.append(_ray_breakdown(b, w0, rays[-1]))
        if 1 in tables:  # the same thread count: identical tables, bit for bit
            pd.testing.assert_frame_equal(tables[1], b.table, check_exact=True)
        for tab in tables.values():  # other thread counts: the same up to float rounding
            pd.testing.assert_frame_equal(tab, b.table, check_exact=False, rtol=1e-4)
    med = {th: statistics.median(v) for th, v in ins.items()}
    best = min(med, key=lambda th: med[th])
    i, r = med[best], statistics.median(rays)
    verdict = "PASS" if r / i <= 0.6 else ("FAIL" if i >= 120 else "n/a: in-process < 2 min")
    for th in threads:
        print(f"ray: in-process, {th} torch thread(s): {med[th]:.1f} s")
    print(f"ray: Ray, 2 workers x 1 thread (num_cpus=2, start-up included): {r:.1f} s")
    for n in notes:
        print(f"ray:   {n}")
    print(
        f"ray: {args.ckpts} ckpts elicit sweep (n={args.elicit_n}), Ray / fastest in-process "
        f"({best} thread(s)) = {r:.1f} / {i:.1f} = {r / i:.3f} ({verdict}, target <= 0.6 for an "
        f"in-process time >= 120 s); tables identical; reps {args.reps_ray}; "
        f"os.cpu_count {os.cpu_count()}, load {os.getloadavg()[0]:.1f}"
    )
    figures = {
        f"inproc_{th}t_s": (med[th], "s", f"in-process, {th} torch thread(s)") for th in threads
    }
    figures["ray_s"] = (r, "s", "Ray, 2 workers x 1 thread, start-up included")
    figures["ratio"] = (r / i, "ratio", "Ray / fastest in-process (target <= 0.6)")
    record("bench_sweep_ray", figures, reps=args.reps_ray)


def part_warm(tmp: Path, args: argparse.Namespace) -> None:
    import torch

    import mindscope as ms
    from mindscope import lenses
    from mindscope.analyses.lens import warm_start_lens
    from mindscope.data import quirky_arith
    from mindscope.lenses.train import TrainConfig, train
    from mindscope.sweeps import organism_checkpoints

    torch.set_num_threads(args.threads)
    ckpts = organism_checkpoints(args.organism)
    a, b = ckpts[args.pair], ckpts[args.pair + 1]
    if args.organism == "pocket-lm":
        docs = ms.organisms.pocket_corpus("train")[:400]
        held = ms.organisms.pocket_corpus("heldout")[:200]
    else:
        pairs = quirky_arith(3000, seed=5)
        docs = [p.prompt + p.completions[p.label] for p in pairs[:2500]]
        held = [p.prompt + p.completions[p.label] for p in pairs[2500:]]
    n = args.lens_steps

    def fit(h: Any, steps: int, init: Any = None) -> Any:
        lens = warm_start_lens(h, init)
        cfg = TrainConfig(
            num_steps=steps,
            tokens_per_step=args.tokens,
            seq_len=args.seq_len,
            seed=1,
            progress=False,
        )
        return train(lens, docs, cfg)

    def kl(h: Any, lens: Any) -> float:
        df = lenses.evaluate(h, lens, held, n_boot=0, seq_len=args.seq_len)
        sel = (df["metric"] == "kl") & (df["method"] == "tuned_lens") & (df["layer"] < h.n_layers)
        return float(df.loc[sel, "value"].mean())

    ha = ms.load_model(a.path, device="cpu")
    hb = ms.load_model(b.path, device="cpu")
    prev = fit(ha, n)
    state = {"weight": prev.weight.detach().clone(), "bias": prev.bias.detach().clone()}
    cold = kl(hb, fit(hb, n))
    fracs = (8, 4, 2)
    warm = {n // f: kl(hb, fit(hb, n // f, state)) for f in fracs}
    reached = [s for s, v in sorted(warm.items()) if v <= cold]
    first = reached[0] if reached else None
    print(
        f"warm: {args.organism} {a.revision} -> {b.revision}, cold lens {n} steps held-out KL "
        f"{cold:.4f} nats (mean over layers < L)"
    )
    for s, v in sorted(warm.items()):
        print(f"warm:   warm-started {s:4d} steps: KL {v:.4f} ({'<=' if v <= cold else '>'} cold)")
    verdict = "PASS" if first is not None and first <= n // 2 else "FAIL"
    print(f"warm: fewest warm steps reaching the cold KL: {first} of {n} ({verdict} <= {n // 2})")
    figures = {
        "cold_steps": (n, "steps", "cold tuned lens"),
        "cold_kl": (cold, "nats", "held-out KL of the cold lens, mean over layers"),
    }
    if first is not None:
        figures["warm_steps"] = (first, "steps", "fewest warm-started steps reaching the cold KL")
    record("bench_sweep_warm", figures, reps=1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--parts", default="resume,dups,warm,ray")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ckpts", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--reps-ray", type=int, default=1)
    p.add_argument(
        "--elicit-n",
        type=int,
        default=20480,
        help="ray part: pairs per checkpoint (default: >= 2 min in-process on idle 2 cores)",
    )
    p.add_argument(
        "--inproc-threads",
        default="1,2",
        help="ray part: torch thread counts of the in-process runs; the fastest is the reference",
    )
    p.add_argument("--organism", default="quirky-arith")
    p.add_argument("--pair", type=int, default=-3, help="index of the earlier checkpoint")
    p.add_argument("--lens-steps", type=int, default=64)
    p.add_argument("--tokens", type=int, default=2048)
    p.add_argument("--seq-len", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    if args.quick:
        args.ckpts, args.reps, args.elicit_n, args.lens_steps = 4, 1, 128, 32
    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    import torch

    torch.set_num_threads(args.threads)
    try:
        for part in args.parts.split(","):
            {"resume": part_resume, "dups": part_dups, "ray": part_ray, "warm": part_warm}[
                part.strip()
            ](tmp / part.strip(), args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
