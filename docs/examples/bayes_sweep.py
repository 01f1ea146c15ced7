"""Regenerate docs/figures/bayes_sweep.json: the task-diversity transition of icl-regression.

Trains ``icl-regression-m<M>`` (default config, D = 4, K = 16, s^2 = 0.25) for every M in
``--tasks`` and seed in ``--seeds`` into the organism cache (skipping those already trained:
resumable), then scores each final checkpoint with the ``bayes`` stage against dMMSE and ridge,
the checkpoints of seed 0 across training, and the misspecified tests on ``--misspec`` models.

    OMP_NUM_THREADS=1 python docs/examples/bayes_sweep.py --workers 4
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "figures" / "bayes_sweep.json"
RAW = Path(__file__).resolve().parent / "bayes_sweep_raw.json"
"""Every number of the sweep; OUT holds the quoted figures in the benchmarks' record format."""


def _name(m: int) -> str:
    from mindscope.organisms.icl import DEFAULT_TASKS

    return "icl-regression" if m == DEFAULT_TASKS else f"icl-regression-m{m}"


def _train(job: tuple[int, int]) -> tuple[int, int, float]:
    from mindscope import organisms
    from mindscope.organisms import store

    m, seed = job
    name = _name(m)
    cfg = organisms.default_config(name, seed)
    root = store.organism_root(name, seed)
    man = store.read_manifest(root)
    if man is None or man.get("config_hash") != store.config_hash(cfg):
        organisms.train(name, seed=seed, progress=False)
        man = store.read_manifest(root)
    assert man is not None
    return m, seed, float(man["train_seconds"])


def _summary(rows: Any) -> dict[str, dict[str, float]]:
    from mindscope.results import extra_of

    out: dict[str, dict[str, float]] = {}
    for r in rows.itertuples():
        if extra_of(r.extra).get("k") != "all":
            continue
        out.setdefault(r.dataset, {})[f"{r.method}/{r.metric}"] = float(r.value)
    return out


def _score(m: int, seed: int, revision: str | None, n: int, **cfg: Any) -> dict[str, Any]:
    import mindscope as ms
    from mindscope import organisms
    from mindscope.analyses import run_stage

    path = organisms.resolve(_name(m), revision, seed=seed)
    h = ms.load_model(str(path))
    spec = organisms.info(_name(m), seed=seed)["data_spec"]
    out = run_stage("bayes", h, {"spec": spec, "n": n, **cfg}, seed=100 + seed)
    return _summary(out.rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", default="2,16,64,256,1024")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--misspec", default="16,1024")
    ap.add_argument("--flatten", action="store_true", help="only rewrite OUT from RAW")
    args = ap.parse_args()
    if args.flatten:
        flatten(json.loads(RAW.read_text()), "python docs/examples/bayes_sweep.py --workers 4")
        return
    import torch

    torch.set_num_threads(1)
    from mindscope import organisms
    from mindscope.bayes import transition_point

    ms_ = [int(v) for v in args.tasks.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    jobs = [(m, s) for s in seeds for m in ms_]
    with ProcessPoolExecutor(args.workers) as pool:
        seconds = {f"{m}/{s}": t for m, s, t in pool.map(_train, jobs)}
    final: dict[str, Any] = {}
    for m, s in jobs:
        final[f"{m}/{s}"] = _score(m, s, None, args.n)
    result: dict[str, Any] = {
        "config": json.loads(json.dumps(organisms.default_config(_name(ms_[0]), 0), default=vars)),
        "steps": organisms.default_config(_name(ms_[0]), 0).max_steps,
        "train_seconds": seconds,
        "final": final,
    }
    # the transition M*: where ridge_share crosses 0.5, per seed, on each task distribution
    for ds in ("gaussian", "pool"):
        stars = [
            transition_point(ms_, [final[f"{m}/{s}"][ds]["model/ridge_share"] for m in ms_])
            for s in seeds
        ]
        finite = [v for v in stars if math.isfinite(v)]
        logs = [math.log2(v) for v in finite]
        mean = sum(logs) / len(logs) if logs else math.nan
        sd = (
            (sum((v - mean) ** 2 for v in logs) / (len(logs) - 1)) ** 0.5
            if len(logs) > 1
            else math.nan
        )
        half = (
            4.303 * sd / math.sqrt(len(logs))
            if len(logs) == 3
            else (2.0 * sd / math.sqrt(len(logs)) if len(logs) > 1 else math.nan)
        )
        result[f"m_star_{ds}"] = {
            "per_seed": stars,
            "geo_mean": 2**mean if logs else math.nan,
            "ci95": [2 ** (mean - half), 2 ** (mean + half)] if logs else [math.nan, math.nan],
        }
    # across training (seed 0): early checkpoints may look like ridge and drift away
    revs = organisms.revisions(_name(ms_[0]))
    result["across_training"] = {
        str(m): {
            r: _score(m, 0, r, 500)["gaussian"]["model/ridge_share"] for r in revs if r != "step0"
        }
        for m in ms_
    }
    # misspecified tests
    tests: dict[str, dict[str, Any]] = {
        "realizable": {"tasks": ["pool", "gaussian"]},
        "shifted_tasks": {"tasks": ["scaled", "rotated", "cap"]},
        "noise_x2": {"tasks": ["pool"], "noise_std": 1.0},
        "student_t": {"tasks": ["pool"], "noise": "student_t", "df": 3.0},
        "long_context": {"tasks": ["pool", "gaussian"], "k": 32},
    }
    result["misspec"] = {
        str(m): {t: _score(m, 0, None, args.n, **c) for t, c in tests.items()}
        for m in [int(v) for v in args.misspec.split(",")]
    }
    RAW.write_text(json.dumps(result, indent=1, default=float) + "\n")
    flatten(json.loads(RAW.read_text()), " ".join(sys.argv))


def flatten(raw: dict[str, Any], command: str) -> None:
    """The quoted figures (means over seeds of the final checkpoints, M*, tests) -> OUT."""
    import runpy

    figures = Path(__file__).resolve().parents[2] / "benchmarks" / "_figures.py"
    record = runpy.run_path(str(figures))["record"]  # the benchmarks' figures-file writer

    figs: dict[str, Any] = {"steps": (raw["steps"], "steps")}
    secs = list(raw["train_seconds"].values())
    figs["train_seconds_max"] = (max(secs), "s")
    figs["train_seconds_median"] = (sorted(secs)[len(secs) // 2], "s")
    by_m: dict[str, list[dict[str, Any]]] = {}
    for key, val in raw["final"].items():
        by_m.setdefault(key.split("/")[0], []).append(val)
    for m, runs in by_m.items():
        for ds in ("pool", "gaussian"):
            for metric in (
                "model/ridge_share",
                "model/mse",
                "dmmse/mse",
                "ridge/mse",
                "dmmse/dist",
                "ridge/dist",
                "model/excess_mse",
            ):
                vals = [r[ds][metric] for r in runs]
                figs[f"m{m}_{ds}_{metric.replace('/', '_')}"] = (
                    sum(vals) / len(vals),
                    "mean of seeds",
                )
    for ds in ("gaussian", "pool"):
        st = raw[f"m_star_{ds}"]
        figs[f"m_star_{ds}"] = (st["geo_mean"], "tasks")
        figs[f"m_star_{ds}_lo"] = (st["ci95"][0], "tasks")
        figs[f"m_star_{ds}_hi"] = (st["ci95"][1], "tasks")
        figs[f"m_star_{ds}_seeds_found"] = (sum(1 for v in st["per_seed"] if v == v), "seeds")
    for m, curve in raw["across_training"].items():
        steps = sorted(curve, key=lambda r: int(r[4:]))
        figs[f"m{m}_share_first"] = (curve[steps[0]], steps[0])
        figs[f"m{m}_share_last"] = (curve[steps[-1]], steps[-1])
        figs[f"m{m}_share_min"] = (min(curve.values()), "over checkpoints")
    for m, tests in raw["misspec"].items():
        for test, conds in tests.items():
            for ds, vals in conds.items():
                for metric in (
                    "model/mse",
                    "dmmse/mse",
                    "ridge/mse",
                    "model/ridge_share",
                    "dmmse/toward_truth",
                    "ridge/toward_truth",
                ):
                    if metric in vals:
                        key = f"m{m}_{test}_{ds}_{metric.replace('/', '_')}"
                        figs[key] = (vals[metric], "k-averaged")
    record(
        "bayes_sweep",
        figs,
        reps=len({k.split("/")[1] for k in raw["final"]}),
        command=command,
        path=OUT,
        notes="icl-regression default config per M and seed; all numbers in "
        "docs/examples/bayes_sweep_raw.json",
    )


if __name__ == "__main__":
    main()
