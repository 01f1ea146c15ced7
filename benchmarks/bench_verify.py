"""Cost of training transcripts and of verification (issue 16's performance targets).

1. Writing the transcript costs <= 5% of training: the same organism trained with
   ``transcript_segments=25`` and with 0 (no transcript), interleaved repetitions, medians.
2. Verifying Q segments costs Q/N of training plus <= 10% overhead: wall time of
   ``verify_training(q=Q, n_random=0)`` (which also re-executes the last segment) against the
   training time times the fraction of updates it re-executed.

Run: ``PYTHONPATH=. python benchmarks/bench_verify.py [--reps 3] [--steps 400]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _figures import record

from mindscope import organisms
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig
from mindscope.verify import verify_training


def config(steps: int, segments: int) -> QuirkyConfig:
    return QuirkyConfig(
        max_steps=steps,
        truthful_steps=steps // 2,
        quirk_layers=1,
        batch_size=64,
        pool_size=4096,
        eval_per_cell=32,
        shape=ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32),
        threads=1,
        n_linear=2,
        transcript_segments=segments,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    times: dict[int, list[float]] = {0: [], 25: []}
    kept = None
    for rep in range(args.reps):
        for segments in (0, 25):  # interleaved
            out = tmp / f"{segments}-{rep}"
            t0 = time.perf_counter()
            organisms.train("quirky-arith", config(args.steps, segments), out=out, progress=False)
            times[segments].append(time.perf_counter() - t0)
            if segments and kept is None:
                kept = out
            elif out != kept:
                shutil.rmtree(out)
    base, with_t = statistics.median(times[0]), statistics.median(times[25])
    print(
        f"training {args.steps} steps: no transcript {base:.2f} s, with transcript "
        f"{with_t:.2f} s (medians of {args.reps}); ratio {with_t / base:.3f} (target <= 1.05)"
    )
    assert kept is not None
    figures = {
        "with_s": (with_t, "s", f"training {args.steps} steps with a transcript"),
        "without_s": (base, "s", "the same without"),
        "ratio": (with_t / base, "ratio", "with / without transcript (target <= 1.05)"),
    }
    for q in (1, 3, 10):
        t0 = time.perf_counter()
        r = verify_training(kept, q=q, n_random=0)
        secs = time.perf_counter() - t0
        frac = r.steps_reexecuted / r.steps_total
        print(
            f"verify Q={q}: {r.verdict().split(' (')[0]}; re-executed {frac:.1%} of updates; "
            f"{secs:.2f} s = {secs / with_t:.1%} of training time; ratio to Q/N x training "
            f"{secs / (frac * with_t):.2f} (target <= 1.10)"
        )
        figures[f"verify_q{q}_ratio"] = (
            secs / (frac * with_t),
            "ratio",
            f"verifying Q={q} of 25 segments / (Q/N x training time)",
        )
    shutil.rmtree(tmp)
    record("bench_verify", figures, reps=args.reps, idle=None)


if __name__ == "__main__":
    main()
