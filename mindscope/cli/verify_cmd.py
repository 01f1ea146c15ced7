"""``mindscope verify training TRANSCRIPT`` and ``mindscope verify RUN_DIR``.

Exit codes: 0 accepted, 1 rejected (a check failed), 2 bad input (missing or malformed files).
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``verify``."""
    p = subparsers.add_parser(
        "verify",
        help="verify a training transcript (verify training PATH) or a run folder (verify RUN_DIR)",
        description="`mindscope verify training PATH` re-executes segments of a training "
        "transcript (an organism folder or its transcript/transcript.json) and checks its hash "
        "chain, files, data order and losses; `mindscope verify RUN_DIR` checks a run folder's "
        "hashes and re-executes it, comparing the results table. Exit 0: accepted, 1: "
        "rejected, 2: bad input.",
    )
    p.add_argument("target", metavar="training|RUN_DIR", help="`training` or a run folder")
    p.add_argument("path", nargs="?", metavar="TRANSCRIPT", help="(verify training) the transcript")
    g = p.add_argument_group("verify training")
    g.add_argument("--q", type=int, default=3, help="segments with the largest updates (3)")
    g.add_argument("--random", type=int, default=1, help="random segments on top (1)")
    g.add_argument(
        "--segments", type=int, nargs="+", default=None, help="re-execute exactly these segments"
    )
    g.add_argument("--threads", type=int, default=None, help="threads (default: the trainer's)")
    g.add_argument("--tolerance", type=float, default=None, help="relative distance allowed")
    g.add_argument("--root", default=None, help="published chain root the transcript must match")
    g.add_argument("--seed", type=int, default=0, help="seed of the random choice (0)")
    r = p.add_argument_group("verify RUN_DIR")
    r.add_argument(
        "--stage", default=None, help="one stage only (lens, elicit, anomaly, ...; a run's stage)"
    )
    r.add_argument("--no-rerun", action="store_true", help="check hashes only")
    r.add_argument("--atol", type=float, default=1e-6, help="absolute tolerance (1e-6)")
    r.add_argument("--rtol", type=float, default=1e-4, help="relative tolerance (1e-4)")
    p.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from mindscope.errors import ConfigError

    if args.target == "training":
        if not args.path:
            raise ConfigError("give the transcript: mindscope verify training PATH")
        if args.q < 0 or args.random < 0:
            raise ConfigError("--q and --random must be >= 0")
        from mindscope.verify import verify_training

        report = verify_training(
            args.path,
            q=args.q,
            n_random=args.random,
            segments=args.segments,
            seed=args.seed,
            threads=args.threads,
            tolerance=args.tolerance,
            expected_root=args.root,
        )
    else:
        if args.path:
            raise ConfigError(f"unexpected argument {args.path!r} after the run folder")
        from mindscope.verify import verify_run

        report = verify_run(  # type: ignore[assignment]
            args.target, stage=args.stage, rerun=not args.no_rerun, atol=args.atol, rtol=args.rtol
        )
    print(report.summary())
    return 0 if report.accepted else 1
