"""Benchmark: one training step of an organism, mindscope's trainer vs the plain Hugging Face path.

The step is what ``quirky-arith`` runs 3,500 times: 128 statements (at most 12 tokens each, its
word-level tokenizer), a 6-layer d=64 GPT-NeoX with full rotary embeddings, next-token
cross-entropy, backward, gradient clipping and an AdamW update. Three variants share one model
and one batch:

* ``hf``: ``model(input_ids=...).logits`` and the default (for-each) AdamW, as a user would
  write the loop with transformers alone (the reference);
* ``hf+fused``: the same forward, ``AdamW(fused=True)``;
* ``mindscope``: ``organisms.neox.train_logits`` (the lean forward, tested equal to the
  Hugging Face forward) and the fused AdamW, as ``organisms.trainer`` runs it.

Repetitions alternate the variants; medians of the per-step time are printed with the ratios to
``hf`` (below 1: faster). The figures also depend on the machine's load: run it idle.

    .venv/bin/python benchmarks/bench_organism_step.py            # 7 reps x 20 steps
    .venv/bin/python benchmarks/bench_organism_step.py --batch 16 --reps 3
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from _figures import record

from mindscope.organisms.neox import build_model, train_logits
from mindscope.organisms.quirky import QuirkyConfig, _encode, quirky_tokenizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=128, help="statements per step")
    ap.add_argument("--steps", type=int, default=20, help="steps per timed repetition")
    ap.add_argument("--reps", type=int, default=7, help="interleaved repetitions")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    cfg = QuirkyConfig()
    tok = quirky_tokenizer(cfg.words)
    pairs = cfg.dataset(args.batch, seed=0, split="train")
    x, _ = _encode(tok, [p.prompt for p in pairs])  # [batch, width]
    model = build_model(cfg.shape, len(tok), tok.eos_token_id, seed=0)
    params = list(model.parameters())
    optims = {
        "foreach": torch.optim.AdamW(params, lr=1e-3),
        "fused": torch.optim.AdamW(params, lr=1e-3, fused=True),
    }
    with torch.no_grad():
        diff = (train_logits(model, x) - model(input_ids=x).logits).abs().max().item()

    def hf(ids: torch.Tensor) -> torch.Tensor:
        return model(input_ids=ids).logits

    def lean(ids: torch.Tensor) -> torch.Tensor:
        return train_logits(model, ids)

    variants: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor], str]] = {
        "hf": (hf, "foreach"),
        "hf+fused": (hf, "fused"),
        "mindscope": (lean, "fused"),
    }

    def step(name: str) -> None:
        forward, opt_name = variants[name]
        logits = forward(x[:, :-1])  # [batch, width-1, vocab]
        loss = F.cross_entropy(logits.transpose(1, 2), x[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optims[opt_name].step()
        optims[opt_name].zero_grad(set_to_none=True)

    for name in variants:  # warm-up
        for _ in range(3):
            step(name)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.reps):
        for name in variants:
            t0 = time.perf_counter()
            for _ in range(args.steps):
                step(name)
            times[name].append((time.perf_counter() - t0) / args.steps * 1000)

    print(
        f"batch {args.batch} x {x.shape[1] - 1} tokens, {args.threads} threads, "
        f"{args.reps} reps x {args.steps} steps; max |lean - hf| logit difference {diff:.1e}"
    )
    base = statistics.median(times["hf"])
    print(f"{'variant':<10} {'ms/step':>8} {'/ hf':>6}  per-rep ms")
    for name, ts in times.items():
        med = statistics.median(ts)
        reps = " ".join(f"{t:.1f}" for t in ts)
        print(f"{name:<10} {med:8.1f} {med / base:6.2f}  {reps}")
    ours = statistics.median(times["mindscope"])
    record(
        "bench_organism_step",
        {
            "mindscope_ms": (ours, "ms/step", "lean forward + fused AdamW"),
            "hf_ms": (base, "ms/step", "plain transformers loop (HF forward + AdamW)"),
            "hf_fused_ratio": (
                statistics.median(times["hf+fused"]) / base,
                "ratio",
                "fused AdamW alone / hf",
            ),
            "ratio": (ours / base, "ratio", "mindscope / hf"),
            "max_logit_diff": (diff, "abs", "lean vs HF forward logits"),
        },
        reps=args.reps,
    )


if __name__ == "__main__":
    main()
