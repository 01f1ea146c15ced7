"""The audit instruments' access to the model: the engine's ``h.forward`` and
``h.embedding_matrix``.

Everything in :mod:`mindscope.audit.rare` and :mod:`mindscope.audit.triggers` runs the model
through these functions (one place to read for how they call the engine). The key/value-cache
paths (:func:`next_logits_grid`, :class:`PrefixCache`) belong to model access,
:mod:`mindscope.models.cache`, and are re-exported here.
"""

from __future__ import annotations

from typing import Any

import torch

from mindscope.models.cache import PrefixCache, next_logits_grid

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
