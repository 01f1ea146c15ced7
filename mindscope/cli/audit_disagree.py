"""``mindscope audit disagree``: rank inputs by how strongly a reporter's credence (the model's
internal belief) disagrees with the model's own answer.

    mindscope audit disagree --model organism:quirky-arith --out DIR
    mindscope audit disagree --model M --reporter REPORTER_DIR --layer 5 --dataset FILE --out DIR

Without ``--reporter`` it runs the quirky-arith protocol: a logistic reporter and a
random-direction baseline fitted on Alice-easy prompts (truth labels), a held-out pool of every
persona and difficulty, and precision@50/@200 against "Bob statement whose Bob label is false",
per layer. With ``--reporter`` (a folder saved by ``Reporter.save``, fitted on one layer of
prompt activations) it ranks the pairs of ``--dataset`` (JSONL/CSV of contrast pairs) read at
``--layer``. Rows: ``audit_precision@k`` and the ``--top`` strongest disagreements (``extra`` holds
each prompt, credence and model probability).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mindscope.cli._args import add_model_args, out_dir, parse_layers
from mindscope.errors import MindscopeError

__all__ = ["register"]


def _run(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.audit.disagree import (
        disagreement_rows,
        disagreements,
        quirky_disagreement_rows,
    )
    from mindscope.results import to_frame, write_table

    out = out_dir(args.out)
    if args.top < 0:
        raise MindscopeError(f"--top must be >= 0, got {args.top}")
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    if args.reporter:
        if args.layer is None or not args.dataset:
            raise MindscopeError("--reporter needs --layer and --dataset")
        from mindscope.data.loaders import load_pairs
        from mindscope.probes import load_reporter

        rep = load_reporter(args.reporter, d_in=h.d_model)
        pairs = load_pairs(args.dataset)
        ranked = disagreements(h, rep, pairs, layer=args.layer, progress=not args.quiet)
        rows = disagreement_rows(
            ranked,
            method=rep.method,
            top=args.top,
            layer=args.layer,
            model=h.name,
            dataset=args.dataset,
        )
    else:
        layers = parse_layers(args.layers)
        lay: list[int] | None = None
        if layers == "all":
            lay = list(range(h.n_layers + 1))
        elif isinstance(layers, list):
            lay = layers
        rows = quirky_disagreement_rows(
            h,
            layers=lay,
            n_fit=args.n_fit,
            n_pool=args.n_pool,
            seed=args.seed,
            top=args.top,
            progress=not args.quiet,
        )
    df = to_frame(rows)
    path = write_table(df, out / "results.parquet")
    prec = df[df.metric.str.startswith("audit_precision@")]
    if not prec.empty:
        wide = prec.pivot_table(index="layer", columns=["method", "metric"], values="value")
        print(wide.round(3).to_string())
    print(f"wrote {len(df)} rows to {path}", file=sys.stderr)
    return 0


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
    p.add_argument("--reporter", default=None, help="saved reporter folder (custom ranking)")
    p.add_argument("--layer", type=int, default=None, help="with --reporter: its layer")
    p.add_argument("--dataset", default=None, help="with --reporter: contrast pairs file")
    p.set_defaults(func=_run)
