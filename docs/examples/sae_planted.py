"""Architecture comparison of SAEs on planted dictionaries -> docs/figures/sae.json.

Every architecture (TopK, BatchTopK, JumpReLU, L1, Matryoshka BatchTopK) is trained at the same
L0 target on the same stream of planted activations, for several seeds (the seed changes the
dictionary, the data stream and the SAE's initialisation), and scored against the truth: MCC
(Hungarian), firing F1, variance explained, dead fraction. Intervals are 95% t-intervals over
seeds. The easy regime (few features active, nearly orthogonal features, a dictionary twice
the truth) is run too.

    python docs/examples/sae_planted.py                 # about 15 minutes on one loaded core
    python docs/examples/sae_planted.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

from mindscope import sae

ROOT = Path(__file__).resolve().parents[2]


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds."""
    from scipy import stats

    n = len(values)
    m = sum(values) / n
    if n < 2:
        return m, m, m
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1))
    h = float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)
    return m, m - h, m + h


def run(setting: str, archs: list[str], seed: int, *, k: int, n_latents: int | None,
        steps: int, batch: int, overrides: dict) -> dict[str, dict]:
    """Every architecture trained side by side on the same batches (seeded), then scored."""
    gen = sae.planted(setting, seed=seed, **overrides)
    width = n_latents or gen.n_features
    models = {a: sae.make_sae(a, width, k, n_steps=steps, batch_size=batch, seed=seed,
                              dead_tokens=20_000, lr=3e-3) for a in archs}
    source = sae.planted_source(gen, batch, seed=seed + 1)
    secs = dict.fromkeys(archs, 0.0)
    for step in range(steps):
        x = source(step)
        for a, m in models.items():
            t0 = time.process_time()
            m.partial_fit(x)
            secs[a] += time.process_time() - t0
    out = {}
    for a, m in models.items():
        out[a] = sae.evaluate_planted(m, gen)
        out[a]["train_cpu_s"] = secs[a]
        out[a]["null_mcc"] = sae.null_mcc(gen.features_, width, reps=1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--plans", default="small,easy", help="comma-separated: small, easy")
    ap.add_argument("--out", default=str(ROOT / "docs" / "figures" / "sae.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    steps = 100 if args.quick else args.steps
    seeds = list(range(2 if args.quick else args.seeds))
    plans = {
        "small": dict(setting="small", k=8, n_latents=None, steps=steps, batch=512,
                      overrides={"n_features": 1024, "d": 128}),
        "easy": dict(setting="easy", k=2, n_latents=512, steps=steps, batch=512,
                     overrides={"mean_active": 2}),
    }
    archs = {"small": list(sae.ARCHITECTURES), "easy": ["batchtopk", "topk"]}
    fig: dict = {"conditions": {"threads": 1, "idle": False, "seeds": seeds,
                                "plans": plans}, "results": {}}
    for name in args.plans.split(","):
        plan = plans[name]
        per_seed = [run(archs=archs[name], seed=s, **plan) for s in seeds]
        for arch in archs[name]:
            summary = {}
            for key in per_seed[0][arch]:
                vals = [r[arch][key] for r in per_seed]
                m, lo, hi = t_interval(vals)
                summary[key] = {"mean": m, "ci_low": lo, "ci_high": hi, "values": vals}
            fig["results"][f"{name}/{arch}"] = summary
            print(name, arch, {k: round(v["mean"], 3) for k, v in summary.items()}, flush=True)
    out = Path(args.out)
    if out.is_file():  # keep the other plans' results
        old = json.loads(out.read_text())
        fig["results"] = {**old.get("results", {}), **fig["results"]}
    out.write_text(json.dumps(fig, indent=1))
    print("wrote", args.out)


if __name__ == "__main__":
    main()
