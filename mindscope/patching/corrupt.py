"""Corrupted inputs for patching (Zhang & Nanda 2023 compare the two and advise reporting both).

* symmetric token replacement (STR): the corrupted prompt is the clean one with a few tokens
  swapped for tokens of the same role (``Alice`` -> ``Bob``), same length; build it with
  :func:`replace_tokens` or tokenize a second prompt list;
* Gaussian noise (GN, the ROME recipe): the clean prompt's input embeddings with
  ``N(0, (scale * sigma)^2)`` noise added at chosen positions, ``sigma`` the standard deviation
  of the embedding matrix's entries.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mindscope.errors import MindscopeError

__all__ = ["replace_tokens", "gaussian_noise", "CORRUPTIONS"]

CORRUPTIONS = ("str", "noise")


def replace_tokens(
    ids: torch.Tensor, positions: Sequence[int], new_ids: Sequence[int]
) -> torch.Tensor:
    """A copy of ``ids`` ``[batch, pos]`` with ``ids[:, positions[j]] = new_ids[j]``."""
    if len(positions) != len(new_ids):
        raise MindscopeError("replace_tokens: one new token per position")
    out = ids.clone()
    for p, t in zip(positions, new_ids, strict=True):
        out[:, p] = t
    return out


def gaussian_noise(
    embedding_matrix: torch.Tensor,
    embeds: torch.Tensor,
    positions: torch.Tensor,
    *,
    scale: float = 3.0,
    seed: int = 0,
) -> torch.Tensor:
    """Noised copy of input embeddings.

    Args:
        embedding_matrix: ``[vocab, d_model]`` (its entries' std sets the noise scale).
        embeds: ``[batch, pos, d_model]`` clean input embeddings.
        positions: ``[batch, pos]`` bool, where to add noise (e.g. the subject's tokens).
        scale: noise std in units of the embedding entries' std (ROME: 3).
        seed: the noise's seed.

    Returns:
        ``[batch, pos, d_model]``.
    """
    if positions.shape != embeds.shape[:2]:
        raise MindscopeError(
            f"noise positions must be [batch, pos] = {tuple(embeds.shape[:2])}, "
            f"got {tuple(positions.shape)}"
        )
    if not bool(positions.any()):
        raise MindscopeError("gaussian noise corruption needs at least one noised position")
    sigma = float(embedding_matrix.detach().float().std())
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(embeds.shape, generator=gen) * (scale * sigma)
    mask = positions.to(embeds.device)[..., None].to(embeds.dtype)  # [batch, pos, 1]
    return embeds + noise.to(device=embeds.device, dtype=embeds.dtype) * mask
