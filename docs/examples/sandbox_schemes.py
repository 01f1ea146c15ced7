"""Regenerate docs/figures/sandbox_schemes.json: each alignment scheme against its baseline.

    python docs/examples/sandbox_schemes.py [--seeds 10] [--schemes mona current_rf ...]
                                            [--backend ray] [--overwrite]

For each scheme of ``mindscope.sandbox.schemes.SCHEMES``: the scheme, its baseline and its
variants trained on the scheme's world over the seeds (tamper rate and true return with 95% CIs
over seeds, the effect with a bootstrap CI and a permutation p-value). Schemes already in the
file are kept unless ``--overwrite`` (the run is resumable: the file is rewritten after each).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from mindscope.io import atomic_write_json
from mindscope.sandbox.schemes import SCHEMES, compare_scheme

OUT = Path(__file__).resolve().parents[1] / "figures" / "sandbox_schemes.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--schemes", nargs="*", default=list(SCHEMES))
    ap.add_argument("--episodes", type=int, default=200)
    ap.add_argument("--backend", default="inprocess")
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()
    data = json.loads(OUT.read_text()) if OUT.is_file() else {}
    data.setdefault("schemes", {})
    for name in args.schemes:
        if name in data["schemes"] and not args.overwrite:
            print(f"{name}: kept (pass --overwrite to re-run)")
            continue
        t0 = time.perf_counter()
        res = compare_scheme(
            name, seeds=range(args.seeds), eval_episodes=args.episodes, backend=args.backend
        )
        summary = dict(res.summary, wall_seconds=time.perf_counter() - t0)
        data["schemes"][name] = summary
        data["conditions"] = {
            "command": "python docs/examples/sandbox_schemes.py",
            "load_average_1min": os.getloadavg()[0],
            "idle": False,
            "note": "2-core machine shared with other jobs",
        }
        atomic_write_json(OUT, data)
        eff = summary["effect"]["tamper_rate"]
        print(f"{name}: tamper effect {eff['difference']:.3f} p={eff['p_value']:.4f}", flush=True)


if __name__ == "__main__":
    main()
