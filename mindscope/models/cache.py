"""Key/value caches: run a shared prefix once, then many continuations after it.

The architecture-aware half of every cached forward pass lives here: the name of a model's cache
argument, building, repeating and selecting a Hugging Face ``past_key_values`` cache, and the
attention mask and position ids of a suffix that runs on a cached prefix. Instruments call these
(the rare-event audits' exact enumeration, the trigger search, the activation engine's shared
pair prefixes); each result equals, up to float round-off, the plain forward pass on the whole
sequences. Shapes: ``n`` sequences, ``Lp`` prefix and ``Lc`` continuation positions.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = [
    "cache_kwarg",
    "supports_cache",
    "new_cache",
    "expand_cache",
    "prefix_inputs",
    "suffix_inputs",
    "next_logits_grid",
    "PrefixCache",
]


def cache_kwarg(module: Any) -> str | None:
    """Name of the key/value cache argument of ``module.forward`` (``"cache"`` or
    ``"past_key_values"``), or ``None`` when it takes none."""
    params = inspect.signature(module.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def supports_cache(module: Any, *, positions: bool = False) -> bool:
    """Whether ``module.forward`` takes a key/value cache (and ``position_ids`` if
    ``positions``)."""
    if cache_kwarg(module) is None:
        return False
    return not positions or "position_ids" in inspect.signature(module.forward).parameters


def new_cache(h: Any) -> Any:
    """An empty dynamic key/value cache for the handle's model (filled by the next forward)."""
    from transformers import DynamicCache

    return DynamicCache(config=h.config)


def expand_cache(cache: Any, n: int) -> Any:
    """Repeat every sequence of ``cache`` ``n`` times in place (``[b, ...]`` -> ``[b * n, ...]``,
    each row repeated ``n`` times in a row, as ``repeat_interleave``); returns it."""
    cache.batch_repeat_interleave(n)
    return cache


def prefix_inputs(
    module: Any, cache: Any, ids: torch.Tensor, mask: torch.Tensor, device: Any
) -> dict[str, Any]:
    """Forward keyword arguments that run right-padded prefixes ``ids [n, Lp]`` (``mask [n, Lp]``)
    and fill ``cache``: positions ``0..Lp-1``."""
    name = cache_kwarg(module)
    if name is None:
        raise MindscopeError(f"{type(module).__name__} takes no key/value cache")
    pos = torch.arange(ids.shape[1])[None, :].expand(ids.shape[0], -1)
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "position_ids": pos.to(device),
        "use_cache": True,
        name: cache,
    }


def suffix_inputs(
    module: Any,
    cache: Any,
    prefix_mask: torch.Tensor,
    ids: torch.Tensor,
    mask: torch.Tensor,
    device: Any,
) -> dict[str, Any]:
    """Forward keyword arguments that run suffixes ``ids [n, Lc]`` (``mask [n, Lc]``) on the
    cached prefixes of ``prefix_mask [n, Lp]`` (one row per suffix, as cached): each suffix's
    positions continue from its own prefix length, and the mask covers prefix then suffix."""
    name = cache_kwarg(module)
    if name is None:
        raise MindscopeError(f"{type(module).__name__} takes no key/value cache")
    plen = prefix_mask.sum(1)  # [n]
    pos = plen[:, None] + torch.arange(ids.shape[1])[None, :]  # [n, Lc]
    full = torch.cat([prefix_mask, mask], dim=1)  # [n, Lp + Lc]
    return {
        "input_ids": ids.to(device),
        "attention_mask": full.to(device),
        "position_ids": pos.to(device),
        "use_cache": True,
        name: cache,
    }


def _next_logits(h: Any, input_ids: torch.Tensor) -> torch.Tensor:
    out = h.forward(
        input_ids.to(h.device),
        inputs_embeds=None,
        attention_mask=None,
        position_ids=None,
        grad=False,
    )
    assert isinstance(out, torch.Tensor)
    return out[:, -1].float()


def next_logits_grid(h: Any, prefixes: torch.Tensor, continuations: torch.Tensor) -> torch.Tensor:
    """Next-token logits after every ``prefix + continuation`` pair, sharing the prefixes' work.

    ``prefixes [P, Lp]`` and ``continuations [T, Lc]`` -> ``[P, T, vocab]`` float32, equal (up to
    float round-off) to the last-position logits of :meth:`ModelHandle.forward` on the ``P * T``
    concatenated sequences in prefix-major order. Each prefix runs once; its key/value cache is
    repeated ``T`` times and only the continuations run again, with logits kept at the last
    position only: about ``Lc / (Lp + Lc)`` of the full cost for exact enumeration. Models
    without a key/value cache (or hooks that need whole sequences) take the plain path. No
    autograd.
    """
    if prefixes.ndim != 2 or continuations.ndim != 2:
        raise MindscopeError(
            f"prefixes and continuations must be [n, len], got {tuple(prefixes.shape)} and "
            f"{tuple(continuations.shape)}"
        )
    p, t = prefixes.shape[0], continuations.shape[0]
    model: Any = getattr(h, "model", None)
    name = cache_kwarg(model) if model is not None and prefixes.shape[1] > 0 else None
    n_ctx = getattr(h, "n_ctx", None)
    if isinstance(n_ctx, int) and prefixes.shape[1] + continuations.shape[1] > n_ctx:
        raise MindscopeError(
            f"inputs are {prefixes.shape[1] + continuations.shape[1]} tokens, the model takes "
            f"at most {n_ctx}"
        )
    if name is None or getattr(h, "is_causal", True) is False:
        full = torch.cat(
            [prefixes.repeat_interleave(t, 0), continuations.repeat(p, 1)], dim=1
        )  # [P*T, Lp+Lc]
        return _next_logits(h, full).view(p, t, -1)
    dev = h.embedding_matrix.device
    with torch.no_grad():
        out = model(input_ids=prefixes.to(dev), use_cache=True)
        cache = out[name] if name in out else out["past_key_values"]
        expand_cache(cache, t)
        kw: dict[str, Any] = {name: cache, "use_cache": True}
        if "logits_to_keep" in inspect.signature(model.forward).parameters:
            kw["logits_to_keep"] = 1
        out = model(input_ids=continuations.to(dev).repeat(p, 1), **kw)
    return out["logits"][:, -1].float().view(p, t, -1)


class PrefixCache:
    """The key/value cache of a few fixed prefixes, to run many continuations after them.

    ``PrefixCache.build(h, ids [n, Lp], attention_mask, position_ids)`` runs the prefixes once
    (``None`` when the model has no cache argument); :meth:`logits` runs continuations after
    prefixes chosen by index (repeats allowed) and returns the continuations' logits, equal up to
    round-off to those of the whole sequences through :meth:`ModelHandle.forward`. No autograd.
    """

    def __init__(self, h: Any, name: str, cache: Any, mask: torch.Tensor):
        self.h, self.name, self.cache, self.mask = h, name, cache, mask

    @classmethod
    def build(
        cls,
        h: Any,
        ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
    ) -> PrefixCache | None:
        """Run prefixes ``ids [n, Lp]`` once (mask and positions ``[n, Lp]``, optional)."""
        model: Any = getattr(h, "model", None)
        name = cache_kwarg(model) if model is not None else None
        if name is None or ids.shape[1] == 0:
            return None
        dev = h.embedding_matrix.device
        mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
        kw: dict[str, Any] = {"use_cache": True, "attention_mask": mask.to(dev)}
        if position_ids is not None:
            kw["position_ids"] = position_ids.to(dev)
        with torch.no_grad():
            out = model(input_ids=ids.to(dev), **kw)
        cache = out[name] if name in out else out.get("past_key_values")
        if cache is None or not hasattr(cache, "batch_select_indices"):
            return None
        return cls(h, name, cache, mask)

    def logits(
        self,
        index: torch.Tensor,
        ids: torch.Tensor,
        position_ids: torch.Tensor | None = None,
        keep: int | None = None,
    ) -> torch.Tensor:
        """Continuations ``ids [b, Lc]`` after prefixes ``index [b]`` -> logits ``[b, Lc, vocab]``
        (``position_ids [b, Lc]`` of the continuation tokens; default: the model's own).
        ``keep``: only the last ``keep`` positions' logits are needed (``[b, keep, vocab]``
        where the model can skip the others' unembedding; callers slice from the end)."""
        dev = self.h.embedding_matrix.device
        cache = copy.deepcopy(self.cache)
        cache.batch_select_indices(index.to(dev))
        mask = torch.cat([self.mask[index], torch.ones_like(ids)], dim=1).to(dev)
        kw: dict[str, Any] = {self.name: cache, "use_cache": True, "attention_mask": mask}
        if position_ids is not None:
            kw["position_ids"] = position_ids.to(dev)
        if (
            keep is not None
            and "logits_to_keep" in inspect.signature(self.h.model.forward).parameters
        ):
            kw["logits_to_keep"] = keep
        with torch.no_grad():
            out = self.h.model(input_ids=ids.to(dev), **kw)
        logits = out["logits"]
        assert isinstance(logits, torch.Tensor)
        return logits
