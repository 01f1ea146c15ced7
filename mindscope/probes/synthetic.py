"""Synthetic contrast-pair activations with a planted truth direction.

Used by the tests, the docs and the benchmark: the ground truth (the planted direction) is
known, so a reporter can be scored by the cosine between its direction and the truth.
"""

from __future__ import annotations

import torch

__all__ = ["planted_pairs"]


def planted_pairs(
    n: int,
    d: int = 24,
    layers: int = 3,
    *,
    strength: float = 1.0,
    distractor_std: float = 4.0,
    noise: float = 0.5,
    side_offset: float = 3.0,
    seed: int = 0,
    direction_seed: int = 123,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``x [layers, n, 2, d]``, labels ``y [n]`` and the unit truth directions ``[layers, d]``.

    Each pair shares a content vector and a high-variance distractor (same for both sides);
    side 1 gets ``+strength/2 * sign * t`` and side 0 ``-strength/2 * sign * t`` where
    ``sign = 2y - 1``; each side adds isotropic noise. Every side-1 text also carries a fixed
    offset ``+side_offset/2 * o`` and every side-0 text ``-side_offset/2 * o`` (a direction
    ``o`` independent of the truth), as the tokens " True" / " False" do in a real model: a
    reporter must normalise each side (CCS) or difference the pair to ignore it.
    """
    g_dir = torch.Generator().manual_seed(direction_seed)
    truth = torch.randn(layers, d, generator=g_dir)
    truth /= truth.norm(dim=-1, keepdim=True)
    distractor = torch.randn(layers, d, generator=g_dir)
    distractor /= distractor.norm(dim=-1, keepdim=True)
    offset_dir = torch.randn(layers, d, generator=g_dir)
    offset_dir /= offset_dir.norm(dim=-1, keepdim=True)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    sign = (2 * y - 1).float()
    shared = (
        0.5 * torch.randn(layers, n, 1, d, generator=g)
        + distractor_std * torch.randn(layers, n, 1, 1, generator=g) * distractor[:, None, None, :]
    )
    side = torch.tensor([-0.5, 0.5])[None, None, :, None] * strength
    x = (
        shared
        + noise * torch.randn(layers, n, 2, d, generator=g)
        + side * sign[None, :, None, None] * truth[:, None, None, :]
        + torch.tensor([-0.5, 0.5])[None, None, :, None]
        * side_offset
        * offset_dir[:, None, None, :]
    )
    return x, y, truth
