"""``mindscope audit triggers`` (see :mod:`mindscope.cli.audit_rare_cmd`)."""

from __future__ import annotations

from mindscope.cli.audit_rare_cmd import register_triggers as register

__all__ = ["register"]
