"""The model handle: one object that knows a model's tokenizer, blocks, head and sites."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mindscope import io
from mindscope.errors import MindscopeError
from mindscope.models.discovery import Parts
from mindscope.models.hooked import HookedModule, SitePoint, module_weights_hash
from mindscope.models.hooks import SITE_KINDS, first_tensor, hooked, parse_site

__all__ = ["ModelHandle"]

_ATTN_NAMES = ("attention", "attn", "self_attn", "self_attention")
_MLP_NAMES = ("mlp", "feed_forward", "ffn")


@dataclass(repr=False)
class ModelHandle(HookedModule):
    """A loaded model with everything mindscope needs to read and write its residual stream.

    The Hugging Face adapter of :class:`~mindscope.models.hooked.HookedModule`: it knows the
    tokenizer, blocks, head and unembedding, names sites as TransformerLens does, and runs the
    one forward path (:meth:`forward`) that every instrument uses.

    Attributes:
        model: the ``transformers`` model, in eval mode.
        tokenizer: its tokenizer.
        name: what it was loaded from (hub id, directory or ``organism:NAME``).
        revision: the revision (``None`` for the default).
        parts: blocks, head and unembedding (see :class:`mindscope.models.discovery.Parts`).
        is_causal: whether it is a causal (decoder) language model.
        source_files: the weight files it was loaded from (their bytes give ``weights_hash``).
    """

    model: nn.Module
    tokenizer: Any
    name: str
    revision: str | None
    parts: Parts
    is_causal: bool
    source_files: tuple[Path, ...] = ()
    _weights_hash: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._site_paths = None

    @property
    def module(self) -> nn.Module:  # type: ignore[override]
        """The wrapped ``transformers`` model (the :class:`HookedModule` view of it)."""
        return self.model

    @property
    def step(self) -> int | None:
        """Training step parsed from a Pythia-style revision (``"step1000"`` -> 1000)."""
        rev = self.revision or ""
        return int(rev[4:]) if rev.startswith("step") and rev[4:].isdigit() else None

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
    def sites(self) -> list[str]:  # type: ignore[override]
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
        """Content hash (hex, 16 chars) of the weights; computed once.

        When the model was loaded from files (``source_files``), the hash is taken over those
        files' bytes, streamed from disk, so no parameter is copied (and offloaded weights are
        never loaded); otherwise over every parameter and buffer.
        """
        if self._weights_hash is None:
            if self.source_files:
                self._weights_hash = files_hash(self.source_files)
            else:
                self._weights_hash = module_weights_hash(self.model)
        return self._weights_hash

    def rehash(self) -> str:
        """Forget the file-based identity and hash the weights as they are in memory now (call
        after editing parameters in place)."""
        self.source_files = ()
        self._weights_hash = None
        return self.weights_hash

    @property
    def unembed_hash(self) -> str:
        """Hash of the head and unembedding weights; lenses carry it to refuse foreign models."""
        if self.unembed is None:
            raise MindscopeError(f"{self.name} is not a causal LM: it has no unembedding")
        h = io.hasher("blake2b")
        for mod in (*self.parts.head, self.unembed):
            for name, t in sorted(mod.state_dict().items()):
                h.update(name.encode())
                h.update(_tensor_bytes(t))
        return h.hexdigest()[:16]

    # ---------------------------------------------------------------- tokens
    def encode(self, texts: Sequence[str], *, add_special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text, exactly as extraction tokenizes them.

        Args:
            texts: the texts.
            add_special_tokens: add the tokenizer's BOS/CLS/... tokens (extraction does).

        Returns:
            one list of ids per text.
        """
        if isinstance(texts, str):
            raise MindscopeError("encode takes a list of texts, not a single string")
        out: list[list[int]] = []
        for s in range(0, len(texts), 512):
            enc = self.tokenizer(list(texts[s : s + 512]), add_special_tokens=add_special_tokens)
            out.extend(list(map(int, ids)) for ids in enc["input_ids"])
        return out

    # ---------------------------------------------------------------- forward
    @property
    def embedding_matrix(self) -> torch.Tensor:
        """The input embedding weight ``[vocab, d_model]`` (the model's own tensor, no copy)."""
        emb = self.model.get_input_embeddings()  # type: ignore[operator]
        weight = getattr(emb, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise MindscopeError(f"{self.name} has no input embedding matrix")
        return weight

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``[batch, pos, d_model]`` of ``input_ids`` ``[batch, pos]``: what
        :meth:`forward` takes as ``inputs_embeds`` (the embedding layer's output, before any
        position embedding the model adds inside)."""
        emb = self.model.get_input_embeddings()  # type: ignore[operator]
        return emb(input_ids.to(self.embedding_matrix.device))

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        grad: bool = False,
        logits_at: int | None = None,
    ) -> torch.Tensor:
        """The one forward path every instrument uses: logits ``[batch, pos, vocab]``.

        Args:
            input_ids: ``[batch, pos]`` token ids, or
            inputs_embeds: ``[batch, pos, d_model]`` input embeddings (e.g. ``one_hot @
                h.embedding_matrix``, to take gradients with respect to the input).
            attention_mask: ``[batch, pos]`` 1 for real tokens (default: all ones).
            position_ids: ``[batch, pos]`` (default: the model's own).
            grad: run with autograd on. The parameters stay frozen, so gradients flow to the
                inputs (``inputs_embeds``) and to tensors added at sites with :meth:`add`.
            logits_at: only the logits of this position (negative: from the end) are computed
                and returned, ``[batch, 1, vocab]``: the unembedding runs on one position
                (``logits_to_keep`` where the model takes it), the rest of the pass is the same.

        Returns:
            The logits, in the model's dtype; hooks from :meth:`capture`/:meth:`add` apply.
        """
        if not self.is_causal:
            raise MindscopeError(
                f"{self.name} is an encoder: it has no next-token logits; read its sites with "
                "capture() or run()"
            )
        if (input_ids is None) == (inputs_embeds is None):
            raise MindscopeError("forward takes exactly one of input_ids or inputs_embeds")
        kwargs: dict[str, Any] = {"use_cache": False}
        dev = self.embedding_matrix.device
        if input_ids is not None:
            if input_ids.ndim != 2:
                raise MindscopeError(
                    f"input_ids must be [batch, pos], got shape {tuple(input_ids.shape)}"
                )
            kwargs["input_ids"] = input_ids.to(dev)
        else:
            assert inputs_embeds is not None
            if inputs_embeds.ndim != 3 or inputs_embeds.shape[-1] != self.d_model:
                raise MindscopeError(
                    f"inputs_embeds must be [batch, pos, {self.d_model}] for {self.name}, got "
                    f"shape {tuple(inputs_embeds.shape)}"
                )
            kwargs["inputs_embeds"] = inputs_embeds.to(device=dev, dtype=self.dtype)
        n_pos = (input_ids if input_ids is not None else inputs_embeds).shape[1]  # type: ignore[union-attr]
        if self.n_ctx is not None and n_pos > self.n_ctx:
            raise MindscopeError(
                f"input has {n_pos} positions, longer than {self.name}'s context of {self.n_ctx}"
            )
        if attention_mask is not None:
            kwargs["attention_mask"] = attention_mask.to(dev)
        if position_ids is not None:
            kwargs["position_ids"] = position_ids.to(dev)
        keep = None
        if logits_at is not None:
            if not -n_pos <= int(logits_at) < n_pos:
                raise MindscopeError(f"logits_at {logits_at} out of range for {n_pos} positions")
            keep = int(logits_at) % n_pos
            if _takes_logits_to_keep(type(self.model)):  # type: ignore[arg-type]
                last = keep == n_pos - 1
                kwargs["logits_to_keep"] = 1 if last else torch.tensor([keep], device=dev)
                keep = None  # already one position
        with torch.enable_grad() if grad else torch.no_grad():
            out = self.model(**kwargs)
        logits = out.logits if hasattr(out, "logits") else first_tensor(out)
        assert isinstance(logits, torch.Tensor)
        return logits if keep is None else logits[:, keep : keep + 1]

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
    def canonical_site(self, site: str | tuple[str, int]) -> str:
        """``"resid_post.-1"`` / ``("resid_post", 5)`` / ``"embed"`` -> the canonical name."""
        if site == "embed":
            return "embed"
        kind, layer = parse_site(site, self.n_layers)
        return f"{kind}.{layer}"

    def site_point(self, site: str) -> SitePoint:
        """Where a TransformerLens-named site lives in this model (one-line error if absent)."""
        kind, layer = parse_site(site, self.n_layers)
        assert kind in SITE_KINDS
        if kind == "resid_pre":
            return SitePoint(self.parts.layers[layer], "pre")
        if kind == "resid_post":
            return SitePoint(self.parts.layers[layer], "post")
        sub = self._sub(layer, _ATTN_NAMES if kind == "attn_out" else _MLP_NAMES)
        if sub is None:
            raise MindscopeError(f"site {kind}.{layer} is not available on {self.name}")
        return SitePoint(sub, "post")

    def _site_width(self, site: str) -> int | None:
        return self.d_model

    @contextmanager
    def capture(  # type: ignore[override]
        self, sites: Sequence[str | tuple[str, int]], *, detach: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Record activations at ``sites`` during forward passes run inside the block.

        Yields a dict filled as the model runs: ``cache["resid_post.3"]`` is ``[batch, pos,
        d_model]`` (the last forward pass wins; keys are canonical site names). ``detach=False``
        keeps the autograd graph. Hooks are removed on exit, even on error.
        """
        with HookedModule.capture(
            self, [self.canonical_site(s) for s in sites], detach=detach
        ) as cache:
            yield cache

    @contextmanager
    def add(  # type: ignore[override]
        self, additions: Mapping[str | tuple[str, int], torch.Tensor] | None = None, **kw: Any
    ) -> Iterator[None]:
        """Add vectors to sites during forward passes run inside the block.

        Args:
            additions: ``{site: tensor}``, each tensor broadcastable to ``[batch, pos, d_model]``
                (e.g. a ``[d_model]`` steering vector). A tensor that requires grad receives
                gradients through :meth:`forward` with ``grad=True``.
        """
        if kw:
            raise TypeError(f"unexpected keyword arguments {sorted(kw)}")
        canon = {self.canonical_site(s): v for s, v in (additions or {}).items()}
        with HookedModule.add(self, canon):
            yield

    def head_projection(self, layer: int) -> tuple[nn.Module, int]:
        """The attention output projection of block ``layer`` and the number of heads: the
        projection's input ``[batch, pos, n_heads * d_head]`` holds the heads' outputs side by
        side (``dense`` in GPT-NeoX, ``o_proj`` in Llama, ``c_proj`` in GPT-2). One-line error
        when the block has no such projection."""
        _, layer = parse_site(("attn_out", layer), self.n_layers)
        attn = self._sub(layer, _ATTN_NAMES)
        n_heads = next(
            (
                v
                for k in ("num_attention_heads", "n_head", "num_heads")
                if isinstance(v := getattr(self.config, k, None), int)
            ),
            None,
        )
        proj = None
        for _, m in attn.named_children() if attn is not None else []:
            out = getattr(m, "out_features", getattr(m, "nf", None))
            if out == self.d_model and isinstance(getattr(m, "weight", None), torch.Tensor):
                proj = m
        if proj is None or n_heads is None:
            raise MindscopeError(f"{self.name} has no per-head attention output in layer {layer}")
        return proj, n_heads

    @contextmanager
    def heads(
        self,
        edits: Mapping[int, Callable[[torch.Tensor], torch.Tensor]] | None = None,
        capture: Sequence[int] = (),
        *,
        detach: bool = True,
    ) -> Iterator[dict[int, torch.Tensor]]:
        """Read and write attention heads' outputs ``[batch, pos, n_heads, d_head]`` (the input
        of each layer's :meth:`head_projection`) during forward passes in the block.

        Args:
            edits: ``{layer: fn}``, ``fn`` maps the heads' outputs to a tensor of the same shape.
            capture: layers whose heads' outputs are recorded (after any edit) into the
                yielded dict.
            detach: detach the recorded tensors (``False`` keeps them in the autograd graph, so
                that gradients with respect to each head's output can be taken).
        """
        cache: dict[int, torch.Tensor] = {}
        regs = []
        for layer in sorted(set(edits or {}) | set(capture)):
            proj, n_heads = self.head_projection(layer)
            fn = (edits or {}).get(layer)

            def pre(
                mod: nn.Module,
                args: tuple[Any, ...],
                kwargs: dict[str, Any],
                fn: Callable[[torch.Tensor], torch.Tensor] | None = fn,
                layer: int = layer,
                n_heads: int = n_heads,
            ) -> Any:
                x = args[0]
                z = x.reshape(*x.shape[:-1], n_heads, x.shape[-1] // n_heads)  # [b, pos, H, dh]
                if fn is not None:
                    z = fn(z)
                if layer in capture:
                    cache[layer] = z.detach() if detach else z
                return (z.reshape(x.shape), *args[1:]), kwargs

            regs.append((proj, "pre", pre))
        with hooked(regs):
            yield cache

    @contextmanager
    def edit(  # type: ignore[override]
        self, edits: Mapping[str | tuple[str, int], Callable[[torch.Tensor], torch.Tensor]]
    ) -> Iterator[None]:
        """Replace the value ``[batch, pos, d_model]`` at each site by ``fn(value)`` during
        forward passes run inside the block (``{site: fn}``; same shape out)."""
        canon = {self.canonical_site(s): fn for s, fn in edits.items()}
        if len(canon) != len(edits):
            raise MindscopeError("edit: two names for the same site")
        with HookedModule.edit(self, canon):
            yield

    def __repr__(self) -> str:
        return (
            f"ModelHandle({self.name!r}, revision={self.revision!r}, "
            f"arch={type(self.model).__name__}, n_layers={self.n_layers}, d_model={self.d_model})"
        )


@functools.lru_cache(maxsize=64)
def _takes_logits_to_keep(cls: Any) -> bool:
    """Whether a model class's ``forward`` computes logits for chosen positions only."""
    try:
        return "logits_to_keep" in inspect.signature(cls.forward).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        return False


def files_hash(paths: Sequence[Path]) -> str:
    """Hash (hex, 16 chars) of files' names and bytes, streamed in 4 MB chunks."""
    h = io.hasher("blake2b")
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode())
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()
