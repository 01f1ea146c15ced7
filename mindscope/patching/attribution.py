"""Attribution patching (Nanda 2023; Syed et al. 2023): the first-order estimate of every
activation patch from one clean forward, one corrupted forward and one backward pass.

``effect(site, pos) ~= (a_clean - a_corrupted) . d metric / d a`` at the corrupted run. The
gradient at every site comes from a zero tensor added there (so it needs no change to the
model): its gradient is the gradient with respect to the site's value.
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
) -> PatchResult:
    """Gradient x difference estimate of :func:`~mindscope.patching.activation_patching`.

    Same arguments and result shape as the exact version (``batch_size`` counts prompts here);
    ``method`` is ``"attribution"``.
    """
    ce, xe = prepare_inputs(h, clean, corrupted)
    n, t = ce.shape[:2]
    kinds = _kinds(h, kinds)
    layer_list = _layers(h, layers)
    answer = torch.as_tensor(answer).long().reshape(-1)
    wrong_t = None if wrong is None else torch.as_tensor(wrong).long().reshape(-1)
    if answer.shape[0] != n or (wrong_t is not None and wrong_t.shape[0] != n):
        raise MindscopeError(f"answer/wrong need one token per prompt ({n})")
    sites = [f"{k}.{layer}" for k in kinds for layer in layer_list]
    effects = {k: torch.full((n, h.n_layers, t), float("nan")) for k in kinds}
    m_clean_all, m_corr_all = [], []
    for start in range(0, n, max(1, batch_size)):
        sl = slice(start, start + batch_size)
        wr = None if wrong_t is None else wrong_t[sl]
        with h.capture(sites) as clean_acts:
            m_clean = answer_metric(
                h.forward(inputs_embeds=ce[sl]), answer[sl], wr, metric, position
            )
        clean_acts = dict(clean_acts)
        b = ce[sl].shape[0]
        zeros = {
            s: torch.zeros(b, t, h.d_model, device=h.device, dtype=h.dtype, requires_grad=True)
            for s in sites
        }
        with h.add(zeros), h.capture(sites) as corr_acts:
            logits = h.forward(inputs_embeds=xe[sl], grad=True)
        m_corr = answer_metric(logits, answer[sl], wr, metric, position)
        m_corr.sum().backward()  # rows are independent: each row's gradient is its own
        for kind in kinds:
            for layer in layer_list:
                s = f"{kind}.{layer}"
                g = zeros[s].grad
                assert g is not None
                diff = clean_acts[s] - corr_acts[s].detach()  # [b, pos, d]
                effects[kind][sl, layer] = (diff.float() * g.float()).sum(-1).cpu()
        m_clean_all.append(m_clean.detach().cpu())
        m_corr_all.append(m_corr.detach().cpu())
    return PatchResult(
        "attribution", metric, effects, torch.cat(m_clean_all), torch.cat(m_corr_all)
    )
