"""Input checking and reshaping shared by every reporter (internal).

Reporters accept four layouts, as torch tensors or numpy arrays:

* ``[n, 2, d]``        contrast pairs, one layer (side 0 negative, side 1 positive);
* ``[layers, n, 2, d]`` contrast pairs, every layer at once;
* ``[n, d]``           single texts, one layer (supervised reporters only);
* ``[layers, n, d]``   single texts, every layer at once.

A 3-D input is read as contrast pairs when its second axis has size 2 *and* the reporter is
being fitted on pairs or was fitted on pairs; :func:`as_layered` takes that decision explicitly.
Internally everything is "layered": ``[L, n, 2, d]`` or ``[L, n, d]`` float tensors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = ["Layout", "as_tensor", "as_layered", "check_labels", "infer_layout", "pair_diff"]


@dataclass(frozen=True)
class Layout:
    """How an input was laid out: ``paired`` (has the side axis) and ``layered`` (has layers)."""

    paired: bool
    layered: bool


def as_tensor(x: Any, name: str = "x", *, keep_grad: bool = False) -> Tensor:
    """A float tensor view/copy of ``x`` (torch or numpy), checked for NaN/inf.

    Never modifies ``x``; integer or float16 inputs are converted to float32. The tensor stays
    on its device; with ``keep_grad`` it stays in the autograd graph (predictions are then
    differentiable in ``x``).
    """
    if isinstance(x, np.ndarray):
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, Tensor):
        t = x if keep_grad else x.detach()
    else:
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.int16)):
        raise TypeError(f"{name} must hold numbers, got dtype {t.dtype}")
    if t.dtype not in (torch.float32, torch.float64):
        t = t.float()
    bad = int((~torch.isfinite(t.detach())).sum())
    if bad:
        raise MindscopeError(f"{name} contains {bad} NaN/inf value(s) (shape {tuple(t.shape)})")
    return t


def infer_layout(x: Tensor, *, paired: bool | None = None) -> Layout:
    """Decide the layout of ``x`` from its rank (and the side axis when rank is 3).

    ``paired`` forces the pair reading (True) or the single-text reading (False) of a
    ambiguous 3-D input; ``None`` reads a 3-D input with ``shape[1] == 2`` as pairs.
    """
    if x.ndim == 4:
        if x.shape[2] != 2:
            raise MindscopeError(
                f"4-D activations must be [layers, n, 2, d] contrast pairs, got {tuple(x.shape)}"
            )
        return Layout(paired=True, layered=True)
    if x.ndim == 3:
        is_pair = x.shape[1] == 2 if paired is None else paired
        if is_pair and x.shape[1] != 2:
            raise MindscopeError(
                f"expected contrast pairs [n, 2, d] (or [layers, n, 2, d]), got {tuple(x.shape)}"
            )
        return Layout(paired=is_pair, layered=not is_pair)
    if x.ndim == 2:
        if paired:
            raise MindscopeError(
                f"this reporter was fitted on contrast pairs [n, 2, d]; got {tuple(x.shape)}"
            )
        return Layout(paired=False, layered=False)
    raise MindscopeError(
        "activations must be [n, 2, d], [layers, n, 2, d], [n, d] or [layers, n, d]; "
        f"got shape {tuple(x.shape)}"
    )


def as_layered(
    x: Any, *, paired: bool | None = None, name: str = "x", keep_grad: bool = False
) -> tuple[Tensor, Layout]:
    """``x`` as a layered tensor ``[L, n, 2, d]`` or ``[L, n, d]`` plus its original layout."""
    t = as_tensor(x, name, keep_grad=keep_grad)
    layout = infer_layout(t, paired=paired)
    if not layout.layered:
        t = t.unsqueeze(0)  # [1, n, (2,) d]
    if t.shape[1] == 0:
        raise MindscopeError(f"{name} holds no examples (shape {tuple(t.shape)})")
    return t, layout


def check_labels(
    y: Any, n: int, *, required: bool, who: str, device: torch.device | None = None
) -> Tensor | None:
    """Labels as a float tensor ``[n]`` of 0/1, or None when absent and not required.

    Labels equal to -1 (unknown) count as missing. Supervised reporters need both classes.
    With ``device``, a label tensor on another device is refused (numpy/lists are moved there).
    """
    if device is not None and isinstance(y, Tensor) and y.device != device:
        raise MindscopeError(
            f"{who}: activations are on {device} but labels are on {y.device}; "
            "put them on one device"
        )
    if y is None:
        if required:
            raise MindscopeError(f"{who} is supervised: fit(x, y) needs labels y")
        return None
    yt = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y.detach())
    if yt.ndim != 1 or yt.shape[0] != n:
        raise MindscopeError(f"labels must have shape [{n}], got {tuple(yt.shape)}")
    if not torch.isfinite(yt.double()).all():
        raise MindscopeError("labels contain NaN/inf")
    vals = set(torch.unique(yt).tolist())
    if vals <= {-1}:
        if required:
            raise MindscopeError(f"{who} is supervised but every label is -1 (unknown)")
        return None
    if not vals <= {0, 1}:
        raise MindscopeError(
            f"labels must be 0/1 (or all -1 for unsupervised use), got values {sorted(vals)}"
        )
    if required and len(vals) < 2:
        raise MindscopeError(f"{who} needs both classes in y, got only class {vals.pop()}")
    return yt.to(device=device, dtype=torch.float64)


def pair_diff(x: Tensor) -> Tensor:
    """Pair differences ``x[..., 1, :] - x[..., 0, :]``: ``[L, n, 2, d] -> [L, n, d]``."""
    return x[..., 1, :] - x[..., 0, :]
