"""``mindscope audit disagree``: rank inputs by how strongly a reporter's credence (the model's
internal belief) disagrees with the model's own answer.

    mindscope audit disagree --model organism:quirky-arith --out DIR
    mindscope audit disagree --model M --reporter REPORTER_DIR --layer 5 --dataset FILE --out DIR

Without ``--reporter`` it runs the quirky-arith protocol: logistic and LDA reporters and a
random-direction baseline fitted on Alice-easy prompts (truth labels), a held-out pool of every
persona and difficulty, and precision@50/@200 against "Bob statement whose Bob label is false",
per layer, alone and combined with a detector (``--combine gate``: the inputs a monitor
calibrated at ``--monitor-fpr`` on trusted inputs flags rank first). With ``--reporter`` (a
folder saved by ``Reporter.save``, fitted on one layer of prompt activations) it ranks the
pairs of ``--dataset`` (JSONL/CSV of contrast pairs) read at ``--layer``. Rows:
``audit_precision@k`` and the ``--top`` strongest disagreements (``extra`` holds each prompt,
credence and model probability).
"""

from __future__ import annotations

import argparse
from typing import Any

from mindscope.cli._args import add_model_args, parse_layers

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    from mindscope.cli._args import run_audit_stage

    cfg = {
        "layers": parse_layers(args.layers),
        "n_fit": args.n_fit,
        "n_pool": args.n_pool,
        "top": args.top,
        "reporter": args.reporter,
        "layer": args.layer,
        "dataset": args.dataset,
        "detector": None if args.detector in ("none", "") else args.detector,
        "combine": args.combine,
        "monitor_fpr": args.monitor_fpr,
    }
    df, _ = run_audit_stage("disagree", args, cfg)
    prec = df[df.metric.str.startswith("audit_precision@")]
    if not prec.empty:
        prec = pd_concat_ap(df, prec)
        wide = prec.pivot_table(index="layer", columns=["method", "metric"], values="value")
        print(wide.round(3).to_string())
    return 0


def pd_concat_ap(df: Any, prec: Any) -> Any:
    """Precision@k rows with the average-precision rows."""
    import pandas as pd

    return pd.concat([prec, df[df.metric == "audit_average_precision"]])


def register(subparsers: Any) -> None:
    """Add ``disagree`` to the ``audit`` group."""
    p = subparsers.add_parser(
        "disagree",
        help="rank inputs where the model's internal belief and its answer disagree",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_args(p)
    p.add_argument("--layers", default="blocks", help="quirky protocol: layers to read")
    p.add_argument("--n-fit", type=int, default=1600, help="quirky: Alice-easy fit pairs")
    p.add_argument("--n-pool", type=int, default=1600, help="quirky: held-out pool size")
    p.add_argument("--top", type=int, default=20, help="strongest disagreements kept as rows")
    p.add_argument(
        "--detector",
        default="mahalanobis",
        help="quirky: detector combined with the disagreement ('none': disagreement only)",
    )
    p.add_argument(
        "--combine",
        default="gate",
        help="quirky: 'gate' (monitor-flagged inputs first) or 'rank' (mean percentile rank)",
    )
    p.add_argument(
        "--monitor-fpr",
        type=float,
        default=0.01,
        help="quirky, gate: monitor's false-positive rate",
    )
    p.add_argument("--reporter", default=None, help="saved reporter folder (custom ranking)")
    p.add_argument("--layer", type=int, default=None, help="with --reporter: its layer")
    p.add_argument("--dataset", default=None, help="with --reporter: contrast pairs file")
    p.set_defaults(func=_run)
