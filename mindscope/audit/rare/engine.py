"""The one adapter between the audit instruments and the model engine.

Everything in :mod:`mindscope.audit.rare` and :mod:`mindscope.audit.triggers` runs the model
through these two functions, so switching to the engine's ``h.forward`` / ``h.embedding_matrix``
is one edit here.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["next_logits", "embedding_matrix", "forward_logits"]


def embedding_matrix(h: Any) -> torch.Tensor:
    """The input embedding weight ``[vocab, d_model]`` (no copy)."""
    if hasattr(h, "embedding_matrix"):
        w = h.embedding_matrix
    else:
        w = h.model.get_input_embeddings().weight
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
    ``[batch, pos, d_model]``; ``grad=True`` keeps autograd on (parameters stay frozen)."""
    kw = {"attention_mask": attention_mask, "position_ids": position_ids}
    if hasattr(h, "forward") and callable(getattr(h, "forward", None)):
        out = h.forward(input_ids, inputs_embeds=inputs_embeds, grad=grad, **kw)
        assert isinstance(out, torch.Tensor)
        return out
    ctx = torch.enable_grad() if grad else torch.inference_mode()
    with ctx:
        if inputs_embeds is not None:
            out = h.model(inputs_embeds=inputs_embeds, use_cache=False, **kw)
        else:
            out = h.model(input_ids=input_ids, use_cache=False, **kw)
    logits = out.logits
    assert isinstance(logits, torch.Tensor)
    return logits


def next_logits(h: Any, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of the next token after each sequence: ids ``[batch, pos]`` -> ``[batch, vocab]``
    (float32, no autograd)."""
    ids = input_ids.to(h.device)
    return forward_logits(h, ids)[:, -1].float()
