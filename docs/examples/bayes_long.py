"""Regenerate docs/figures/bayes_long.json: icl-regression trained longer than the default.

Reads the per-checkpoint metrics that training records (error of the model, of dMMSE and of
ridge on 512 held-out contexts of pool tasks, and the model's distance to each) from folders
written by ``mindscope organism train icl-regression --tasks M --max-steps S --out DIR``.

    mindscope organism train icl-regression --tasks 16 --max-steps 4000 --threads 1 --out r16
    mindscope organism train icl-regression --tasks 1024 --max-steps 4000 --threads 1 --out r1024
    python docs/examples/bayes_long.py --run 16=r16 --run 1024=r1024
"""

from __future__ import annotations

import argparse
import json
import runpy
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "figures" / "bayes_long.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", action="append", required=True, help="M=FOLDER, repeatable")
    args = ap.parse_args()
    figs: dict[str, Any] = {}
    seconds = []
    for item in args.run:
        m, _, folder = item.partition("=")
        manifest = json.loads((Path(folder) / "manifest.json").read_text())
        seconds.append(float(manifest["train_seconds"]))
        revs = sorted(manifest["revisions"].values(), key=lambda r: r["step"])
        for r in revs:
            met = r["metrics"]
            share = met["dist_dmmse"] / (met["dist_dmmse"] + met["dist_ridge"])
            if r["step"] >= 500:
                figs[f"m{m}_share_step{r['step']}"] = (share, "share")
                figs[f"m{m}_mse_step{r['step']}"] = (met["mse"], "mse")
        last = revs[-1]["metrics"]
        figs[f"m{m}_steps"] = (revs[-1]["step"], "steps")
        figs[f"m{m}_mse_dmmse"] = (last["mse_dmmse"], "mse")
        figs[f"m{m}_mse_ridge"] = (last["mse_ridge"], "mse")
        best = min(last["mse_dmmse"], last["mse_ridge"])
        figs[f"m{m}_excess_final"] = (last["mse"] - best, "mse")
    figs["train_seconds_max"] = (max(seconds), "s")
    figures = Path(__file__).resolve().parents[2] / "benchmarks" / "_figures.py"
    record = runpy.run_path(str(figures))["record"]  # the benchmarks' figures-file writer
    record(
        "bayes_long",
        figs,
        reps=1,
        command="python docs/examples/bayes_long.py "
        + " ".join(f"--run {i.partition('=')[0]}=DIR" for i in args.run),
        path=OUT,
        notes="seed 0, one thread each, trained side by side on a loaded machine; metrics on 512 "
        "held-out contexts of pool tasks recorded by training at each checkpoint",
    )
    for k, (v, unit) in figs.items():
        print(f"{k:>28}: {v:.4g} {unit}")


if __name__ == "__main__":
    main()
