"""Precision of disagreement search on ``organism:quirky-arith``; writes
``docs/figures/disagree_precision.json``.

    python docs/examples/disagree_precision.py [--seeds 0,1,2,3,4] [--modes gate,rank]

For each seed and combination mode, :func:`mindscope.audit.disagree.quirky_disagreement_rows`
(1,600 Alice-easy fit pairs, a held-out pool drawn from 1,600 pairs of every persona and
difficulty, each prompt once; truth: a Bob statement whose Bob label is false, base rate about
0.22): precision at 50 and 200 and average precision per layer for the logistic (``lr``) and LDA
(``lda``) reporters, the random direction (``random``), the Mahalanobis detector alone, each
reporter combined with it (``+mahalanobis``) and the reporter-free null
(``constant+mahalanobis``: the model's own answer with the same combination). Headline figures
per method: the layer with the best *mean* precision@200 over the seeds (an oracle choice of
layer, the same for every seed), its mean and minimum over seeds; the precision-recall curve of
the best combined reporter on seed 0.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import mindscope as ms
from mindscope.audit.disagree import quirky_disagreement_rows

sys.path.insert(0, str(Path(__file__).parent))
from _record import write_figures  # noqa: E402

METRICS = ("precision@50", "precision@200", "average_precision")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--modes", default="gate,rank")
    ap.add_argument("--out", default="docs/figures/disagree_precision.json")
    args = ap.parse_args()
    h = ms.load_model("organism:quirky-arith")
    seeds = [int(s) for s in args.seeds.split(",")]
    out: dict[str, dict[str, object]] = {}
    for mode in args.modes.split(","):
        for seed in seeds:
            rows = quirky_disagreement_rows(
                h, n_fit=1600, n_pool=1600, seed=seed, top=0, combine=mode
            )
            table: dict[str, dict[str, float]] = {}
            curves: dict[str, list[list[float]]] = {}
            for r in rows:
                key = f"{r.method}|{r.layer}"
                if r.metric in ("audit_precision@50", "audit_precision@200"):
                    table.setdefault(key, {})[r.metric.removeprefix("audit_")] = r.value
                elif r.metric == "audit_average_precision":
                    table.setdefault(key, {})["average_precision"] = r.value
                    table[key]["base_rate"] = json.loads(r.extra)["base_rate"]
                elif r.metric == "audit_pr_precision":
                    e = json.loads(r.extra)
                    curves.setdefault(key, []).append([e["k"], e["recall"], r.value])
            out.setdefault(mode, {})[f"seed{seed}"] = {"table": table, "curves": curves}
            print(mode, seed, flush=True)
    figs, details = summarise(out)
    write_figures(args.out, figs, details, reps=len(seeds))


def summarise(out: dict) -> tuple[dict[str, tuple[float, str, str]], dict]:  # type: ignore[type-arg]
    """Per mode and method: the layer with the best mean precision@200 over seeds, the mean
    and minimum over seeds of each metric there."""
    figs: dict[str, tuple[float, str, str]] = {}
    details: dict[str, object] = {"per_seed": {}, "summary": {}}
    for mode, by_seed in out.items():
        seeds = sorted(by_seed)
        keys = sorted(set.intersection(*(set(by_seed[s]["table"]) for s in seeds)))
        means = {
            k: {m: statistics.mean(by_seed[s]["table"][k][m] for s in seeds) for m in METRICS}
            for k in keys
        }
        mins = {
            k: {m: min(by_seed[s]["table"][k][m] for s in seeds) for m in METRICS} for k in keys
        }
        details["summary"][mode] = {  # type: ignore[index]
            k: {"mean": means[k], "min": mins[k]} for k in keys
        }
        details["per_seed"][mode] = {  # type: ignore[index]
            s: {k: v for k, v in by_seed[s]["table"].items()} for s in seeds
        }
        methods = sorted({k.split("|")[0] for k in keys})
        for method in methods:
            best = max(
                (k for k in keys if k.split("|")[0] == method),
                key=lambda k: means[k]["precision@200"],
            )
            layer = best.split("|")[1]
            m = f"{mode}_{method.replace('+', '_')}"
            for metric in METRICS:
                name = metric.replace("@", "")
                what = f"{method} ({mode}), layer {layer} (best mean precision@200 over seeds)"
                figs[f"{m}_{name}_mean"] = (means[best][metric], "precision", what)
                figs[f"{m}_{name}_min"] = (mins[best][metric], "precision", what)
            figs[f"{m}_layer"] = (float(layer), "layer", "layer with the best mean precision@200")
        combined = [k for k in keys if "+" in k and not k.startswith(("random", "constant"))]
        best_c = max(combined, key=lambda k: means[k]["precision@200"])
        details["best_combined_" + mode] = best_c  # type: ignore[index]
        details["curve_seed0_" + mode] = by_seed[seeds[0]]["curves"][best_c]  # type: ignore[index]
        figs[f"{mode}_base_rate"] = (
            statistics.mean(by_seed[s]["table"][best_c]["base_rate"] for s in seeds),
            "rate",
            "positives in the pool (mean over seeds)",
        )
    return figs, details


if __name__ == "__main__":
    main()
