"""The audit instruments' access to the model: the engine's ``h.forward`` and
``h.embedding_matrix``.

Everything in :mod:`mindscope.audit.rare` and :mod:`mindscope.audit.triggers` runs the model
through these functions (one place to read for how they call the engine).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = ["next_logits", "next_logits_grid", "embedding_matrix", "forward_logits", "PrefixCache"]


def embedding_matrix(h: Any) -> torch.Tensor:
    """The input embedding weight ``[vocab, d_model]`` (no copy): ``h.embedding_matrix``."""
    w = h.embedding_matrix
    assert isinstance(w, torch.Tensor)
    return w


def forward_logits(
    h: Any,
    input_ids: torch.Tensor | None = None,
    *,
    inputs_embeds: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    grad: bool = False,
) -> torch.Tensor:
    """The model's logits ``[batch, pos, vocab]`` from ids ``[batch, pos]`` or embeddings
    ``[batch, pos, d_model]`` through the engine's one forward path (:meth:`ModelHandle.forward`);
    ``grad=True`` keeps autograd on (parameters stay frozen)."""
    out = h.forward(
        input_ids,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        grad=grad,
    )
    assert isinstance(out, torch.Tensor)
    return out


def next_logits(h: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of the next token after each sequence: ids ``[batch, pos]`` -> ``[batch, vocab]``
    (float32, no autograd)."""
    ids = input_ids.to(h.device)
    return forward_logits(h, ids)[:, -1].float()


def _cache_kwarg(model: Any) -> str | None:
    """Name of the key/value cache argument of a Hugging Face causal LM's forward, if any."""
    params = inspect.signature(model.forward).parameters
    for name in ("cache", "past_key_values"):
        if name in params:
            return name
    return None


def next_logits_grid(h: Any, prefixes: torch.Tensor, continuations: torch.Tensor) -> torch.Tensor:
    """Next-token logits after every ``prefix + continuation`` pair, sharing the prefixes' work.

    ``prefixes [P, Lp]`` and ``continuations [T, Lc]`` -> ``[P, T, vocab]`` float32, equal (up to
    float round-off) to :func:`next_logits` on the ``P * T`` concatenated sequences in
    prefix-major order. Each prefix runs once; its key/value cache is repeated ``T`` times and
    only the continuations run again, with logits kept at the last position only: about
    ``Lc / (Lp + Lc)`` of the full cost for exact enumeration. Models without a key/value cache
    (or hooks that need whole sequences) take the plain path. No autograd.
    """
    if prefixes.ndim != 2 or continuations.ndim != 2:
        raise MindscopeError(
            f"prefixes and continuations must be [n, len], got {tuple(prefixes.shape)} and "
            f"{tuple(continuations.shape)}"
        )
    p, t = prefixes.shape[0], continuations.shape[0]
    model: Any = getattr(h, "model", None)
    name = _cache_kwarg(model) if model is not None and prefixes.shape[1] > 0 else None
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
        return next_logits(h, full).view(p, t, -1)
    dev = h.embedding_matrix.device
    with torch.no_grad():
        out = model(input_ids=prefixes.to(dev), use_cache=True)
        cache = out[name] if name in out else out["past_key_values"]
        cache.batch_repeat_interleave(t)
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
    round-off to those of the whole sequences through :func:`forward_logits`. No autograd.
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
        model: Any = getattr(h, "model", None)
        name = _cache_kwarg(model) if model is not None else None
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
        import copy

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
