"""Issue 16's science figures: detection rate of each planted fraud placed at random, false
rejections of honest transcripts over seeds, compute fraction for Q = 1, 3, 10.

Run: ``PYTHONPATH=. python benchmarks/verify_science.py [--trials 5]`` (tiny quirky organisms,
96 steps in 6 segments, 1 thread; the sleeper row reads a full 25-segment transcript if given
with ``--transcript DIR``).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
from pathlib import Path

import torch
from _figures import record

from mindscope import organisms
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig
from mindscope.testing import frauds
from mindscope.verify import CROSS_THREAD_TOLERANCE, verify_training


def tiny(seed: int) -> QuirkyConfig:
    return QuirkyConfig(
        seed=seed, max_steps=96, truthful_steps=48, quirk_layers=1, batch_size=16,
        pool_size=256, eval_per_cell=8,
        shape=ModelShape(n_layers=2, d_model=16, n_heads=2, d_mlp=32, max_len=32),
        threads=1, n_linear=2, transcript_segments=6,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--transcript", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="verify-science-"))
    rng = random.Random(0)
    honest = [
        organisms.train("quirky-arith", tiny(s), out=tmp / f"h{s}", progress=False)
        for s in range(args.trials)
    ]
    rejected = sum(not verify_training(h, q=1, n_random=1).accepted for h in honest)
    print(f"honest transcripts rejected: {rejected}/{len(honest)} (same machine, 1 thread)")
    rejected2 = sum(not verify_training(h, q=1, n_random=1, threads=2).accepted for h in honest)
    print(f"honest transcripts rejected: {rejected2}/{len(honest)} (re-executed with 2 threads)")
    figures = {
        "false_rejections": (rejected, "count", "honest transcripts rejected, 1 thread"),
        "false_rejections_2threads": (rejected2, "count", "the same, re-executed on 2 threads"),
    }
    least_caught = len(honest)
    tol = 10 * CROSS_THREAD_TOLERANCE
    makers = {
        "swap data (random segment)": lambda s, d: frauds.swap_data(s, d, rng.randrange(6)),
        "noise x10 tol (random ckpt)": lambda s, d: frauds.add_noise(
            s, d, step=16 * rng.randrange(1, 7), scale=tol
        ),
        "interpolate 3 segments": lambda s, d: frauds.interpolate(
            s, d, (f := rng.randrange(4)), f + 2
        ),
        "fine-tune after last": lambda s, d: frauds.fine_tune_after(s, d, steps=3),
        "fine-tune + last ckpt": lambda s, d: frauds.fine_tune_after(s, d, 3, also_transcript=True),
        "edited chain (random segment)": lambda s, d: frauds.edit_chain(s, d, rng.randrange(6)),
    }
    for name, make in makers.items():
        for q in (1,):
            caught, fracs = 0, []
            for t, h in enumerate(honest):
                forged = make(h, tmp / f"f-{abs(hash(name))}-{t}")
                r = verify_training(forged, q=q, n_random=0)
                caught += not r.accepted
                fracs.append(r.compute_fraction)
                shutil.rmtree(forged)
            print(f"{name:<32} detected {caught}/{len(honest)} at Q={q}, mean compute "
                  f"{100 * sum(fracs) / len(fracs):.1f}% of training")  # fmt: skip
            least_caught = min(least_caught, caught)
    figures["frauds_detected_min"] = (least_caught, "count", "fewest trials caught, any fraud")
    if args.transcript:
        for q in (1, 3, 10):
            r = verify_training(args.transcript, q=q, n_random=0)
            print(f"{args.transcript} Q={q}: {r.verdict()}; {r.seconds:.1f} s "
                  f"(training {r.train_seconds} s)")  # fmt: skip
    shutil.rmtree(tmp)
    record("verify_science", figures, reps=args.trials)


if __name__ == "__main__":
    main()
