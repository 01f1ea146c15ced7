"""Coverage of the rare-event intervals against exact enumeration on several input
distributions of ``organism:pocket-lm``; writes ``docs/figures/rare_coverage.json``.

    python docs/examples/rare_coverage.py [--repeats 20] [--budget 16384] [--dists uniform0,...]

Each distribution has 3 free positions over 64 tokens (262,144 inputs, enumerated exactly
once and cached): ``uniform0`` (token set ``random:64``, seed 0), ``uniform1`` (another token
set, seed 1), ``zipf0`` (the seed-0 token set with Zipf weights 1/rank), ``prefix0`` (the
seed-0 set after the fixed text ``"def"``), ``zipf1`` (the seed-1 set, Zipf weights) and
``zipfprefix0`` (zipf0 after ``"def"``). Targets: the tokens whose exact arg-max mass is
nearest 1e-4, 1e-5, 1e-6 and 1e-7 (a uniform 64^3 distribution cannot go below 3.8e-6). For
each target, ``--repeats`` CE estimates (seeded by repeat) with ``--restarts``; the figures are
the fraction within 2x, the 90% interval coverage, the flag rate and the coverage / within-2x
counting a flagged estimate as no miss. ``--restarts 1`` gives the single-proposal CE;
``--method ce+search`` CE whose restarts start from their own searches, with the known bad
inputs' neighbours (:data:`mindscope.audit.rare.validate.SEARCHED`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import mindscope as ms
from mindscope.audit.rare import exact_table
from mindscope.audit.rare.distributions import from_spec
from mindscope.audit.rare.validate import pick_targets, validate

sys.path.insert(0, str(Path(__file__).parent))
from _record import write_figures  # noqa: E402

DISTS: dict[str, dict[str, Any]] = {
    "uniform0": {"tokens": "random:64", "seed": 0},
    "uniform1": {"tokens": "random:64", "seed": 1},
    "zipf0": {"tokens": "random:64", "seed": 0, "weights": "zipf"},
    "prefix0": {"tokens": "random:64", "seed": 0, "prefix": "def"},
    "zipf1": {"tokens": "random:64", "seed": 1, "weights": "zipf"},
    "zipfprefix0": {"tokens": "random:64", "seed": 0, "weights": "zipf", "prefix": "def"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--budget", type=int, default=2**14)
    ap.add_argument("--restarts", type=int, default=4)
    ap.add_argument("--method", default="ce", choices=["ce", "ce+search"])
    ap.add_argument("--dists", default="uniform0,uniform1,zipf0,prefix0")
    ap.add_argument("--decades", default="1e-4,1e-5,1e-6,1e-7")
    ap.add_argument("--out", default="docs/figures/rare_coverage.json")
    args = ap.parse_args()
    h = ms.load_model("organism:pocket-lm")
    out_path = Path(args.out)
    out = json.loads(out_path.read_text()).get("details", {}) if out_path.is_file() else {}
    for name in args.dists.split(","):
        spec = DISTS[name]
        dist = from_spec(
            h,
            spec["tokens"],
            3,
            weights=spec.get("weights", "uniform"),
            seed=spec["seed"],
            prefix=spec.get("prefix", ""),
        )
        t0 = time.perf_counter()
        table = exact_table(h, dist, batch_size=16384)
        t_exact = time.perf_counter() - t0
        targets = pick_targets(table, [float(d) for d in args.decades.split(",")])
        print(name, dist.size, f"exact {t_exact:.0f}s", targets, flush=True)
        t0 = time.perf_counter()
        rows = validate(
            h,
            dist,
            targets,
            methods=(args.method,),
            budget=args.budget,
            repeats=args.repeats,
            dataset=name,
            progress=lambda line: print(" ", line, flush=True),
            restarts=args.restarts,
        )
        summ = [r for r in rows if r.split == "summary"]
        res: dict[str, dict[str, float]] = {}
        for r in summ:
            tok = json.loads(r.extra or "{}").get("token") if r.extra else r._extra["token"]
            res.setdefault(str(tok), {})[r.metric.removeprefix("rare_")] = r.value
        tag = "" if args.method == "ce" else "search-"
        key = f"{name}|{tag}restarts{args.restarts}|budget{args.budget}"
        before = (
            out.get(key, {}).get("targets", {})
            if out.get(key, {}).get("repeats") == args.repeats
            else {}
        )
        out[key] = {
            "n_inputs": dist.size,
            "exact_seconds": round(t_exact, 1),
            "estimate_seconds": round(time.perf_counter() - t0, 1),
            "repeats": args.repeats,
            "targets": {**before, **res},  # a run on other decades adds its targets
        }
        write_figures(out_path, headline(out), out, reps=args.repeats)


def headline(out: dict) -> dict[str, tuple[float, str, str]]:  # type: ignore[type-arg]
    """Per distribution (restarts, budget) and target decade: within 2x, coverage, flag rate,
    coverage or flagged."""
    figs: dict[str, tuple[float, str, str]] = {}
    for key, d in out.items():
        name, restarts, _ = key.split("|")
        restarts = restarts.replace("search-", "search_")
        for tok, t in d["targets"].items():
            decade = f"{t['truth']:.0e}".replace("-0", "m").replace("e", "e").replace("-", "m")
            base = f"{name}_{restarts}_{decade}"
            what = f"{name}, {restarts}, token {tok} (exact {t['truth']:.3g})"
            for metric in ("within_2x", "coverage", "flag_rate", "coverage_or_flagged"):
                figs[f"{base}_{metric}"] = (t[metric], "share", f"{metric}: {what}")
    return figs


if __name__ == "__main__":
    main()
