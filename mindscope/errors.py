"""User-facing errors.

Every problem caused by the caller's input (a missing file, a wrong shape, an unknown model, ...)
raises :class:`MindscopeError` (a ``ValueError``) or one of its subclasses with a one-line message
that names the problem. The CLI prints such errors as ``mindscope: error: <message>`` without a
traceback. ``assert`` is only used for internal invariants.
"""

from __future__ import annotations

__all__ = ["MindscopeError", "StoreError", "ModelLoadError", "ConfigError"]


class MindscopeError(ValueError):
    """An error caused by bad input; its message is one line meant for the user."""


class ModelLoadError(MindscopeError):
    """A model name, directory or revision could not be resolved or loaded."""


class StoreError(MindscopeError):
    """The activation store on disk is incomplete, corrupted or does not match the request."""


class ConfigError(MindscopeError):
    """A run configuration is invalid."""
