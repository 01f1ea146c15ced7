"""The weak-to-strong figures of docs/w2s.md: the supervisor x method x seed grid on quirky-arith.

    .venv/bin/python docs/examples/w2s_grid.py --out runs/w2s-grid    # -> docs/figures/w2s.json

Trains the weak organism (a 2-layer, 32-wide quirky-arith trained on the truth only, ~1 min),
then runs the ``w2s`` stage with its defaults (but ``--steps``, 60: early stopping on the weak
labels picks the step) on the shipped ``organism:quirky-arith`` (the
strong model) with five supervisors (the weak organism's reporter, the quirky persona's labels,
and the truth with 25% / 20% / 25% errors placed at random, on the hard slice, or along the
persona) x four student methods (ce, logconf, reporter, relabel) x five seeds (parts ``kinds``
and ``rules``), then, when run, ``filter`` (3 seeds) and an oracle-mixing run (``oracle-100``:
100 true labels mixed in, 3 seeds). Each part's results table is kept in ``--out`` and reused
when present; ``--part NAME`` runs one part (parts can run in parallel processes);
``--workers 2`` trains each part's students on two Ray workers (the same results).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "figures" / "w2s.json"


def weak_organism(folder: Path) -> Path:
    """Train (once) the weak supervisor's organism: quirky-arith at 2 layers x 32, on the truth
    (Alice statements) only."""
    from mindscope import organisms
    from mindscope.organisms.neox import ModelShape
    from mindscope.organisms.quirky import QuirkyConfig

    final = folder / "step1200"
    if final.is_dir():
        return final
    shape = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=128, max_len=32, rotary_pct=1.0)
    cfg = QuirkyConfig(
        seed=0,
        max_steps=1200,
        truthful_steps=1200,
        pool_size=8192,
        eval_per_cell=64,
        shape=shape,
        threads=1,
        batch_size=64,
    )
    organisms.train("quirky-arith", cfg, out=folder, progress=False)
    return final


def stage(h: Any, cfg: dict[str, Any], path: Path, store: str) -> pd.DataFrame:
    from mindscope.analyses import run_stage
    from mindscope.results import read_table, stamp, write_table

    if path.is_file():
        return read_table(path)
    t = time.time()
    res = run_stage("w2s", h, cfg, seed=0, progress=True, store=store)
    df = stamp(res.rows, h)
    write_table(df, path)
    took = time.time() - t
    path.with_suffix(".time").write_text(f"{took:.1f}\n")
    print(f"{path.name}: {took:.0f} s", file=sys.stderr)
    return df


def frame(df: pd.DataFrame) -> pd.DataFrame:
    from mindscope.results import extras

    ex = pd.DataFrame(list(extras(df)), index=df.index)
    return pd.concat([df.drop(columns=["extra"]), ex], axis=1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/w2s-grid")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=60, help="fine-tuning steps of every student")
    ap.add_argument("--part", default=None, help="run only this part (kinds, rules, filter, ...)")
    ap.add_argument("--workers", type=int, default=1, help="Ray workers (1: in this process)")
    args = ap.parse_args()
    import torch

    import mindscope as ms
    from mindscope.w2s import paired_comparison
    from mindscope.w2s.experiment import W2SResult

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    store = str(out / "store")
    weak = weak_organism(out / "weak-organism")
    h = ms.load_model("organism:quirky-arith")
    sups = [
        {"kind": "weak-model", "model": str(weak), "name": "weak-organism"},
        {"kind": "field", "name": "persona"},
        {"kind": "random", "accuracy": 0.75},
        {"kind": "slice", "accuracy": 0.8, "where": "meta.difficulty=hard"},
        {"kind": "spurious", "accuracy": 0.75, "where": "meta.persona=bob"},
    ]
    methods = ["ce", "logconf", "reporter", "relabel"]
    short: dict[str, Any] = {"steps": args.steps}  # the stage's defaults otherwise
    if args.workers > 1:  # the same results, students on Ray workers
        short.update(backend="ray", workers=args.workers)
    parts = {
        # the three supervisor kinds (weak model, persona, rule) x 4 methods x 5 seeds
        "kinds": {**short, "supervisors": sups[:3], "methods": methods, "seeds": args.seeds},
        "rules": {**short, "supervisors": sups[3:], "methods": methods, "seeds": args.seeds},
        "filter": {**short, "supervisors": sups, "methods": ["filter"], "seeds": 3},
        "oracle-100": {
            **short,
            "supervisors": sups[:2],
            "methods": ["ce"],
            "seeds": 3,
            "oracle_k": 100,
        },
    }
    todo = [args.part] if args.part else list(parts)
    frames = {}
    for name in todo:
        path = out / f"{name}.parquet"
        if args.part or path.is_file() or name in ("kinds", "rules"):
            frames[name] = frame(stage(h, parts[name], path, store))
    if args.part:
        return 0
    grid = pd.concat([frames[k] for k in ("kinds", "rules", "filter") if k in frames])
    oracle = {100: frames["oracle-100"]} if "oracle-100" in frames else {}

    figs: dict[str, dict[str, Any]] = {}

    refused: dict[str, str] = {}

    def put(key: str, value: float, unit: str, what: str) -> None:
        if math.isfinite(value):  # a refused PGR is listed under "refused", not quoted
            figs[key] = {"value": float(value), "unit": unit, "what": what}

    agg = grid[(grid.seed == "all") & (grid.split == "test")]
    names = {
        "weak-organism": "weak",
        "persona": "persona",
        "random-0.75": "random",
        "slice-0.8": "slice",
        "spurious-0.75": "spurious",
    }
    for (sup, method), g in agg.groupby(["supervisor", "method"]):
        v = g.set_index("metric")
        s = names[sup]
        put(
            f"pgr_{s}_{method}",
            v.loc["pgr_auroc", "value"],
            "PGR",
            f"PGR on test AUROC, {sup} supervisor, {method} student (5 seeds)",
        )
        put(f"pgr_{s}_{method}_lo", v.loc["pgr_auroc", "ci_low"], "PGR", "95% CI low")
        put(f"pgr_{s}_{method}_hi", v.loc["pgr_auroc", "ci_high"], "PGR", "95% CI high")
        for m in (
            "auroc_weak",
            "auroc_student",
            "auroc_ceiling",
            "acc_weak_right",
            "acc_weak_wrong",
            "misfit",
            "gain",
            "misfit_gain_holds",
        ):
            unit = "squared loss" if m in ("misfit", "gain") else "share"
            unit = "AUROC" if m.startswith("auroc") else unit
            put(f"{m}_{s}_{method}", v.loc[m, "value"], unit, f"{m}, {sup} / {method}")
        why = v.loc["pgr_auroc"].get("refused") if "refused" in v.columns else None
        if isinstance(why, str) and why:
            refused[f"{s}_{method}"] = why
    # paired tests over (supervisor, seed) on the student's test AUROC
    rows = [r for r in grid.itertuples()]
    from mindscope.results import Row

    res = W2SResult(
        [
            Row(
                metric=r.metric,
                value=r.value,
                method=r.method,
                split=r.split,
                _extra={"supervisor": r.supervisor, "seed": r.seed},
            )
            for r in rows
        ],
        pd.DataFrame(),
    )
    tests = {}
    present = set(grid.method)
    for a, b in (("logconf", "ce"), ("reporter", "ce"), ("relabel", "ce"), ("filter", "ce")):
        if a not in present:
            continue
        c = paired_comparison(res, a, b)
        tests[f"{a}_vs_{b}"] = c
        put(f"diff_{a}_vs_{b}", c["mean_diff"], "AUROC", f"{a} - {b}, test AUROC, paired")
        put(f"p_{a}_vs_{b}", c["p_value"], "p", c["test"])
        put(f"wins_{a}_vs_{b}", c["wins"], "pairs", f"pairs where {a} > {b} of {c['pairs']}")
    per_seed = grid[(grid.seed != "all") & (grid.split == "test")]
    misfit = per_seed[per_seed.metric == "misfit_slack"]
    put(
        "misfit_holds_share",
        float((misfit.value >= 0).mean()),
        "share",
        "share of (supervisor, method, seed) with gain >= misfit (test split)",
    )
    put("misfit_holds_n", float(len(misfit)), "runs", "runs checked")
    for k, df in oracle.items():
        a = df[(df.seed == "all") & (df.split == "test") & (df.metric == "auroc_student")]
        for r in a.itertuples():
            put(
                f"oracle{k}_{names[r.supervisor]}_auroc",
                r.value,
                "AUROC",
                f"ce student with {k} oracle labels, {r.supervisor}",
            )
    for p in sorted(out.glob("*.time")):
        put(
            f"seconds_{p.stem.replace('-', '_')}",
            float(p.read_text()),
            "s",
            f"wall time of part {p.stem}, one thread, shared machine",
        )
    doc = {
        "name": "w2s",
        "source": "docs/examples/w2s_grid.py",
        "date": datetime.date.today().isoformat(),
        "command": f".venv/bin/python docs/examples/w2s_grid.py --out {args.out}",
        "reps": args.seeds,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "idle": False,
        },
        "notes": "seeded; the strong model is the shipped organism:quirky-arith; seconds per "
        "part: "
        + ", ".join(f"{p.stem} {p.read_text().strip()}" for p in sorted(out.glob("*.time"))),
        "tests": tests,
        "refused": refused,
        "figures": figs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
