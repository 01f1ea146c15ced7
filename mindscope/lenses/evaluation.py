"""Evaluate lenses layer by layer: KL to the final distribution, cross-entropy and entropy.

All numbers are in nats per token. Statistics are token-weighted means over the texts, with 95%
percentile-bootstrap intervals that resample whole documents. Full-vocabulary log-probabilities
are only ever held for one batch, one layer and one chunk of tokens at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch

from mindscope.errors import MindscopeError
from mindscope.lenses.base import Lens, check_lens_for, require_causal, residual_stack
from mindscope.lenses.logit import LogitLens
from mindscope.lenses.texts import default_seq_len, doc_windows
from mindscope.models import ModelHandle
from mindscope.results import Row, stamp, to_frame

__all__ = ["evaluate", "METRICS", "bootstrap_ratio"]

METRICS = ("kl", "ce", "entropy")
"""Metrics emitted per (lens, layer): KL(final || lens), next-token cross-entropy, entropy."""


def _lenses(h: ModelHandle, lens: Lens | Sequence[Lens] | None) -> list[Lens]:
    given: list[Lens] = [] if lens is None else [lens] if isinstance(lens, Lens) else list(lens)
    for x in given:
        check_lens_for(h, x)
    if not any(x.method == "logit_lens" for x in given):
        given.insert(0, LogitLens(h))
    return given


def bootstrap_ratio(
    sums: torch.Tensor, counts: torch.Tensor, n_boot: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Percentile-bootstrap 95% interval of ``sum(sums) / sum(counts)`` resampling documents.

    Args:
        sums: ``[m, n_docs]`` per-document sums of ``m`` statistics.
        counts: ``[m, n_docs]`` per-document token counts.

    Returns:
        ``(low, high)``, each ``[m]`` (NaN when there are fewer than two documents).
    """
    m, n_docs = sums.shape
    if n_docs < 2 or n_boot < 1:
        nan = torch.full((m,), math.nan, dtype=torch.float64)
        return nan, nan.clone()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(n_docs, (n_boot, n_docs), generator=gen)  # [n_boot, n_docs]
    w = torch.zeros(n_boot, n_docs, dtype=torch.float64)
    w.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))  # resample counts
    est = (w @ sums.double().T) / (w @ counts.double().T).clamp_min(1e-12)  # [n_boot, m]
    q = torch.tensor([0.025, 0.975], dtype=torch.float64)
    lo, hi = torch.quantile(est, q, dim=0)
    return lo, hi


@torch.no_grad()
def evaluate(
    h: ModelHandle,
    lens: Lens | Sequence[Lens] | None,
    texts: Sequence[str],
    *,
    batch_size: int = 8,
    seq_len: int | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    dataset: str = "",
    split: str = "",
    max_chunk_elements: int = 2**24,
    progress: bool = False,
) -> pd.DataFrame:
    """Per-layer KL, cross-entropy and entropy (nats) of the logit lens and ``lens``.

    Args:
        h: the model.
        lens: a tuned lens, a list of lenses, or ``None``; the logit lens is always included.
        texts: documents; each is tokenised alone and cut into ``seq_len``-token windows.
        batch_size: windows per forward pass.
        seq_len: window length (default ``min(512, model context)``).
        n_boot: bootstrap resamples (over documents) for the 95% intervals.

    Returns:
        A results table (:func:`mindscope.results.to_frame`): one row per method
        (``"logit_lens"``, ``"tuned_lens"``), metric (``"kl"``, ``"ce"``, ``"entropy"``) and
        layer ``k = 0..n_layers``; ``n`` = documents; ``extra`` = ``{"unit": "nats", "tokens"}``.
    """
    require_causal(h)
    lenses = _lenses(h, lens)
    if batch_size < 1:
        raise MindscopeError(f"batch_size must be >= 1, got {batch_size}")
    seq_len = seq_len or default_seq_len(h.n_ctx)
    win = doc_windows(h.tokenizer, texts, seq_len)
    n_k = h.n_layers + 1
    n_docs = win.n_docs
    # sums[lens, metric, layer, doc]; counts per doc for kl/entropy and for ce
    sums = torch.zeros(len(lenses), len(METRICS), n_k, n_docs, dtype=torch.float64)
    n_tok = torch.zeros(n_docs, dtype=torch.float64)
    n_next = torch.zeros(n_docs, dtype=torch.float64)
    vocab = h.vocab_size
    chunk = max(1, max_chunk_elements // vocab)

    from tqdm.auto import tqdm

    starts = range(0, win.input_ids.shape[0], batch_size)
    for s in tqdm(starts, desc="lens eval", disable=not progress, unit="batch"):
        ids = win.input_ids[s : s + batch_size]  # [b, T]
        mask = win.mask[s : s + batch_size]  # [b, T]
        resid, logits = residual_stack(h, ids, mask)  # [K, b, T, d], [b, T, V]
        sel = mask.flatten().to(resid.device)  # real tokens, [b*T]
        # next-token labels within each window (-1 where none)
        labels = torch.full_like(ids, -1)
        labels[:, :-1] = torch.where(mask[:, 1:], ids[:, 1:], -1)
        labels = labels.flatten()[mask.flatten()]  # [n]
        doc = win.doc[s : s + batch_size].unsqueeze(1).expand_as(ids).flatten()[mask.flatten()]
        n_tok.index_add_(0, doc, torch.ones_like(doc, dtype=torch.float64))
        has_next = labels >= 0
        n_next.index_add_(0, doc[has_next], torch.ones(int(has_next.sum()), dtype=torch.float64))
        final = logits.flatten(0, 1)[sel]  # [n, V]
        r_all = resid.flatten(1, 2)[:, sel]  # [K, n, d]
        for c in range(0, final.shape[0], chunk):
            logp = final[c : c + chunk].float().log_softmax(-1)  # [c, V]
            p = logp.exp()
            lab = labels[c : c + chunk].to(logp.device)
            ok = lab >= 0
            d_c = doc[c : c + chunk]
            for li, ln in enumerate(lenses):
                for k in range(n_k):
                    logq = ln.logits(r_all[k, c : c + chunk], k).float().log_softmax(-1)
                    kl = (p * (logp - logq)).sum(-1)  # [c]
                    ent = -(logq.exp() * logq).sum(-1)  # [c]
                    ce = -logq.gather(-1, lab.clamp_min(0).unsqueeze(-1)).squeeze(-1)  # [c]
                    sums[li, 0, k].index_add_(0, d_c, kl.double().cpu())
                    sums[li, 1, k].index_add_(0, d_c[ok.cpu()], ce[ok].double().cpu())
                    sums[li, 2, k].index_add_(0, d_c, ent.double().cpu())
    if n_tok.sum() == 0:
        raise MindscopeError("no tokens to evaluate")
    flat = sums.flatten(0, 2)  # [lens*metric*layer, n_docs]
    counts = torch.stack([n_tok, n_next, n_tok])  # [metric, n_docs]
    cnt = counts.unsqueeze(0).unsqueeze(2).expand(len(lenses), -1, n_k, -1).flatten(0, 2)
    value = flat.sum(-1) / cnt.sum(-1).clamp_min(1e-12)
    lo, hi = bootstrap_ratio(flat, cnt, n_boot, seed)
    rows: list[Row] = []
    i = 0
    extra_base: dict[str, Any] = {"unit": "nats", "tokens": int(n_tok.sum())}
    for ln in lenses:
        for metric in METRICS:
            for k in range(n_k):
                rows.append(
                    Row(
                        metric=metric,
                        value=float(value[i]),
                        method=ln.method,
                        layer=k,
                        dataset=dataset,
                        split=split,
                        ci_low=float(lo[i]),
                        ci_high=float(hi[i]),
                        n=n_docs,
                        _extra=extra_base
                        if metric != "ce"
                        else {**extra_base, "tokens": int(n_next.sum())},
                    )
                )
                i += 1
    return stamp(to_frame(rows), h)
