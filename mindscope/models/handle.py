"""The model handle: one object that knows a model's tokenizer, blocks, head and sites."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mindscope.errors import MindscopeError
from mindscope.models.discovery import Parts
from mindscope.models.hooks import (
    SITE_KINDS,
    block_input,
    first_tensor,
    hooked,
    parse_site,
    replace_first,
)

__all__ = ["ModelHandle"]

_ATTN_NAMES = ("attention", "attn", "self_attn", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")


@dataclass
class ModelHandle:
    """A loaded model with everything mindscope needs to read and write its residual stream.

    Attributes:
        model: the ``transformers`` model, in eval mode.
        tokenizer: its tokenizer.
        name: what it was loaded from (hub id, directory or ``organism:NAME``).
        revision: the revision (``None`` for the default).
        parts: blocks, head and unembedding (see :class:`mindscope.models.discovery.Parts`).
        is_causal: whether it is a causal (decoder) language model.
    """

    model: nn.Module
    tokenizer: Any
    name: str
    revision: str | None
    parts: Parts
    is_causal: bool
    _weights_hash: str | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- anatomy
    @property
    def config(self) -> Any:
        """The model's ``transformers`` config."""
        return self.model.config

    @property
    def n_layers(self) -> int:
        """Number of transformer blocks."""
        return len(self.parts.layers)

    @property
    def d_model(self) -> int:
        """Width of the residual stream."""
        cfg = self.config
        for key in ("hidden_size", "n_embd", "d_model", "dim"):
            v = getattr(cfg, key, None)
            if isinstance(v, int):
                return v
        raise MindscopeError(f"cannot find the residual width of {type(self.model).__name__}")

    @property
    def n_ctx(self) -> int | None:
        """Longest sequence the model takes, if its config says."""
        for key in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
            v = getattr(self.config, key, None)
            if isinstance(v, int) and v > 0:
                return v
        return None

    @property
    def base(self) -> nn.Module:
        """The bare transformer (no LM head): ``model.base_model``."""
        base = getattr(self.model, "base_model", self.model)
        return base if isinstance(base, nn.Module) else self.model

    @property
    def layers(self) -> tuple[nn.Module, ...]:
        """The transformer blocks, in order."""
        return self.parts.layers

    @property
    def final_norm(self) -> nn.Module | None:
        """The first module of the head (the final norm), ``None`` for encoders."""
        return self.parts.head[0] if self.parts.head else None

    @property
    def unembed(self) -> nn.Module | None:
        """The unembedding (``lm_head``); ``None`` for encoders."""
        return self.parts.unembed

    @property
    def vocab_size(self) -> int:
        """Size of the output vocabulary (or of the tokenizer for encoders)."""
        if self.unembed is not None and hasattr(self.unembed, "weight"):
            weight = self.unembed.weight
            assert isinstance(weight, torch.Tensor)
            return int(weight.shape[0])
        return int(getattr(self.config, "vocab_size", len(self.tokenizer)))

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Floating dtype of the model's parameters."""
        return next(self.model.parameters()).dtype

    @property
    def sites(self) -> list[str]:
        """Every readable site name (``embed``, ``resid_pre.L``, ``resid_post.L``, ...)."""
        out = ["embed"]
        for layer in range(self.n_layers):
            out += [f"resid_pre.{layer}", f"resid_post.{layer}"]
            if self._sub(layer, _ATTN_NAMES) is not None:
                out.append(f"attn_out.{layer}")
            if self._sub(layer, _MLP_NAMES) is not None:
                out.append(f"mlp_out.{layer}")
        return out

    def _sub(self, layer: int, names: Sequence[str]) -> nn.Module | None:
        block = self.parts.layers[layer]
        for n in names:
            m = getattr(block, n, None)
            if isinstance(m, nn.Module):
                return m
        return None

    # ---------------------------------------------------------------- hashes
    @property
    def weights_hash(self) -> str:
        """Content hash (hex, 16 chars) of every parameter and buffer; computed once."""
        if self._weights_hash is None:
            h = hashlib.blake2b(digest_size=16)
            for name, t in sorted(self.model.state_dict().items()):
                h.update(name.encode())
                h.update(str(tuple(t.shape)).encode())
                h.update(str(t.dtype).encode())
                h.update(_tensor_bytes(t))
            self._weights_hash = h.hexdigest()[:16]
        return self._weights_hash

    @property
    def unembed_hash(self) -> str:
        """Hash of the head and unembedding weights; lenses carry it to refuse foreign models."""
        if self.unembed is None:
            raise MindscopeError(f"{self.name} is not a causal LM: it has no unembedding")
        h = hashlib.blake2b(digest_size=16)
        for mod in (*self.parts.head, self.unembed):
            for name, t in sorted(mod.state_dict().items()):
                h.update(name.encode())
                h.update(_tensor_bytes(t))
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------- decoding
    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """Decode residual-stream vectors through the head and unembedding (the logit lens).

        Args:
            resid: ``[..., d_model]``.

        Returns:
            ``[..., vocab]`` logits; for the last block's output these equal the model's logits.
        """
        if self.unembed is None:
            raise MindscopeError(f"{self.name} is an encoder: it has no unembedding to decode with")
        x = resid
        for mod in self.parts.head:
            x = mod(x)
        return self.unembed(x)

    # ------------------------------------------------------------------ hooks
    @contextmanager
    def capture(
        self, sites: Sequence[str | tuple[str, int]], *, detach: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Record activations at ``sites`` during forward passes run inside the block.

        Yields a dict filled as the model runs: ``cache["resid_post.3"]`` is ``[batch, pos,
        d_model]`` (the last forward pass wins). Hooks are removed on exit, even on error.
        """
        cache: dict[str, torch.Tensor] = {}
        regs = []
        for site in sites:
            kind, layer = parse_site(site, self.n_layers)
            key = "embed" if (kind, layer) == ("resid_pre", 0) and site == "embed" else None
            key = key or f"{kind}.{layer}"
            regs.append(self._registration(kind, layer, key, cache, None, detach))
        with hooked(regs):
            yield cache

    @contextmanager
    def add(
        self, additions: Mapping[str | tuple[str, int], torch.Tensor] | None = None, **kw: Any
    ) -> Iterator[None]:
        """Add vectors to sites during forward passes run inside the block.

        Args:
            additions: ``{site: tensor}``, each tensor broadcastable to ``[batch, pos, d_model]``
                (e.g. a ``[d_model]`` steering vector).
        """
        if kw:
            raise TypeError(f"unexpected keyword arguments {sorted(kw)}")
        regs = []
        for site, vec in (additions or {}).items():
            kind, layer = parse_site(site, self.n_layers)
            if vec.shape[-1] != self.d_model:
                raise MindscopeError(
                    f"vector added at {site} has width {vec.shape[-1]}, model width {self.d_model}"
                )
            regs.append(self._registration(kind, layer, f"{kind}.{layer}", None, vec, True))
        with hooked(regs):
            yield

    def _registration(
        self,
        kind: str,
        layer: int,
        key: str,
        cache: dict[str, torch.Tensor] | None,
        add: torch.Tensor | None,
        detach: bool,
    ) -> tuple[nn.Module, str, Any]:
        assert kind in SITE_KINDS

        def store(t: torch.Tensor) -> torch.Tensor:
            if add is not None:
                t = t + add.to(t.dtype).to(t.device)
            if cache is not None:
                cache[key] = t.detach() if detach else t
            return t

        if kind == "resid_pre":
            block = self.parts.layers[layer]

            def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                x = block_input(args, kwargs)
                y = store(x)
                if add is None:
                    return None
                if args and isinstance(args[0], torch.Tensor):
                    return (y, *args[1:]), kwargs
                return args, {**kwargs, "hidden_states": y}

            return (block, "pre", pre)
        if kind == "resid_post":
            module = self.parts.layers[layer]
        else:
            names = _ATTN_NAMES if kind == "attn_out" else _MLP_NAMES
            sub = self._sub(layer, names)
            if sub is None:
                raise MindscopeError(f"site {kind}.{layer} is not available on {self.name}")
            module = sub

        def post(mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            y = store(first_tensor(out))
            return replace_first(out, y) if add is not None else None

        return (module, "post", post)

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, revision={self.revision!r}, "
            f"arch={type(self.model).__name__}, n_layers={self.n_layers}, d_model={self.d_model})"
        )


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()
