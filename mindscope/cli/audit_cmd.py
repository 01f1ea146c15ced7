"""``mindscope audit``: worst-case audits (rare-event estimation, trigger search)."""

from __future__ import annotations

from typing import Any

from mindscope.cli.audit_rare_cmd import register_rare, register_triggers

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``audit`` command group."""
    audit = subparsers.add_parser("audit", help="worst-case audits: rare events, trigger search")
    sub = audit.add_subparsers(dest="audit_command", metavar="AUDIT", required=True)
    register_rare(sub)
    register_triggers(sub)
