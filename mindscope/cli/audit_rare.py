"""``mindscope audit rare {exact, estimate, validate}`` (:mod:`mindscope.cli.audit_rare_cmd`)."""

from __future__ import annotations

from mindscope.cli.audit_rare_cmd import register_rare as register

__all__ = ["register"]
