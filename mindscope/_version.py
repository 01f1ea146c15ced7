"""The installed mindscope version, read once from the package metadata (pyproject.toml)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__: str = version("mindscope")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
