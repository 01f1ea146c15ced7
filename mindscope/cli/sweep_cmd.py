"""``mindscope sweep CONFIG``: run analysis stages over a checkpoint series (resumable)."""

from __future__ import annotations

import argparse
from typing import Any

from mindscope.extras import require

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``sweep`` sub-command."""
    p = subparsers.add_parser(
        "sweep",
        help="run lens / reporter stages on every checkpoint of a series (resumable, Ray)",
        description="Run the stages of CONFIG (YAML/JSON, see docs/sweeps.md) on each selected "
        "checkpoint. Finished (checkpoint, stage) pairs recorded in OUT/manifest.json are never "
        "recomputed; checkpoints with identical weights are computed once.",
    )
    p.add_argument("config", metavar="CONFIG", help="sweep config (.yaml or .json)")
    p.add_argument("--backend", choices=("inprocess", "ray"), default=None, help="where to run")
    p.add_argument("--address", default=None, help="join the Ray cluster at this address")
    p.add_argument(
        "--refine",
        type=int,
        default=None,
        metavar="N",
        help="add N checkpoints where the refine metric changed most",
    )
    p.add_argument("--out", default=None, help="override the config's output folder")
    p.set_defaults(func=_sweep)


def _sweep(args: argparse.Namespace) -> int:
    from mindscope.sweeps import load_config, sweep

    cfg = load_config(args.config)
    if (args.backend or cfg.backend) == "ray" or args.address:
        require("ray", what="--backend ray")
    if args.out:
        cfg = cfg.model_copy(update={"out": args.out})
    res = sweep(cfg, backend=args.backend, address=args.address, refine=args.refine)
    done = len(res.computed)
    print(
        f"sweep: {len(res.checkpoints)} checkpoints, {done} stage runs computed, "
        f"{len(res.reused)} reused, {len(res.duplicates)} duplicate(s)"
        + (
            f" ({', '.join(f'{k}={v}' for k, v in res.duplicates.items())})"
            if res.duplicates
            else ""
        )
        + f", {res.seconds:.1f} s"
    )
    print(f"results: {res.out / 'results.parquet'} ({len(res.table)} rows)")
    return 0
