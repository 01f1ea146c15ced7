"""``mindscope audit``: worst-case audits (one sub-command per instrument).

    mindscope audit anomaly --model M --tasks quirky-easy,quirky-hard --out DIR
    mindscope audit disagree --model organism:quirky-arith --out DIR

Each sub-command lives in its own module ``mindscope.cli.audit_<name>`` exposing
``register(subparsers)`` (the ``audit`` group's sub-parsers); add its module name to
:data:`_SUBCOMMANDS`. Every sub-command writes ``DIR/results.parquet`` (the results table) and
refuses an output folder that exists and is not empty.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register", "out_dir", "add_model_args"]

# Sub-command modules of the audit group, in the order `--help` lists them.
_SUBCOMMANDS = ("audit_disagree", "audit_anomaly", "audit_rare", "audit_triggers")


def out_dir(path: str) -> Path:
    """The output folder: refused if it exists and is not an empty folder."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MindscopeError(f"output {out} already exists; refusing to overwrite it")
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """The model / output arguments every audit sub-command shares."""
    p.add_argument("--model", required=True, help="HF id, local dir or organism:NAME")
    p.add_argument("--revision", default=None, help="model revision (e.g. step1000)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of datasets and bootstraps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def parse_layers(spec: str) -> str | list[int]:
    """``blocks``, ``all`` or comma-separated non-negative layer indices."""
    if spec in ("blocks", "all"):
        return spec
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise MindscopeError(
            f"--layers must be 'blocks', 'all' or comma-separated ints, got {spec!r}"
        ) from None
    if not layers or min(layers) < 0:
        raise MindscopeError(f"--layers must be non-negative ints, got {spec!r}")
    return layers


def _audit_help(parser: argparse.ArgumentParser) -> Any:
    def run(args: argparse.Namespace) -> int:
        parser.print_help()
        return 0

    return run


def register(subparsers: Any) -> None:
    """Add ``audit`` and every available audit sub-command."""
    p = subparsers.add_parser(
        "audit",
        help="worst-case audits: anomaly detection, disagreement search, ...",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_audit_help(p))
    sub = p.add_subparsers(dest="audit_command", metavar="AUDIT")
    for name in _SUBCOMMANDS:
        try:
            module = importlib.import_module(f"mindscope.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"mindscope.cli.{name}":
                continue  # sub-command not built yet
            raise
        module.register(sub)
