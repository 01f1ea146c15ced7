"""Optional extras: check that an extra is installed before any work starts.

An entry point that needs an optional dependency calls :func:`require` first, so a missing
package is a one-line :class:`~mindscope.errors.MindscopeError` naming the ``pip install`` that
fixes it, never a traceback after minutes of compute::

    from mindscope.extras import require
    require("report")            # plotly, or "... needs the 'report' extra: pip install ..."
"""

from __future__ import annotations

import importlib

from mindscope.errors import MindscopeError

__all__ = ["EXTRAS", "require", "missing"]

EXTRAS: dict[str, tuple[str, ...]] = {
    "report": ("plotly",),
    "sandbox": ("gymnasium",),
    "ray": ("ray",),
    "big": ("accelerate",),
    "datasets": ("datasets",),
    "lora": ("peft",),
}
"""Each extra of ``pyproject.toml`` -> the modules it installs (import names)."""


def missing(*modules: str) -> list[str]:
    """The modules among ``modules`` that cannot be imported (in the order given)."""
    out = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            out.append(name)
    return out


def require(extra: str, *modules: str, what: str | None = None) -> None:
    """Raise a one-line :class:`MindscopeError` unless the modules of ``extra`` import.

    Args:
        extra: the extra's name in ``pyproject.toml`` (a key of :data:`EXTRAS`).
        modules: the modules to check (default: every module of the extra).
        what: the feature that needs them, for the message (default: ``"this"``).
    """
    if extra not in EXTRAS:
        raise MindscopeError(f"unknown extra {extra!r}; known: {', '.join(sorted(EXTRAS))}")
    absent = missing(*(modules or EXTRAS[extra]))
    if absent:
        raise MindscopeError(
            f"{what or 'this'} needs the {extra!r} extra ({', '.join(absent)} is not installed): "
            f"pip install 'mindscope[{extra}]'"
        )
