"""Precision of disagreement search on ``organism:quirky-arith``; writes
``docs/figures/disagree_precision.json``.

    python docs/examples/disagree_precision.py [--seeds 0,1]

For each seed, :func:`mindscope.audit.disagree.quirky_disagreement_rows` (1,600 Alice-easy fit
pairs, a held-out pool of 1,600 pairs of every persona and difficulty; truth: a Bob statement
whose Bob label is false, base rate about 0.25): precision at 50 and 200 and average precision
per layer for the logistic reporter (``lr``), the random direction (``random``), the
Mahalanobis detector alone, and each reporter combined with it (``+mahalanobis``); the
precision-recall curve of the best combined layer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mindscope as ms
from mindscope.audit.disagree import quirky_disagreement_rows

sys.path.insert(0, str(Path(__file__).parent))
from _record import write_figures  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--out", default="docs/figures/disagree_precision.json")
    args = ap.parse_args()
    h = ms.load_model("organism:quirky-arith")
    out: dict[str, object] = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        rows = quirky_disagreement_rows(h, n_fit=1600, n_pool=1600, seed=seed, top=0)
        table: dict[str, dict[str, float]] = {}
        curves: dict[str, list[list[float]]] = {}
        for r in rows:
            key = f"{r.method}|{r.layer}"
            if r.metric in ("audit_precision@50", "audit_precision@200", "audit_average_precision"):
                table.setdefault(key, {})[r.metric.removeprefix("audit_")] = r.value
                table[key]["base_rate"] = json.loads(r.extra)["base_rate"]
            elif r.metric == "audit_pr_precision":
                e = json.loads(r.extra)
                curves.setdefault(key, []).append([e["k"], e["recall"], r.value])
        best = max(
            (k for k in table if "+" in k and k.startswith("lr")),
            key=lambda k: table[k]["precision@200"],
        )
        out[f"seed{seed}"] = {"table": table, "best_combined": best, "curve": curves[best]}
        print(seed, best, table[best], flush=True)
    write_figures(args.out, headline(out), out, reps=len(out))


def headline(out: dict) -> dict[str, tuple[float, str, str]]:  # type: ignore[type-arg]
    """Per seed: the best layer's precision@50/@200 and average precision of each method."""
    figs: dict[str, tuple[float, str, str]] = {}
    for seed, d in out.items():
        t = d["table"]
        for method in ("lr", "lr+mahalanobis", "random", "random+mahalanobis", "mahalanobis"):
            keys = [k for k in t if k.split("|")[0] == method]
            best = max(keys, key=lambda k: t[k]["precision@200"])
            m = method.replace("+", "_")
            layer = best.split("|")[1]
            for metric in ("precision@50", "precision@200", "average_precision"):
                figs[f"{seed}_{m}_{metric.replace('@', '')}"] = (
                    t[best][metric],
                    "precision",
                    f"{method}, layer {layer} (best precision@200)",
                )
        figs[f"{seed}_base_rate"] = (t[best]["base_rate"], "rate", "positives in the pool")
    return figs


if __name__ == "__main__":
    main()
