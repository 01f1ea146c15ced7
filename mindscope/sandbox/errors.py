"""The sandbox's one error type (a :class:`mindscope.errors.MindscopeError`)."""

from __future__ import annotations

from mindscope.errors import MindscopeError

__all__ = ["SandboxError"]


class SandboxError(MindscopeError):
    """Bad input to the sandbox: unknown world, action outside the space, bad seed, ..."""
