"""Attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate of every
activation patch from one clean forward, one corrupted forward and one backward pass.

``effect(site, pos) ~= (a_clean - a_corrupted) . d metric / d a`` at the corrupted run. The
corrupted run keeps its site values in the autograd graph and one backward pass gives the
gradient at all of them (``torch.autograd.grad``; the parameters stay frozen, so no weight
gradient is computed). Both runs compute logits at the answer position only. Per attention
head (``heads=True``), the same product over the head's output ``[pos, d_head]`` (the input
of the attention output projection) estimates patching that head at every position at once,
as :func:`~mindscope.patching.head_patching` does exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.patching.exact import _kinds, _layers, prepare_inputs
from mindscope.patching.metrics import answer_metric
from mindscope.patching.result import PatchResult

__all__ = ["attribution_patching"]


def attribution_patching(
    h: Any,
    clean: torch.Tensor,
    corrupted: torch.Tensor,
    answer: torch.Tensor,
    wrong: torch.Tensor | None = None,
    *,
    kinds: Sequence[str] = ("resid_pre",),
    layers: Sequence[int] | None = None,
    metric: str = "logit_diff",
    position: int = -1,
    batch_size: int = 256,
    heads: bool = False,
) -> PatchResult:
    """Gradient x difference estimate of :func:`~mindscope.patching.activation_patching`.

    Same arguments and result shape as the exact version (``batch_size`` counts prompts here);
    ``method`` is ``"attribution"``. With ``heads=True`` the result also holds
    ``effects["head"]`` ``[n, n_layers, n_heads]``, the estimate of
    :func:`~mindscope.patching.head_patching` (``kinds`` may then be empty).
    """
    ce, xe = prepare_inputs(h, clean, corrupted)
    n, t = ce.shape[:2]
    kinds = _kinds(h, kinds) if (kinds or not heads) else []
    layer_list = _layers(h, layers)
    answer = torch.as_tensor(answer).long().reshape(-1)
    wrong_t = None if wrong is None else torch.as_tensor(wrong).long().reshape(-1)
    if answer.shape[0] != n or (wrong_t is not None and wrong_t.shape[0] != n):
        raise MindscopeError(f"answer/wrong need one token per prompt ({n})")
    if not -t <= position < t:
        raise MindscopeError(f"position {position} out of range for {t} positions")
    sites = [f"{k}.{layer}" for k in kinds for layer in layer_list]
    head_layers = layer_list if heads else []
    n_heads = h.head_projection(layer_list[0])[1] if heads else 0
    effects = {k: torch.full((n, h.n_layers, t), float("nan")) for k in kinds}
    if heads:
        effects["head"] = torch.full((n, h.n_layers, n_heads), float("nan"))
    m_clean_all, m_corr_all = [], []
    for start in range(0, n, max(1, batch_size)):
        sl = slice(start, start + batch_size)
        wr = None if wrong_t is None else wrong_t[sl]
        with (
            torch.inference_mode(),
            h.capture(sites) as clean_acts,
            h.heads(capture=head_layers) as clean_z,
        ):
            lc = h.forward(inputs_embeds=ce[sl], logits_at=position)
            m_clean = answer_metric(lc, answer[sl], wr, metric)
        # the corrupted run, its site values kept in the graph (the input starts it)
        x = xe[sl].detach().requires_grad_(True)
        with (
            h.capture(sites, detach=False) as corr_acts,
            h.heads(capture=head_layers, detach=False) as corr_z,
        ):
            lx = h.forward(inputs_embeds=x, grad=True, logits_at=position)
        m_corr = answer_metric(lx, answer[sl], wr, metric)
        wrt = [corr_acts[s] for s in sites] + [corr_z[layer] for layer in head_layers]
        # rows are independent: the gradient of the sum is each row's own gradient
        grads = torch.autograd.grad(m_corr.sum(), wrt, allow_unused=True)
        for i, s in enumerate(sites):
            kind, site_layer = s.rsplit(".", 1)
            g = grads[i]
            diff = clean_acts[s] - corr_acts[s].detach()  # [b, pos, d]
            est = (diff * g).sum(-1) if g is not None else torch.zeros(diff.shape[:2])
            effects[kind][sl, int(site_layer)] = est.float().cpu()
        for j, layer in enumerate(head_layers):
            g = grads[len(sites) + j]  # [b, pos, H, dh]
            dz = clean_z[layer] - corr_z[layer].detach()
            est = (dz * g).sum((1, 3)) if g is not None else torch.zeros(dz.shape[0], n_heads)
            effects["head"][sl, layer] = est.float().cpu()
        m_clean_all.append(m_clean.clone().cpu())  # a normal tensor, not an inference one
        m_corr_all.append(m_corr.detach().cpu())
    return PatchResult(
        "attribution", metric, effects, torch.cat(m_clean_all), torch.cat(m_corr_all)
    )
