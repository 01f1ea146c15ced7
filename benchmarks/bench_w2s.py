"""Benchmark: a weak-to-strong fine-tuning step, mindscope's student vs a plain PyTorch loop.

Both fine-tune the shipped ``organism:quirky-arith`` (6 layers, d=64) with a classification head
(layer norm + linear) on the last block's output at each prompt's last token, the last two blocks
trainable, AdamW, batches of 64 quirky statements, binary cross-entropy on labels:

* ``plain``: a deep copy of the Hugging Face model, ``model(input_ids, attention_mask,
  output_hidden_states=True, use_cache=False).hidden_states[-1]``, the loop written by hand
  (``use_cache=False`` as mindscope's forward passes it: no key/value cache is built);
* ``mindscope``: :class:`mindscope.w2s.FineTunedStudent` (``val_fraction=0``: no early-stopping
  passes), its forward through :meth:`ModelHandle.forward` with a capture hook.

Each repetition times ``--steps`` steps of both (alternating which goes first) including the copy
and the tokenization, in CPU seconds of this single-threaded process (``time.process_time``: on a
shared machine wall time mostly measures the other jobs); the medians of the per-step times and
their ratio are recorded. ``--grid``
also times the grid of the w2s docs (3 supervisor kinds x 4 methods x 5 seeds, the stage's
defaults) end to end, one thread.

    .venv/bin/python benchmarks/bench_w2s.py                 # 5 reps x 40 steps
    .venv/bin/python benchmarks/bench_w2s.py --grid --weak runs/w2s-grid/weak-organism/step1200
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
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


def ours(h: Any, pairs: list[Any], y: np.ndarray, steps: int, seed: int) -> float:
    from mindscope.w2s import FineTunedStudent

    t = time.process_time()
    FineTunedStudent(train_layers=2, steps=steps, val_fraction=0.0, seed=seed).fit(h, pairs, y)
    return time.process_time() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--weak", default=None, help="weak organism folder (for --grid)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    import mindscope as ms
    from mindscope.data import quirky_arith

    h = ms.load_model("organism:quirky-arith")
    pairs = quirky_arith(1024, seed=0, split="train")
    y = np.array([p.meta["truth"] for p in pairs], dtype=float)
    ours(h, pairs, y, 3, 0)  # warm-up
    plain_loop(h, pairs, y, 3, 0)
    t_plain, t_ours = [], []
    for rep in range(args.reps):
        runs = [(t_plain, plain_loop), (t_ours, ours)]
        for bucket, fn in runs if rep % 2 == 0 else runs[::-1]:
            bucket.append(fn(h, pairs, y, args.steps, rep) / args.steps)
    mp, mo = statistics.median(t_plain), statistics.median(t_ours)
    print(f"per step: plain {mp * 1e3:.1f} ms, mindscope {mo * 1e3:.1f} ms, ratio {mo / mp:.3f}")
    figs: dict[str, Any] = {
        "step_ms_plain": (mp * 1e3, "ms", "plain PyTorch loop, per fine-tuning step"),
        "step_ms_mindscope": (mo * 1e3, "ms", "FineTunedStudent, per fine-tuning step"),
        "step_ratio": (mo / mp, "x", "mindscope / plain per-step time (median)"),
    }
    if args.grid:
        if not args.weak:
            raise SystemExit("--grid needs --weak (the weak organism's folder)")
        t = time.process_time()
        ms.analyses.run_stage(
            "w2s",
            h,
            {
                "supervisors": [
                    {"kind": "weak-model", "model": args.weak},
                    {"kind": "field", "name": "persona"},
                    {"kind": "random", "accuracy": 0.75},
                ],
                "methods": ["ce", "logconf", "reporter", "relabel"],
                "seeds": 5,
            },
        )
        grid_s = time.process_time() - t
        print(f"grid: {grid_s:.0f} s")
        figs["grid_s"] = (grid_s, "s", "3 supervisors x 4 methods x 5 seeds, one thread, CPU s")
    record(
        "bench_w2s",
        figs,
        reps=args.reps,
        notes="CPU time of one thread (process_time) on a shared machine; medians of "
        "interleaved repetitions",
    )


if __name__ == "__main__":
    main()
