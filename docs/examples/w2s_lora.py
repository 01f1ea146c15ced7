"""LoRA students against fine-tuning the blocks' weights, on the quirky-arith grid's supervisors.

    .venv/bin/python docs/examples/w2s_lora.py --out runs/w2s-grid  # -> docs/figures/w2s_lora.json

The ``ce`` student of docs/w2s.md (60 steps, the last two blocks of ``organism:quirky-arith``
trained) on the weak organism's, the persona's and 25%-random labels, five seeds, three ways:
the blocks' weights (``full``), LoRA adapters of rank 8 on their linear layers at the same
learning rate (3e-4, ``lora``) and at 1e-3 (``lora-lr``). The weak organism is the one
``w2s_grid.py`` trains (kept in ``--out``). Paired sign-flip tests over (supervisor, seed).
Needs the ``lora`` and ``ray`` extras.
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

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "figures" / "w2s_lora.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="runs/w2s-grid")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    import torch

    import mindscope as ms
    from mindscope.analyses.w2s import W2SConfig, _load, make_supervisor
    from mindscope.w2s import paired_comparison, run_w2s

    sys.path.insert(0, str(HERE))
    from w2s_grid import weak_organism

    torch.set_num_threads(1)
    weak = weak_organism(Path(args.out) / "weak-organism")
    h = ms.load_model("organism:quirky-arith")
    cfg = W2SConfig.model_validate(
        {
            "supervisors": [
                {"kind": "weak-model", "model": str(weak), "name": "weak-organism"},
                {"kind": "field", "name": "persona"},
                {"kind": "random", "accuracy": 0.75},
            ]
        }
    )
    ds = _load(cfg, 0)
    sups = {s.label: make_supervisor(s) for s in cfg.supervisors}
    variants: dict[str, dict[str, Any]] = {
        "full": {"steps": 60},
        "lora": {"steps": 60, "lora_rank": 8},
        "lora-lr": {"steps": 60, "lora_rank": 8, "lr": 1e-3},
    }
    results = {}
    seconds = {}
    for name, student in variants.items():
        t = time.time()
        results[name] = run_w2s(
            h,
            ds.train,
            ds.test,
            sups,
            methods=["ce"],
            seeds=args.seeds,
            student=student,
            backend="ray" if args.workers > 1 else "inprocess",
            workers=args.workers,
        )
        seconds[name] = time.time() - t
        print(f"{name}: {seconds[name]:.0f} s", file=sys.stderr)
    figs: dict[str, dict[str, Any]] = {}

    def put(key: str, value: float, unit: str, what: str) -> None:
        if math.isfinite(value):
            figs[key] = {"value": float(value), "unit": unit, "what": what}

    short = {"weak-organism": "weak", "persona": "persona", "random-0.75": "random"}
    for name, res in results.items():
        key = name.replace("-", "_")
        for (sup, _, metric), p in res.pgr.items():
            if metric == "auroc":
                put(f"pgr_{short[sup]}_{key}", p.value, "PGR", f"PGR on AUROC, {sup}, {name}")
                put(f"student_{short[sup]}_{key}", p.student, "AUROC", f"student, {sup}, {name}")
                put(f"ceiling_{short[sup]}_{key}", p.ceiling, "AUROC", f"ceiling, {name}")
    tests = {}
    from mindscope.w2s.experiment import W2SResult

    for name in ("lora", "lora-lr"):
        # the same (supervisor, seed) keys: relabel the methods to pair them
        merged = W2SResult(
            [
                *[_renamed(r, "full") for r in results["full"].rows],
                *[_renamed(r, name) for r in results[name].rows],
            ],
            results["full"].predictions.iloc[:0],
        )
        c = paired_comparison(merged, name, "full")
        tests[f"{name}_vs_full"] = c
        key = name.replace("-", "_")
        put(f"diff_{key}_vs_full", c["mean_diff"], "AUROC", f"{name} - full, paired")
        put(f"p_{key}_vs_full", c["p_value"], "p", c["test"])
        put(f"wins_{key}_vs_full", c["wins"], "pairs", f"of {c['pairs']}")
    for name, s in seconds.items():
        put(f"seconds_{name.replace('-', '_')}", s, "s", "wall time, shared machine")
    doc = {
        "name": "w2s_lora",
        "source": "docs/examples/w2s_lora.py",
        "date": datetime.date.today().isoformat(),
        "command": f".venv/bin/python docs/examples/w2s_lora.py --out {args.out}",
        "reps": args.seeds,
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "idle": os.getloadavg()[1] <= (os.cpu_count() or 1),
        },
        "notes": "seeded; strong organism:quirky-arith, ce students, 60 steps",
        "tests": tests,
        "figures": figs,
    }
    OUT.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    print(f"wrote {OUT}")
    return 0


def _renamed(row: Any, method: str) -> Any:
    import dataclasses

    return dataclasses.replace(row, method=method)


if __name__ == "__main__":
    sys.exit(main())
