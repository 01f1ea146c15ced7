"""Random-direction baseline reporter."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.probes._common import calibrate
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["RandomReporter"]


class RandomReporter(Reporter):
    """A uniformly random unit direction per layer (seeded); labels only fix sign and scale.

    The chance-level reference every other reporter should beat. Works on pairs (pair
    differences) and single texts.

    Args:
        seed: seed of the random directions.
    """

    _params = ("seed",)
    supervised = False
    method = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d]
        gen = torch.Generator().manual_seed(self.seed)
        direction = torch.randn(f.shape[0], f.shape[2], generator=gen, dtype=torch.float64)
        direction = direction.to(f.device)
        direction = direction / direction.norm(dim=-1, keepdim=True)  # [L, d]
        mean = f.mean(dim=1)
        scores = torch.einsum("lnd,ld->ln", f - mean[:, None], direction)
        a, c = calibrate(scores, y)
        self._set_linear(
            mean[:, None], torch.ones_like(mean)[:, None], (a[:, None] * direction)[:, None], c
        )
