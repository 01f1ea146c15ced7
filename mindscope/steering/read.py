"""Read steering vectors from contrast pairs: mean difference (CAA) and PCA of differences
(repeng)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.steering.vector import SteeringVector

__all__ = ["read_last", "mean_difference", "pca_difference", "pad_batch"]


def pad_batch(
    h: Any, ids: Sequence[Sequence[int]], side: str = "right"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to ``[batch, pos]`` ids and attention mask (``side``: right or left)."""
    if side not in ("right", "left"):
        raise MindscopeError(f"padding side must be 'right' or 'left', got {side!r}")
    pad = h.tokenizer.pad_token_id or 0
    width = max(len(s) for s in ids)
    x = torch.full((len(ids), width), int(pad), dtype=torch.long)
    m = torch.zeros((len(ids), width), dtype=torch.long)
    for i, s in enumerate(ids):
        if side == "right":
            x[i, : len(s)], m[i, : len(s)] = torch.tensor(s), 1
        else:
            x[i, width - len(s) :], m[i, width - len(s) :] = torch.tensor(s), 1
    return x, m


def read_last(h: Any, texts: Sequence[str], site: str, *, batch_size: int = 64) -> torch.Tensor:
    """Activations ``[n, d_model]`` at ``site`` at each text's last token (float32, CPU)."""
    if not texts:
        raise MindscopeError("no texts to read activations from")
    site = h.canonical_site(site)
    out = []
    for s in range(0, len(texts), batch_size):
        ids = h.encode(list(texts[s : s + batch_size]))
        x, m = pad_batch(h, ids)
        last = m.sum(1) - 1  # [b]
        with h.capture([site]) as cache:
            h.forward(x, attention_mask=m)
        out.append(cache[site][torch.arange(len(ids)), last.to(cache[site].device)].float().cpu())
    return torch.cat(out)


def _diffs(h: Any, positive: Sequence[str], negative: Sequence[str], site: str) -> torch.Tensor:
    if len(positive) != len(negative) or not positive:
        raise MindscopeError(
            f"contrast pairs need as many positive as negative texts (got {len(positive)} and "
            f"{len(negative)}, at least one)"
        )
    return read_last(h, positive, site) - read_last(h, negative, site)  # [n, d]


def mean_difference(
    h: Any, positive: Sequence[str], negative: Sequence[str], site: str
) -> SteeringVector:
    """CAA (Rimsky et al. 2024): mean over pairs of ``act(positive) - act(negative)`` at the last
    token of each text, at ``site``."""
    diffs = _diffs(h, positive, negative, site)
    return SteeringVector(
        h.canonical_site(site), diffs.mean(0), h.weights_hash, "caa", {"n_pairs": len(diffs)}
    )


def pca_difference(
    h: Any, positive: Sequence[str], negative: Sequence[str], site: str
) -> SteeringVector:
    """repeng's ``pca_diff``: the first principal component of the (centred) pair differences,
    signed so that positives project above negatives on most pairs, scaled to the norm of the
    mean difference (repeng leaves it unit-norm; scale with the multiplier either way)."""
    diffs = _diffs(h, positive, negative, site)
    centred = diffs - diffs.mean(0)
    _, _, vh = torch.linalg.svd(centred.double(), full_matrices=False)
    direction = vh[0].float()  # [d]
    if float((diffs @ direction > 0).float().mean()) < 0.5:
        direction = -direction
    scale = float(diffs.mean(0).norm())
    return SteeringVector(
        h.canonical_site(site),
        direction * scale,
        h.weights_hash,
        "pca",
        {"n_pairs": len(diffs)},
    )
