"""Hooks on residual-stream sites, always inside context managers that remove them.

Sites use TransformerLens names: ``embed`` (= ``resid_pre.0``), ``resid_pre.L``,
``resid_post.L``, ``attn_out.L``, ``mlp_out.L``. A site string is ``"name.L"`` (or just
``"embed"``); a ``(name, L)`` tuple is accepted too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mindscope.errors import MindscopeError

__all__ = ["Site", "parse_site", "StopForward", "SITE_KINDS"]

SITE_KINDS = ("embed", "resid_pre", "resid_post", "attn_out", "mlp_out")
_SITE_RE = re.compile(r"^(embed|resid_pre|resid_post|attn_out|mlp_out)(?:\.(-?\d+))?$")

Site = tuple[str, int]


class StopForward(Exception):  # noqa: N818 - control flow, not an error
    """Raised by a hook to end a forward pass early (after the last needed layer)."""


def parse_site(site: str | tuple[str, int], n_layers: int) -> Site:
    """Normalise ``"resid_post.3"`` / ``("resid_post", 3)`` / ``"embed"`` to a ``(kind, layer)``.

    ``embed`` becomes ``("resid_pre", 0)``; negative layers count from the end.
    """
    if isinstance(site, tuple):
        kind, layer = site
    elif isinstance(site, str):
        m = _SITE_RE.match(site.strip())
        if not m:
            raise MindscopeError(
                f"unknown site {site!r}; expected one of {', '.join(SITE_KINDS)} "
                "followed by .LAYER (e.g. 'resid_post.3')"
            )
        kind = m.group(1)
        if kind == "embed":
            return ("resid_pre", 0)
        if m.group(2) is None:
            raise MindscopeError(f"site {site!r} needs a layer index, e.g. '{kind}.0'")
        layer = int(m.group(2))
    else:
        raise TypeError(f"a site is a str or (str, int) tuple, got {type(site).__name__}")
    if kind == "embed":
        return ("resid_pre", 0)
    if kind not in SITE_KINDS:
        raise MindscopeError(f"unknown site kind {kind!r}; expected one of {SITE_KINDS}")
    if not -n_layers <= layer < n_layers:
        raise MindscopeError(
            f"layer {layer} out of range for a model with {n_layers} layers (0..{n_layers - 1})"
        )
    return (kind, layer % n_layers)


def first_tensor(out: Any) -> torch.Tensor:
    """The hidden-state tensor of a block's output (a tensor, or the first item of a tuple)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise TypeError(f"cannot find the hidden state in a block output of type {type(out).__name__}")


def replace_first(out: Any, new: torch.Tensor) -> Any:
    """Return ``out`` with its hidden-state tensor replaced by ``new``."""
    if isinstance(out, torch.Tensor):
        return new
    return (new, *out[1:]) if isinstance(out, tuple) else [new, *out[1:]]


def block_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    """The hidden-state input of a block call (positional or ``hidden_states=`` keyword)."""
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    hs = kwargs.get("hidden_states")
    if isinstance(hs, torch.Tensor):
        return hs
    raise TypeError("cannot find the hidden-state input of a block call")


@contextmanager
def hooked(
    registrations: Sequence[tuple[nn.Module, str, Callable[..., Any]]],
) -> Iterator[None]:
    """Register forward hooks ``(module, "pre"|"post", fn)`` and remove them all on exit.

    ``"pre"`` hooks are registered ``with_kwargs=True`` and receive ``(module, args, kwargs)``;
    ``"post"`` hooks receive ``(module, args, output)``.
    """
    handles: list[torch.utils.hooks.RemovableHandle] = []
    try:
        for module, when, fn in registrations:
            if when == "pre":
                handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
            elif when == "post":
                handles.append(module.register_forward_hook(fn))
            else:  # pragma: no cover - internal
                raise AssertionError(when)
        yield
    finally:
        for h in handles:
            h.remove()
