"""``mindscope organism``: train the model organisms, list the zoo, ship trained weights."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from mindscope.cli._args import positive_int, threads

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``organism train`` and ``organism list`` to the top-level sub-parsers."""
    parser = subparsers.add_parser(
        "organism", help="train model organisms and list the zoo", description=__doc__
    )
    sub = parser.add_subparsers(dest="organism_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: (parser.print_help(), 0)[1])

    train = sub.add_parser("train", help="train an organism and write its checkpoints")
    train.add_argument("name", help="organism name (see `mindscope organism list`)")
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    train.add_argument(
        "--out", default=None, help="output folder (default: the cache that resolve() reads)"
    )
    train.add_argument(
        "--max-steps",
        type=int,
        default=None,
        help="optimiser steps (default: the organism's default budget)",
    )
    train.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: min(2, CPU cores))"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=_train)

    ship = sub.add_parser(
        "ship",
        help="(maintainers) copy a trained organism's final weights + transcript into the package",
    )
    ship.add_argument("name", help="organism name")
    ship.add_argument(
        "--from", dest="source", default=None, help="trained folder (default: the cache)"
    )
    ship.add_argument(
        "--verify-segment",
        action="store_true",
        help="also ship the checkpoint starting the transcript's last segment (for tests)",
    )
    ship.set_defaults(func=_ship)

    lst = sub.add_parser("list", help="show the organisms and whether they are trained")
    lst.add_argument("--seed", type=int, default=0, help="seed whose cache to inspect")
    lst.add_argument("--json", action="store_true", help="print JSON instead of a table")
    lst.set_defaults(func=_list)


def _train(args: argparse.Namespace) -> int:
    from mindscope.organisms import default_config, train

    positive_int(args.max_steps, "--max-steps")
    threads(args.threads)
    cfg = default_config(args.name, seed=args.seed)
    if args.max_steps is not None:
        cfg = dataclasses.replace(cfg, max_steps=args.max_steps)
    if args.threads is not None:
        cfg = dataclasses.replace(cfg, threads=args.threads)
    root = train(args.name, cfg, out=args.out, progress=not args.quiet)
    manifest = json.loads((root / "manifest.json").read_text())
    final = manifest["final"]
    metrics = manifest["revisions"][final]["metrics"]
    shown = ", ".join(f"{k}={v:.4g}" for k, v in metrics.items())
    print(f"trained {args.name} (seed {cfg.seed}) in {manifest['train_seconds']:.1f} s -> {root}")
    print(f"checkpoints: {', '.join(manifest['revisions'])}")
    print(f"{final}: {shown}")
    return 0


def _ship(args: argparse.Namespace) -> int:
    from mindscope.organisms import ship

    dest = ship(args.name, args.source, verify_segment=args.verify_segment)
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    print(f"shipped {args.name} -> {dest} ({size / 1e6:.1f} MB)")
    return 0


def _list(args: argparse.Namespace) -> int:
    from mindscope.organisms import list_organisms

    rows = list_organisms(seed=args.seed)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        **dataclasses.asdict(r),
                        "path": str(r.path),
                        "revisions": list(r.revisions),
                    }
                    for r in rows
                ],
                indent=1,
            )
        )
        return 0
    width = max(len(r.name) for r in rows)
    print(f"{'name':<{width}}  {'status':<11}  {'checkpoints':<24}  description")
    for r in rows:
        status = "trained" if r.trained else "shipped" if r.shipped else "not trained"
        ckpts = f"{len(r.revisions)} ({r.revisions[0]}..{r.final})"
        print(f"{r.name:<{width}}  {status:<11}  {ckpts:<24}  {r.description}")
    return 0
