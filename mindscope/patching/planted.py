"""The planted-circuit organism: a tiny GPT-NeoX whose causal paths are set by hand.

Random weights, then every attention block's output projection is zeroed except in one layer
(``attn_layer``), and the MLP output projections are zeroed except in ``mlp_layers``. Tokens can
then exchange information only in ``attn_layer``, so when the corrupted prompt differs from the
clean one at positions ``K`` and the answer is read at the last position ``T-1``, the components
through which the difference reaches the answer are known by construction
(:meth:`PlantedCircuit.truth`):

* ``resid_pre.l`` at ``K`` for ``l <= attn_layer``, at ``T-1`` for ``l > attn_layer``;
* ``resid_post.l`` at ``K`` for ``l < attn_layer``, at ``T-1`` for ``l >= attn_layer``;
* ``attn_out.attn_layer`` at ``T-1``;
* ``mlp_out.l`` (open ``l``) at ``K`` for ``l < attn_layer``, at ``T-1`` for ``l > attn_layer``
  (GPT-NeoX's parallel residual: the MLP of ``attn_layer`` reads the same input as its
  attention, so it sees the difference only where the tokens differ).

Every other component carries exactly nothing (its clean and corrupted values are equal, or
nothing downstream reads it). With a position in ``K`` equal to ``T-1`` the rules overlap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["PlantedCircuit", "planted_circuit"]

_CHARS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class PlantedCircuit:
    """A hand-wired model and the rule giving its causal components.

    Attributes:
        handle: the :class:`~mindscope.models.ModelHandle`.
        attn_layer: the one layer whose attention writes to the residual stream.
        mlp_layers: the layers whose MLP writes.
    """

    handle: Any
    attn_layer: int
    mlp_layers: tuple[int, ...]

    def truth(self, changed: Iterable[int], length: int) -> set[tuple[str, int, int]]:
        """The components ``(kind, layer, position)`` through which a change of the tokens at
        positions ``changed`` reaches the answer read at position ``length - 1``."""
        k = {int(p) % length for p in changed}
        last = length - 1
        n, a = self.handle.n_layers, self.attn_layer
        out: set[tuple[str, int, int]] = set()
        for layer in range(n):
            pre = k if layer <= a else {last}
            out |= {("resid_pre", layer, p) for p in pre}
            post = k if layer < a else {last}
            out |= {("resid_post", layer, p) for p in post}
            if layer in self.mlp_layers and layer != a:
                out |= {("mlp_out", layer, p) for p in (k if layer < a else {last})}
            if layer == a and last in k and layer in self.mlp_layers:
                out.add(("mlp_out", layer, last))
        out.add(("attn_out", a, last))
        return out


def planted_circuit(
    *,
    n_layers: int = 4,
    d_model: int = 32,
    n_heads: int = 4,
    attn_layer: int = 1,
    mlp_layers: Sequence[int] = (0, 2, 3),
    init_std: float = 0.2,
    seed: int = 0,
) -> PlantedCircuit:
    """Build the planted-circuit organism (no training; about 50 ms).

    Args:
        n_layers, d_model, n_heads: shape of the GPT-NeoX.
        attn_layer: the layer whose attention is kept.
        mlp_layers: the layers whose MLPs are kept.
        init_std: std of the random weights (larger than the usual 0.02 so that every open path
            moves the logits visibly).
        seed: the weights' seed.
    """
    from mindscope.errors import MindscopeError
    from mindscope.models import wrap_model
    from mindscope.organisms.neox import ModelShape, build_model
    from mindscope.organisms.tokenization import to_hf, word_level_tokenizer

    if not 0 <= attn_layer < n_layers or any(not 0 <= m < n_layers for m in mlp_layers):
        raise MindscopeError(f"attn_layer and mlp_layers must lie in 0..{n_layers - 1}")
    tok = to_hf(word_level_tokenizer([], _CHARS))
    shape = ModelShape(
        n_layers=n_layers, d_model=d_model, n_heads=n_heads, d_mlp=4 * d_model, max_len=64
    )
    model = build_model(shape, len(tok), int(tok.eos_token_id), seed)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 2 and "layernorm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * init_std)
        blocks: Any = model.gpt_neox.layers
        for layer, block in enumerate(blocks):
            if layer != attn_layer:
                block.attention.dense.weight.zero_()
                block.attention.dense.bias.zero_()
            if layer not in mlp_layers:
                block.mlp.dense_4h_to_h.weight.zero_()
                block.mlp.dense_4h_to_h.bias.zero_()
    h = wrap_model(model, tok, name="organism:planted-circuit")
    return PlantedCircuit(h, attn_layer, tuple(int(m) for m in mlp_layers))
