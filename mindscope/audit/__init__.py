"""Worst-case audits.

This module only exposes the audit entry points lazily, so ``import mindscope.audit`` stays cheap
and each instrument lives in its own sub-package:

- :func:`estimate_rare` (:mod:`mindscope.audit.rare`): the probability of a rare bad output
  under an input distribution (naive Monte Carlo, ITGIS, MHIS, exact enumeration).
- :func:`search_triggers` (:mod:`mindscope.audit.triggers`): GCG-style search for inputs that
  make a model emit a target.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["estimate_rare", "search_triggers"]

_LAZY = {
    "estimate_rare": "mindscope.audit.rare",
    "search_triggers": "mindscope.audit.triggers",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mindscope.audit' has no attribute {name!r}")
