"""Benchmark: a weak-to-strong fine-tuning step against a plain PyTorch loop, and the w2s grid.

Step: both fine-tune the shipped ``organism:quirky-arith`` (6 layers, d=64) with a classification
head (layer norm + linear) on the last block's output at each prompt's last token, the last two
blocks trainable, AdamW, batches of 64 quirky statements, binary cross-entropy on labels:

* ``plain``: a deep copy of the Hugging Face model, ``model(input_ids, attention_mask,
  output_hidden_states=True, use_cache=False).hidden_states[-1]``, the loop written by hand
  (``use_cache=False`` as mindscope's forward passes it: no key/value cache is built);
* ``nocache``: :class:`mindscope.w2s.FineTunedStudent` with ``cache=False`` (the same work as
  the plain loop: its forward through :meth:`ModelHandle.forward` with a capture hook);
* ``mindscope``: the student as an experiment runs it: the four frozen blocks ran once for the
  1,024 statements before (``encode_ms``, shared by every student of the experiment, not in the
  per-step time) and each step runs the two trained blocks.

``val_fraction=0`` (no early-stopping passes). Each repetition times ``--steps`` steps of each
(rotating which goes first) including the copy and the tokenization, in CPU seconds of this
single-threaded process (``time.process_time``: on a shared machine wall time mostly measures
the other jobs); the medians of the per-step times and their ratios are recorded.

``--grid`` also runs the grid of docs/w2s.md's time figure: 3 supervisor kinds (the weak
organism, the quirky persona, 25% random errors) x 4 methods (ce, logconf, reporter, relabel) x
5 seeds, 60 steps, on ``--workers`` Ray workers of one thread (``--workers 1``: in this
process). It records the wall time, the CPU seconds of the driver and of every student, and
``grid_2core_s``: the driver's CPU time plus the students' CPU time spread over two workers (the
wall time to expect on an idle 2-core machine, Ray's start-up aside). The weak organism is
trained first when ``--weak`` is not given (about 25 CPU seconds, kept in ``runs/w2s-grid``).

    .venv/bin/python benchmarks/bench_w2s.py                     # 5 reps x 40 steps
    .venv/bin/python benchmarks/bench_w2s.py --quick             # 2 reps x 20 steps
    .venv/bin/python benchmarks/bench_w2s.py --grid --workers 2  # + the grid on 2 workers
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from _figures import record


def plain_loop(h: Any, pairs: list[Any], y: np.ndarray, steps: int, seed: int) -> float:
    """The hand-written loop; returns seconds."""
    t = time.process_time()
    torch.manual_seed(seed)
    model = copy.deepcopy(h.model)
    for p in model.parameters():
        p.requires_grad_(False)
    blocks = model.gpt_neox.layers[-2:]
    params = [p for b in blocks for p in b.parameters()]
    for p in params:
        p.requires_grad_(True)
    d = model.config.hidden_size
    head = torch.nn.Sequential(torch.nn.LayerNorm(d), torch.nn.Linear(d, 1))
    opt = torch.optim.AdamW(
        [{"params": head.parameters(), "lr": 3e-3}, {"params": params, "lr": 3e-4}],
        weight_decay=0.0,
    )
    enc = h.tokenizer([p.prompt for p in pairs], padding=True, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    last = mask.sum(1) - 1
    yt = torch.tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(pairs), generator=gen)
    for step in range(steps):
        j = order[(step * 64) % len(pairs) :][:64]
        out = model(
            input_ids=ids[j], attention_mask=mask[j], output_hidden_states=True, use_cache=False
        )
        x = out.hidden_states[-1][torch.arange(len(j)), last[j]]  # [b, d]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x).squeeze(-1), yt[j])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - t


def ours(h: Any, pairs: Any, y: np.ndarray, steps: int, seed: int, cache: bool = True) -> float:
    from mindscope.w2s import FineTunedStudent

    t = time.process_time()
    FineTunedStudent(train_layers=2, steps=steps, val_fraction=0.0, seed=seed, cache=cache).fit(
        h, pairs, y
    )
    return time.process_time() - t


def nocache(h: Any, pairs: list[Any], y: np.ndarray, steps: int, seed: int) -> float:
    return ours(h, pairs, y, steps, seed, cache=False)


def grid(h: Any, weak: str, workers: int) -> dict[str, Any]:
    """The 3 x 4 x 5 grid; its timings."""
    from mindscope.analyses.w2s import W2SConfig, _load, make_supervisor
    from mindscope.w2s import run_w2s

    t, c = time.time(), time.process_time()
    cfg = W2SConfig.model_validate(
        {
            "supervisors": [
                {"kind": "weak-model", "model": weak, "name": "weak-organism"},
                {"kind": "field", "name": "persona"},
                {"kind": "random", "accuracy": 0.75},
            ],
            "methods": ["ce", "logconf", "reporter", "relabel"],
            "seeds": 5,
            "steps": 60,
        }
    )
    ds = _load(cfg, 0)
    sups = {s.label: make_supervisor(s) for s in cfg.supervisors}
    res = run_w2s(
        h,
        ds.train,
        ds.test,
        sups,
        methods=cfg.methods,
        seeds=cfg.seeds,
        student={"steps": cfg.steps},
        backend="ray" if workers > 1 else "inprocess",
        workers=workers,
    )
    wall, cpu = time.time() - t, time.process_time() - c
    students = sum(res.info["student_cpu_s"].values())
    n_students = len(res.info["student_cpu_s"])
    driver = cpu - (students if workers == 1 else 0.0)
    return {
        "grid_wall_s": (wall, "s", f"3 supervisors x 4 methods x 5 seeds, {workers} worker(s)"),
        "grid_driver_cpu_s": (
            driver,
            "s",
            "CPU of the driver: data, supervisors, encoding, scores",
        ),
        "grid_students_cpu_s": (
            students,
            "s",
            f"CPU of the {n_students} students",
        ),
        "grid_2core_s": (
            driver + students / 2,
            "s",
            "driver CPU + students' CPU over 2 workers: the idle 2-core wall time to expect",
        ),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--quick", action="store_true", help="2 reps x 20 steps")
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--workers", type=int, default=2, help="grid: Ray workers (1: in process)")
    ap.add_argument("--weak", default=None, help="weak organism folder (for --grid)")
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steps = 2, 20
    torch.set_num_threads(1)
    import mindscope as ms
    from mindscope.data import quirky_arith

    h = ms.load_model("organism:quirky-arith")
    pairs = quirky_arith(1024, seed=0, split="train")
    y = np.array([p.meta["truth"] for p in pairs], dtype=float)
    from mindscope.w2s import FineTunedStudent

    def cached(h: Any, pairs: Any, y: np.ndarray, steps: int, seed: int) -> float:
        return ours(h, enc, y, steps, seed)

    fns = {"plain": plain_loop, "nocache": nocache, "mindscope": cached}
    times: dict[str, list[float]] = {k: [] for k in fns}
    enc_s = []
    for _ in range(args.reps + 1):
        t = time.process_time()
        enc = FineTunedStudent(train_layers=2).encode(h, pairs)  # once per experiment
        enc_s.append(time.process_time() - t)
    for fn in fns.values():
        fn(h, pairs, y, 3, 0)  # warm-up
    names = list(fns)
    for rep in range(args.reps):
        for name in names[rep % 3 :] + names[: rep % 3]:
            times[name].append(fns[name](h, pairs, y, args.steps, rep) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    mp, mn, mo = med["plain"], med["nocache"], med["mindscope"]
    print(
        f"per step: plain {mp * 1e3:.1f} ms, mindscope without cache {mn * 1e3:.1f} ms "
        f"(ratio {mn / mp:.3f}), mindscope {mo * 1e3:.1f} ms (ratio {mo / mp:.3f})"
    )
    figs: dict[str, Any] = {
        "step_ms_plain": (mp * 1e3, "ms", "plain PyTorch loop, per fine-tuning step"),
        "step_ms_nocache": (mn * 1e3, "ms", "FineTunedStudent(cache=False), per step"),
        "step_ms_mindscope": (mo * 1e3, "ms", "FineTunedStudent (frozen blocks cached), per step"),
        "step_ratio_nocache": (mn / mp, "x", "mindscope without cache / plain (median)"),
        "step_ratio": (mo / mp, "x", "mindscope / plain per-step time (median)"),
        "encode_ms": (
            statistics.median(enc_s) * 1e3,
            "ms",
            "running the 4 frozen blocks once on the 1,024 statements (shared by every student)",
        ),
    }
    if args.grid:
        weak = args.weak
        if weak is None:
            sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "docs" / "examples"))
            from w2s_grid import weak_organism

            weak = str(weak_organism(Path("runs/w2s-grid/weak-organism")))
        g = grid(h, weak, args.workers)
        print(
            f"grid: {g['grid_wall_s'][0]:.0f} s wall, driver {g['grid_driver_cpu_s'][0]:.0f} s "
            f"+ students {g['grid_students_cpu_s'][0]:.0f} s CPU -> "
            f"{g['grid_2core_s'][0]:.0f} s on 2 idle cores"
        )
        figs.update(g)
    record(
        "bench_w2s",
        figs,
        reps=args.reps,
        notes="CPU time of one thread (process_time); medians of interleaved repetitions; the "
        "grid's wall time depends on the machine's load, its CPU figures much less",
    )


if __name__ == "__main__":
    main()
