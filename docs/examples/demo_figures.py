"""The figures README.md quotes from `make demo`, read from a finished demo run's results table.

    .venv/bin/python docs/examples/demo_figures.py runs/<run>-demo      # -> docs/figures/demo.json

The demo is seeded (seed 0), so its figures do not depend on the machine; rerun this script on a
fresh demo run whenever the demo changes, and `tests/test_docs_figures.py` checks that the README
still quotes what the file holds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "figures" / "demo.json"


def _one(df: pd.DataFrame, what: str, **where: object) -> float:
    """The value of the single row matching ``where`` (the largest ``n`` if several)."""
    sel = df
    for col, val in where.items():
        sel = sel[sel[col] == val]
    if sel.empty:
        raise SystemExit(f"demo_figures: no row for {what} ({where}); is this a demo run?")
    return float(sel.sort_values("n").iloc[-1]["value"])


def figures(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """The demo's headline figures from its results table ``df`` (one row per figure)."""
    out: dict[str, dict[str, object]] = {}

    def put(key: str, unit: str, what: str, **where: object) -> None:
        out[key] = {"value": _one(df, what, **where), "unit": unit, "what": what}

    for layer in (0, 5):
        for method in ("logit_lens", "tuned_lens"):
            put(
                f"kl_{method}_l{layer}",
                "nats",
                f"held-out KL of the {method.replace('_', ' ')} at layer {layer}, pocket-lm",
                method=method,
                metric="kl",
                split="heldout",
                layer=layer,
            )
    put(
        "auroc_test_lr_l5",
        "AUROC",
        "lr, test split (both personas), layer 5",
        method="lr",
        metric="auroc",
        split="test",
        layer=5,
    )
    put(
        "auroc_lies_lr_l5",
        "AUROC",
        "lr, test examples where the persona lies, layer 5",
        method="lr",
        metric="auroc_disagree",
        split="test",
        layer=5,
    )
    for method in ("lr", "diffmean", "random"):
        put(
            f"bobhard_{method}_l5",
            "AUROC",
            f"{method} fitted on Alice-easy, Bob-hard against the truth, layer 5",
            method=method,
            metric="auroc",
            train="alice-easy",
            eval="bob-hard",
            layer=5,
        )
    put(
        "bobhard_lm_truth",
        "AUROC",
        "the model's own answers on Bob-hard against the truth",
        method="lm",
        metric="auroc",
        split="bob-hard",
    )
    put(
        "bobhard_lm_bob",
        "AUROC",
        "the model's own answers on Bob-hard against Bob's labels",
        method="lm",
        metric="auroc_bob",
        split="bob-hard",
    )
    for method in ("lr", "diffmean", "random"):
        sel = df[(df.metric == "auroc_selected") & (df.method == method) & (df.split == "bob-hard")]
        if sel.empty:
            raise SystemExit(f"demo_figures: no auroc_selected row of {method}; rerun the demo")
        layer = int(sel.iloc[0]["layer"])
        out[f"selected_layer_{method}"] = {
            "value": float(layer),
            "unit": "layer",
            "what": f"{method}: the layer chosen on validation data for the Bob-hard headline",
        }
        for metric, key, unit, what in (
            ("auroc_selected", "bobhard_sel", "AUROC", "Bob-hard test vs truth, fitted on "
             "Alice-easy, at the layer chosen on validation"),
            ("auroc_null_p95", "null_p95", "AUROC", "95th percentile of 200 random directions "
             "at that layer (Bob-hard test vs truth)"),
            ("null_pvalue", "null_p", "p-value", "one-sided p-value against those 200 random "
             "directions"),
            ("gap_recovered_selected", "gap_sel", "fraction", "fraction of the gap recovered "
             "at that layer (Bob-hard test)"),
        ):  # fmt: skip
            put(f"{key}_{method}", unit, f"{method}: {what}", method=method, metric=metric,
                split="bob-hard")  # fmt: skip
    for method in ("lr", "diffmean"):  # the test-split headline (layer chosen on 20% held out)
        sel = df[(df.metric == "auroc_selected") & (df.method == method) & (df.split == "test")]
        if sel.empty:
            raise SystemExit(f"demo_figures: no test-split auroc_selected row of {method}")
        out[f"test_layer_{method}"] = {
            "value": float(sel.iloc[0]["layer"]),
            "unit": "layer",
            "what": f"{method}: the layer chosen on held-out training pairs for the test line",
        }
        for metric, key, unit, what in (
            ("auroc_selected", "test_sel", "AUROC", "test split vs truth at that layer"),
            ("auroc_null_p95", "test_null_p95", "AUROC", "95th percentile of 200 random "
             "directions at that layer (test split)"),
            ("null_pvalue", "test_null_p", "p-value", "p-value against them (test split)"),
        ):  # fmt: skip
            put(f"{key}_{method}", unit, f"{method}: {what}", method=method, metric=metric,
                split="test")  # fmt: skip
    gap = df[(df.metric == "gap_recovered_selected") & (df.method == "lr")]
    if not gap.empty:
        extra = json.loads(gap.iloc[0]["extra"])
        out["gap_chance"] = {
            "value": float(extra["chance"]),
            "unit": "fraction",
            "what": "fraction of the gap a constant probe (AUROC 0.5) recovers, Bob-hard test",
        }
        out["bobhard_lm_test"] = {
            "value": float(extra["lm_auroc_bob"]),
            "unit": "AUROC",
            "what": "the model's own answers, Bob-hard test split (the examples of auroc_selected)",
        }
        out["bobhard_n_test"] = {
            "value": float(gap.iloc[0]["n"]),
            "unit": "examples",
            "what": "Bob-hard test examples the selected-layer figures are scored on",
        }
    put(
        "gap_recovered_lr",
        "fraction",
        "lr's fraction of the gap recovered, oracle best layer",
        method="lr",
        metric="gap_recovered_best",
        split="bob-hard",
    )
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="a finished demo run folder (holds results.parquet)")
    ap.add_argument("--out", type=Path, default=OUT, help=f"default {OUT}")
    args = ap.parse_args(argv)
    table = args.run / "results.parquet"
    if not table.is_file():
        raise SystemExit(f"demo_figures: no results.parquet in {args.run}")
    data = {
        "name": "demo",
        "source": f"results.parquet of a `mindscope demo` run ({args.run.name})",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "command": "make demo && .venv/bin/python docs/examples/demo_figures.py runs/<run>",
        "reps": 1,
        "machine": {"note": "seeded: the figures do not depend on the machine"},
        "notes": "",
        "figures": figures(pd.read_parquet(table)),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(f"{len(data['figures'])} figures written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
