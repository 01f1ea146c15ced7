"""What every lens shares: the layer convention and running the model once for all layers.

Layer ``k`` runs from 0 to ``n_layers``: ``k = 0`` is the embedding output (``resid_pre.0``),
``k = i + 1`` is ``resid_post.i``, before the final norm. Hugging Face's ``hidden_states[k]``
agrees for ``k < n_layers``; transformers 5 puts the *post*-norm output in
``hidden_states[n_layers]``. At ``k = n_layers`` every lens is the model itself.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from mindscope.errors import MindscopeError
from mindscope.models import ModelHandle

__all__ = [
    "Lens",
    "require_causal",
    "check_lens_for",
    "layer_sites",
    "residual_stack",
    "check_layer",
]


@runtime_checkable
class Lens(Protocol):
    """A map from layer ``k``'s residual stream to next-token logits."""

    method: str
    """Name used in the results table (``"logit_lens"``, ``"tuned_lens"``)."""

    @property
    def n_layers(self) -> int:
        """Number of blocks of the model the lens reads."""
        ...

    def transform(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """``[..., d_model]`` residual at layer ``k`` -> ``[..., d_model]`` final-layer estimate."""
        ...

    def logits(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """``[..., d_model]`` residual at layer ``k`` -> ``[..., vocab]`` logits."""
        ...


def require_causal(h: ModelHandle) -> None:
    """Raise a one-line error unless ``h`` is a causal LM with an unembedding."""
    if not h.is_causal or h.unembed is None:
        raise MindscopeError(
            f"{h.name} is not a causal language model (no unembedding): lenses need a decoder"
        )


def check_lens_for(h: ModelHandle, lens: Lens) -> None:
    """Raise unless ``lens`` decodes with ``h`` (same layer count and unembedding)."""
    if not isinstance(lens, Lens):
        raise TypeError(f"not a lens: {type(lens).__name__}")
    if lens.n_layers != h.n_layers:
        raise MindscopeError(
            f"lens has {lens.n_layers} layers but {h.name} has {h.n_layers}: wrong model"
        )
    other = getattr(lens, "handle", h)
    if other is not h and other.unembed_hash != h.unembed_hash:
        raise MindscopeError(f"lens was built for {other.name}, not {h.name}: wrong model")


def check_layer(layer: int, n_layers: int) -> int:
    """Validate a lens layer index ``k`` in ``0..n_layers`` (negative counts from the end)."""
    if not isinstance(layer, int) or isinstance(layer, bool):
        raise TypeError(f"a layer index is an int, got {type(layer).__name__}")
    if not -(n_layers + 1) <= layer <= n_layers:
        raise MindscopeError(f"layer {layer} out of range 0..{n_layers} for this model")
    return layer % (n_layers + 1)


def layer_sites(n_layers: int) -> list[str]:
    """Site names of layers ``k = 0..n_layers`` (``embed``, ``resid_post.0``, ...)."""
    return ["embed"] + [f"resid_post.{i}" for i in range(n_layers)]


@torch.no_grad()
def residual_stack(
    h: ModelHandle, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the model once and return the residual stream at every layer and its logits.

    Args:
        input_ids: ``[batch, pos]`` token ids.
        attention_mask: ``[batch, pos]`` (1 = real token), or ``None``.

    Returns:
        ``(resid, logits)``: ``resid`` is ``[n_layers + 1, batch, pos, d_model]`` (layer ``k``
        first), ``logits`` is the model's output ``[batch, pos, vocab]``.
    """
    sites = layer_sites(h.n_layers)
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    kwargs = {
        "input_ids": input_ids.to(h.device),
        "attention_mask": attention_mask.to(h.device).long(),
        "use_cache": False,
    }
    with h.capture(sites) as cache:
        out = h.model(**kwargs)
    keys = ["embed"] + [f"resid_post.{i}" for i in range(h.n_layers)]
    resid = torch.stack([cache[k] for k in keys])  # [n_layers + 1, batch, pos, d_model]
    return resid, out.logits
