"""Erase a concept at a site during the model's forward pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from mindscope.erasure.leace import LeaceEraser
from mindscope.errors import MindscopeError

__all__ = ["erasing", "POSITIONS"]

POSITIONS = ("all", "last")


@contextmanager
def erasing(
    h: Any,
    site: str,
    eraser: LeaceEraser,
    *,
    positions: str = "all",
    last_index: torch.Tensor | None = None,
) -> Iterator[None]:
    """Apply ``eraser`` to the value ``[batch, pos, d_model]`` at ``site`` in every forward pass
    run inside the block.

    Args:
        h: a :class:`~mindscope.models.ModelHandle` (or any handle with ``edit``).
        site: e.g. ``"resid_post.3"``.
        eraser: a fitted :class:`LeaceEraser` of the site's width.
        positions: ``"all"`` (every position) or ``"last"`` (only ``last_index`` per row).
        last_index: ``[batch]`` the position erased per row when ``positions="last"`` (default
            the final position).
    """
    if positions not in POSITIONS:
        raise MindscopeError(f"erasure positions must be one of {POSITIONS}, got {positions!r}")
    width = getattr(h, "d_model", None)
    if isinstance(width, int) and width != eraser.d:
        raise MindscopeError(f"eraser has width {eraser.d}, {site} has width {width}")

    def fn(x: torch.Tensor) -> torch.Tensor:
        if positions == "all":
            return eraser(x)
        rows = torch.arange(x.shape[0], device=x.device)
        idx = (
            torch.full((x.shape[0],), x.shape[1] - 1, device=x.device)
            if last_index is None
            else last_index.to(x.device)
        )
        out = x.clone()
        out[rows, idx] = eraser(x[rows, idx])
        return out

    with h.edit({site: fn}):
        yield
