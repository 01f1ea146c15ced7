"""Exact activation patching over every (layer, position), batched.

For each site ``kind.L`` and each (prompt, position) the corrupted run is repeated with the
clean run's activation written at that one position; the change of the answer metric is the
component's effect. Items (prompt, position) are batched together (``batch_size`` forward rows
at a time), and an item whose clean and corrupted activations are bitwise equal (e.g. positions
before the first corrupted token) is not run: writing a value onto itself changes nothing, so
its effect is exactly 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.patching.metrics import answer_metric
from mindscope.patching.result import PatchResult

__all__ = ["activation_patching", "prepare_inputs", "PATCH_KINDS"]

PATCH_KINDS = ("resid_pre", "resid_post", "attn_out", "mlp_out")


def _embeds(h: Any, x: torch.Tensor, name: str) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise MindscopeError(f"{name} must be a tensor of token ids [n, pos] or embeddings")
    if x.dtype in (torch.int32, torch.int64):
        if x.ndim != 2:
            raise MindscopeError(f"{name} token ids must be [n, pos], got {tuple(x.shape)}")
        with torch.no_grad():
            return h.embed(x).detach()
    if x.ndim != 3 or x.shape[-1] != h.d_model:
        raise MindscopeError(
            f"{name} embeddings must be [n, pos, {h.d_model}], got {tuple(x.shape)}"
        )
    return x.to(device=h.device, dtype=h.dtype)


def prepare_inputs(
    h: Any, clean: torch.Tensor, corrupted: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as embeddings ``[n, pos, d_model]``, checked to align position by position.

    ``clean``/``corrupted`` are token ids ``[n, pos]`` or input embeddings ``[n, pos, d_model]``
    (the Gaussian-noise corruption). They must have the same shape: patching writes position
    ``p`` of one run into position ``p`` of the other, so inputs of different lengths need an
    alignment rule first (pad or trim them to align the tokens that correspond).
    """
    ce, xe = _embeds(h, clean, "clean"), _embeds(h, corrupted, "corrupted")
    if ce.shape != xe.shape:
        raise MindscopeError(
            f"clean {tuple(ce.shape[:2])} and corrupted {tuple(xe.shape[:2])} inputs differ in "
            "shape; patching needs position-aligned inputs of equal length (pad or trim them)"
        )
    if ce.shape[0] == 0:
        raise MindscopeError("patching needs at least one prompt")
    return ce, xe


def _layers(h: Any, layers: Sequence[int] | None) -> list[int]:
    if layers is None:
        return list(range(h.n_layers))
    out = []
    for layer in layers:
        if not -h.n_layers <= int(layer) < h.n_layers:
            raise MindscopeError(f"layer {layer} out of range for {h.n_layers} layers")
        out.append(int(layer) % h.n_layers)
    return out


def _kinds(h: Any, kinds: Sequence[str]) -> list[str]:
    bad = [k for k in kinds if k not in PATCH_KINDS]
    if bad or not kinds:
        raise MindscopeError(
            f"unknown patching site {bad or kinds!r}; choose from {', '.join(PATCH_KINDS)}"
        )
    for k in kinds:
        h.site_point(f"{k}.0")  # one-line error when the architecture lacks the site
    return list(kinds)


def activation_patching(
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
    """Exact activation patching of every (layer, position) of each site kind.

    Args:
        h: a :class:`~mindscope.models.ModelHandle`.
        clean: ``[n, pos]`` token ids or ``[n, pos, d_model]`` embeddings of the clean prompts.
        corrupted: the corrupted prompts, same shape (see :mod:`mindscope.patching.corrupt`).
        answer: ``[n]`` the clean answer token of each prompt.
        wrong: ``[n]`` the corrupted answer token (needed for ``logit_diff``).
        kinds: site kinds to patch (``resid_pre``, ``resid_post``, ``attn_out``, ``mlp_out``).
        layers: layers to patch (default all).
        metric: ``"logit_diff"`` or ``"prob"``, read at ``position``.
        batch_size: forward rows per pass (each row is one (prompt, position) patch).

    Returns:
        A :class:`PatchResult` with ``effects[kind]`` ``[n, n_layers, pos]``.
    """
    ce, xe = prepare_inputs(h, clean, corrupted)
    n, t = ce.shape[:2]
    kinds = _kinds(h, kinds)
    layer_list = _layers(h, layers)
    answer = torch.as_tensor(answer).long().reshape(-1)
    wrong_t = None if wrong is None else torch.as_tensor(wrong).long().reshape(-1)
    if answer.shape[0] != n or (wrong_t is not None and wrong_t.shape[0] != n):
        raise MindscopeError(f"answer/wrong need one token per prompt ({n})")
    if batch_size < 1:
        raise MindscopeError(f"batch_size must be >= 1, got {batch_size}")
    if not -t <= position < t:
        raise MindscopeError(f"position {position} out of range for {t} positions")
    sites = [f"{k}.{layer}" for k in kinds for layer in layer_list]
    with torch.inference_mode():  # no autograd bookkeeping; results cloned out of it below
        r = _exact(
            h, ce, xe, answer, wrong_t, kinds, layer_list, sites, metric, position, batch_size
        )
    return _normal(r)


def _normal(r: PatchResult) -> PatchResult:
    """``r`` with ordinary tensors (clones made outside inference mode)."""
    effects = {k: v.clone() for k, v in r.effects.items()}
    return PatchResult(r.method, r.metric, effects, r.clean.clone(), r.corrupted.clone())


def _exact(
    h: Any,
    ce: torch.Tensor,
    xe: torch.Tensor,
    answer: torch.Tensor,
    wrong_t: torch.Tensor | None,
    kinds: list[str],
    layer_list: list[int],
    sites: list[str],
    metric: str,
    position: int,
    batch_size: int,
) -> PatchResult:
    n, t = ce.shape[:2]
    with h.capture(sites) as clean_acts:
        lc = h.forward(inputs_embeds=ce, logits_at=position)
        m_clean = answer_metric(lc, answer, wrong_t, metric)
    clean_acts = dict(clean_acts)
    with h.capture(sites) as corr_acts:
        m_corr = answer_metric(
            h.forward(inputs_embeds=xe, logits_at=position), answer, wrong_t, metric
        )
    corr_acts = dict(corr_acts)
    effects = {k: torch.full((n, h.n_layers, t), float("nan")) for k in kinds}
    for kind in kinds:
        for layer in layer_list:
            site = f"{kind}.{layer}"
            a_clean, a_corr = clean_acts[site], corr_acts[site]  # [n, pos, d]
            patched = m_corr.cpu()[:, None].repeat(1, t)  # [n, pos]
            todo = (a_clean != a_corr).any(-1).nonzero()  # [items, 2]: (prompt, position)
            for chunk in todo.split(batch_size) if len(todo) else ():
                rows, pos = chunk[:, 0], chunk[:, 1]
                vals = a_clean[rows, pos]  # [b, d]
                ar = torch.arange(len(rows))

                def write(
                    x: torch.Tensor,
                    pos: torch.Tensor = pos,
                    vals: torch.Tensor = vals,
                    ar: torch.Tensor = ar,
                ) -> torch.Tensor:
                    x = x.clone()
                    x[ar, pos.to(x.device)] = vals.to(x.dtype)
                    return x

                with h.edit({site: write}):
                    logits = h.forward(inputs_embeds=xe[rows.to(xe.device)], logits_at=position)
                wr = None if wrong_t is None else wrong_t[rows]
                patched[rows, pos] = answer_metric(logits, answer[rows], wr, metric).cpu()
            effects[kind][:, layer] = patched - m_corr.cpu()[:, None]
    return PatchResult("activation", metric, effects, m_clean.cpu(), m_corr.cpu())
