"""Exact patching of attention heads: each head's output (the input of the attention output
projection, ``[batch, pos, n_heads, d_head]``) written from the clean run into the corrupted
run at every position at once, per (layer, head), batched over prompts and heads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.patching.exact import _layers, _normal, prepare_inputs
from mindscope.patching.metrics import answer_metric
from mindscope.patching.result import PatchResult

__all__ = ["head_patching"]


def head_patching(
    h: Any,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    answer: torch.Tensor,
    wrong: torch.Tensor | None = None,
    *,
    layers: Sequence[int] | None = None,
    metric: str = "logit_diff",
    position: int = -1,
    batch_size: int = 256,
) -> PatchResult:
    """Exact patching of every head of ``layers`` (all positions of a head at once).

    Same inputs as :func:`~mindscope.patching.activation_patching`. Returns a
    :class:`PatchResult` whose ``effects["head"]`` is ``[n, n_layers, n_heads]`` (the last axis
    is the head, not a position; :meth:`PatchResult.to_rows` writes it as ``extra.head``).
    """
    ce, xe = prepare_inputs(h, clean, corrupted)
    n = ce.shape[0]
    layer_list = _layers(h, layers)
    answer = torch.as_tensor(answer).long().reshape(-1)
    wrong_t = None if wrong is None else torch.as_tensor(wrong).long().reshape(-1)
    if answer.shape[0] != n or (wrong_t is not None and wrong_t.shape[0] != n):
        raise MindscopeError(f"answer/wrong need one token per prompt ({n})")
    if not -ce.shape[1] <= position < ce.shape[1]:
        raise MindscopeError(f"position {position} out of range for {ce.shape[1]} positions")
    n_heads = h.head_projection(layer_list[0])[1]
    with torch.inference_mode():  # no autograd bookkeeping; results cloned out of it below
        r = _heads(h, ce, xe, answer, wrong_t, layer_list, n_heads, metric, position, batch_size)
    return _normal(r)


def _heads(
    h: Any,
    ce: torch.Tensor,
    xe: torch.Tensor,
    answer: torch.Tensor,
    wrong_t: torch.Tensor | None,
    layer_list: list[int],
    n_heads: int,
    metric: str,
    position: int,
    batch_size: int,
) -> PatchResult:
    n = ce.shape[0]
    with h.heads(capture=layer_list) as clean_z:
        lc = h.forward(inputs_embeds=ce, logits_at=position)
        m_clean = answer_metric(lc, answer, wrong_t, metric)
    clean_z = dict(clean_z)
    m_corr = answer_metric(h.forward(inputs_embeds=xe, logits_at=position), answer, wrong_t, metric)
    effects = torch.full((n, h.n_layers, n_heads), float("nan"))
    items = torch.cartesian_prod(torch.arange(n), torch.arange(n_heads))  # [n * H, 2]
    for layer in layer_list:
        patched = torch.empty(n, n_heads)
        for chunk in items.split(batch_size):
            rows, head = chunk[:, 0], chunk[:, 1]
            vals = clean_z[layer][rows, :, head]  # [b, pos, d_head]
            ar = torch.arange(len(rows))

            def write(
                z: torch.Tensor,
                head: torch.Tensor = head,
                vals: torch.Tensor = vals,
                ar: torch.Tensor = ar,
            ) -> torch.Tensor:
                z = z.clone()
                z[ar, :, head.to(z.device)] = vals.to(z.dtype)
                return z

            with h.heads(edits={layer: write}):
                logits = h.forward(inputs_embeds=xe[rows.to(xe.device)], logits_at=position)
            wr = None if wrong_t is None else wrong_t[rows]
            patched[rows, head] = answer_metric(logits, answer[rows], wr, metric).cpu()
        effects[:, layer] = patched - m_corr.cpu()[:, None]
    return PatchResult("activation", metric, {"head": effects}, m_clean.cpu(), m_corr.cpu())
