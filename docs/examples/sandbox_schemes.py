"""Regenerate docs/figures/sandbox_schemes.json: each alignment scheme against its baseline.

    python docs/examples/sandbox_schemes.py [--seeds 10] [--schemes mona current_rf ...]
                                            [--backend ray] [--overwrite]
    python docs/examples/sandbox_schemes.py --schemes current_rf --world rocks_diamonds \
                                            --label current_rf_original_layout

For each scheme of ``mindscope.sandbox.schemes.SCHEMES``: the scheme, its baseline and its
variants trained on the scheme's world over the seeds (tamper rate and true return with 95% CIs
over seeds, the effect with a bootstrap CI and a permutation p-value). Schemes already in the
file are kept unless ``--overwrite`` (the run is resumable: the file is rewritten after each).
The file follows the figures format of ``benchmarks/_figures.py`` (flat ``figures`` that the
docs quote, the full comparison under ``details``). ``--world`` runs the schemes on another
world than their own, stored under ``--label`` (default: the scheme's name).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from pathlib import Path
from typing import Any

from mindscope.io import atomic_write_json
from mindscope.sandbox.schemes import SCHEMES, compare_scheme

OUT = Path(__file__).resolve().parents[1] / "figures" / "sandbox_schemes.json"


def figures(schemes: dict[str, Any]) -> dict[str, Any]:
    """Flat ``{key: {value, unit, what}}`` of every arm's means and CIs and every effect."""
    out: dict[str, Any] = {}
    for name, s in schemes.items():
        for arm, m in s["arms"].items():
            label = arm.split(":")[0]
            for metric in ("tamper_rate", "true_return", "observed_return"):
                for part in ("mean", "ci_low", "ci_high"):
                    out[f"{name}__{label}__{metric}__{part}"] = {
                        "value": m[metric][part],
                        "unit": "share of episodes" if metric == "tamper_rate" else "return",
                        "what": f"{arm} on {s['world']}, {metric} {part} over "
                        f"{len(s['seeds'])} seeds",
                    }
            out[f"{name}__{label}__seconds_per_seed"] = {
                "value": m["wall_seconds_per_seed"],
                "unit": "s",
                "what": f"{arm}: training wall time per seed",
            }
        for metric, e in s["effect"].items():
            for part in ("difference", "ci_low", "ci_high", "p_value"):
                out[f"{name}__effect__{metric}__{part}"] = {
                    "value": e[part],
                    "unit": "p" if part == "p_value" else "baseline - scheme",
                    "what": f"{name}: {metric} of the baseline minus the scheme's, {part}",
                }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--backend", default="inprocess")
    ap.add_argument("--overwrite", action="store_true")
    ap.add_argument("--world", default=None, help="default: each scheme's own world")
    ap.add_argument("--label", default=None, help="store under this name (one scheme only)")
    args = ap.parse_args()
    if args.label and len(args.schemes) != 1:
        ap.error("--label needs exactly one scheme")
    old = json.loads(OUT.read_text()) if OUT.is_file() else {}
    schemes: dict[str, Any] = dict(old.get("details", old).get("schemes", {}))
    for scheme_name in args.schemes:
        name = args.label or scheme_name
        if name in schemes and not args.overwrite:
            print(f"{name}: kept (pass --overwrite to re-run)")
            continue
        t0 = time.perf_counter()
        res = compare_scheme(
            scheme_name,
            args.world,
            seeds=range(args.seeds),
            eval_episodes=args.episodes,
            backend=args.backend,
        )
        schemes[name] = dict(res.summary, wall_seconds=time.perf_counter() - t0)
        eff = schemes[name]["effect"]["tamper_rate"]
        print(f"{name}: tamper effect {eff['difference']:.3f} p={eff['p_value']:.4f}", flush=True)
        write(schemes, args.seeds)
    write(schemes, args.seeds)


def write(schemes: dict[str, Any], seeds: int) -> None:
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    atomic_write_json(
        OUT,
        {
            "name": OUT.stem,
            "source": "run",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "command": "python docs/examples/sandbox_schemes.py",
            "reps": seeds,
            "machine": {"cpus": os.cpu_count() or 1, "load_average": load, "idle": False},
            "notes": "2-core machine shared with other jobs; reps = seeds per arm",
            "figures": figures(schemes),
            "details": {"schemes": schemes},
        },
    )


if __name__ == "__main__":
    main()
