"""Architecture comparison of SAEs on planted dictionaries -> docs/figures/sae.json.

Every architecture (TopK, BatchTopK, JumpReLU, L1, Matryoshka BatchTopK) is trained at the same
L0 target on the same stream of planted activations, for several seeds (the seed changes the
dictionary, the data stream and the SAE's initialisation), and scored against the truth: MCC
(Hungarian), firing F1, variance explained, dead fraction. Intervals are 95% t-intervals over
seeds. The easy regime (few features active, nearly orthogonal features, a dictionary twice
the truth) is run at 128, 256 and 512 features.

    python docs/examples/sae_planted.py                 # about 6 CPU-minutes
    python docs/examples/sae_planted.py --quick         # a smoke run
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import torch

from mindscope import sae

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
FIGURES = ROOT / "docs" / "figures" / "sae_planted.json"
KEYS = (
    "mcc",
    "f1",
    "precision",
    "recall",
    "uniqueness",
    "l0",
    "fve",
    "dead_frac",
    "shrinkage",
    "null_mcc",
    "train_cpu_s",
)
UNITS = {"train_cpu_s": "CPU s", "l0": "latents"}


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


def run(
    setting: str,
    archs: list[str],
    seed: int,
    *,
    k: int,
    n_latents: int | None,
    steps: int,
    batch: int,
    overrides: dict,
) -> dict[str, dict]:
    """Every architecture trained side by side on the same batches (seeded), then scored."""
    gen = sae.planted(setting, seed=seed, **overrides)
    return sae.compare_planted(
        gen,
        archs,
        k=k,
        n_latents=n_latents,
        steps=steps,
        batch_size=batch,
        seed=seed,
        dead_tokens=20_000,
        lr=3e-3,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--easy-steps", type=int, default=1600)
    ap.add_argument("--large-steps", type=int, default=1000)
    ap.add_argument(
        "--plans",
        default="small,easy,easy256,easy512",
        help="comma-separated: small, easy, easy256, easy512, small4x, large (the last two "
        "are not in the default)",
    )
    ap.add_argument("--out", default=None, help="also keep the raw per-seed results here")
    ap.add_argument(
        "--convert",
        nargs="*",
        default=None,
        help="only record figures from raw result files of earlier runs",
    )
    args = ap.parse_args()
    if args.convert is not None:
        raws = [json.loads(Path(p).read_text()) for p in args.convert]
        record_figures(
            raws,
            "python docs/examples/sae_planted.py  (plans run as separate processes: "
            "--plans easy,easy256; --plans small,easy512; --plans small4x; "
            "--plans large --seeds 1 --large-steps 2000)",
        )
        return
    torch.set_num_threads(1)
    steps = 100 if args.quick else args.steps
    seeds = list(range(2 if args.quick else args.seeds))
    easy_steps = 100 if args.quick else args.easy_steps

    def easy(n_features: int, d: int) -> dict:
        # few features active (2 on average), nearly orthogonal directions (n_features / d = 2
        # or 4, pushed apart), a dictionary twice the truth
        return dict(
            setting="easy",
            k=2,
            n_latents=2 * n_features,
            steps=easy_steps,
            batch=256,
            overrides={"n_features": n_features, "d": d, "mean_active": 2},
        )

    plans = {
        "small": dict(
            setting="small",
            k=6,
            n_latents=None,
            steps=steps,
            batch=256,
            overrides={"n_features": 512, "d": 64, "mean_active": 6},
        ),
        # the same with four times the steps: does the ranking change with the budget?
        "small4x": dict(
            setting="small",
            k=6,
            n_latents=None,
            steps=4 * steps,
            batch=256,
            overrides={"n_features": 512, "d": 64, "mean_active": 6},
        ),
        # closer to SynthSAEBench (16,384 features in 768 dimensions, 34 active): 4096 features
        # in 256 dimensions, 16 active, the hierarchy and correlations of `small`
        "large": dict(
            setting="small",
            k=16,
            n_latents=None,
            steps=100 if args.quick else args.large_steps,
            batch=256,
            overrides={"n_features": 4096, "d": 256, "mean_active": 16},
        ),
        "easy": easy(128, 64),
        "easy256": easy(256, 128),
        "easy512": easy(512, 128),
    }
    archs = {
        "small": list(sae.ARCHITECTURES),
        "small4x": list(sae.ARCHITECTURES),
        "large": list(sae.ARCHITECTURES),
        "easy": ["topk", "batchtopk", "matryoshka"],
        "easy256": ["topk", "batchtopk"],
        "easy512": ["topk"],
    }
    fig: dict = {
        "conditions": {"threads": 1, "idle": False, "seeds": seeds, "plans": plans},
        "results": {},
    }
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
    if args.out:
        Path(args.out).write_text(json.dumps(fig, indent=1))
    record_figures([fig], " ".join(sys.argv))


def record_figures(raws: list[dict], command: str) -> None:
    """Flat figures ``<plan>_<arch>_<metric>`` (mean over seeds, 95% t-interval) into
    docs/figures/sae_planted.json."""
    from _figures import record

    figures: dict = {}
    plans: dict = {}
    seeds = 0
    for raw in raws:
        plans.update(raw["conditions"]["plans"])
        seeds = max(seeds, len(raw["conditions"]["seeds"]))
        for name, summary in raw["results"].items():
            plan, arch = name.split("/")
            for key in KEYS:
                if key in summary:
                    v = summary[key]
                    figures[f"{plan}_{arch}_{key}"] = {
                        "value": v["mean"],
                        "unit": UNITS.get(key, "ratio"),
                        "ci_low": v["ci_low"],
                        "ci_high": v["ci_high"],
                        "values": v["values"],
                        "what": f"{key} of {arch} on the {plan} planted setting, mean over seeds",
                    }
    record(
        "sae_planted",
        figures,
        reps=seeds,
        command=command,
        idle=False,
        notes=f"plans: {json.dumps(plans)}",
        path=FIGURES,
    )


if __name__ == "__main__":
    main()
