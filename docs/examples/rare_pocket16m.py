"""Rare-event estimates on the 16.7M-input setting without re-enumerating it; writes
``docs/figures/rare_pocket16m.json``.

    python docs/examples/rare_pocket16m.py [--repeats 20] [--methods ce,ce+search]

organism:pocket-lm, 4 free positions uniform over the 64 token ids of ``random:64`` (seed 0):
64^4 = 16,777,216 inputs of mass 2^-24 each, so a target's exact probability is its number of
bad inputs times 2^-24. The counts come from the exact enumeration of this distribution
(``mindscope audit rare exact --model organism:pocket-lm --tokens random:64 --positions 4``,
docs/audit_rare.md): ``'N'`` (46) 161 inputs, ``' wait'`` (1634) 17, ``'re'`` (263) 2. For each
target and method, ``--repeats`` estimates at 2^14 model calls (seeded by repeat) through
:func:`mindscope.audit.rare.validate.validate`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import mindscope as ms
from mindscope.audit.rare.distributions import from_spec
from mindscope.audit.rare.validate import validate

sys.path.insert(0, str(Path(__file__).parent))
from _record import write_figures  # noqa: E402

COUNTS = {46: 161, 1634: 17, 263: 2}
"""Bad inputs per target token (exact enumeration of the 16.7M inputs)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--budget", type=int, default=2**14)
    ap.add_argument("--methods", default="ce,ce+search")
    ap.add_argument("--tokens", default="1634,46,263", help="targets (of COUNTS)")
    ap.add_argument("--out", default="docs/figures/rare_pocket16m.json")
    args = ap.parse_args()
    h = ms.load_model("organism:pocket-lm")
    dist = from_spec(h, "random:64", 4, weights="uniform", seed=0, prefix="")
    assert dist.size == 64**4
    targets = [(int(t), COUNTS[int(t)] / 2**24) for t in args.tokens.split(",")]
    out_path = Path(args.out)
    out = json.loads(out_path.read_text()).get("details", {}) if out_path.is_file() else {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        rows = validate(
            h,
            dist,
            targets,
            methods=(method,),
            budget=args.budget,
            repeats=args.repeats,
            dataset="pocket16m",
            progress=lambda line: print(" ", line, flush=True),
        )
        res: dict[str, dict[str, float]] = {}
        for r in rows:
            if r.split == "summary":
                tok = json.loads(r.extra or "{}").get("token") if r.extra else r._extra["token"]
                res.setdefault(str(tok), {})[r.metric.removeprefix("rare_")] = r.value
        key = f"{method}|budget{args.budget}"
        before = out.get(key, {}).get("targets", {})
        out[key] = {
            "repeats": args.repeats,
            "seconds": round(time.perf_counter() - t0, 1),
            "targets": {**before, **res},
        }
        write_figures(out_path, headline(out), out, reps=args.repeats)


def headline(out: dict) -> dict[str, tuple[float, str, str]]:  # type: ignore[type-arg]
    """Per method and target: within 2x, coverage, flag rate, coverage or flagged."""
    figs: dict[str, tuple[float, str, str]] = {}
    for key, d in out.items():
        method = key.split("|")[0].replace("+", "_")
        for tok, t in d["targets"].items():
            what = f"{method}, token {tok} (exact {t['truth']:.3g}), 16.7M inputs"
            for metric in ("within_2x", "coverage", "flag_rate", "coverage_or_flagged"):
                figs[f"{method}_{tok}_{metric}"] = (t[metric], "share", f"{metric}: {what}")
    return figs


if __name__ == "__main__":
    main()
