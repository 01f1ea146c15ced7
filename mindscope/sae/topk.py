"""TopK (Gao et al. 2024) and BatchTopK (Bussmann et al. 2024) sparse autoencoders.

TopK keeps each input's ``k`` largest pre-activations. BatchTopK keeps the ``k * B`` largest of
a whole batch (inputs share the budget) and, at inference, a threshold: the running mean of the
smallest value it kept in training, so an input's latents no longer depend on its batch.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from mindscope.sae.base import Active, SparseAutoencoder

__all__ = ["TopKSAE", "BatchTopKSAE"]


class TopKSAE(SparseAutoencoder):
    """Each input keeps its ``k`` largest pre-activations (ReLU after); AuxK revives dead
    latents. Hyper-parameters: see :class:`~mindscope.sae.base.SparseAutoencoder`."""

    arch: ClassVar[str] = "topk"

    def _select(self, pre: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        top = pre.topk(self.k, dim=-1)
        rows = torch.arange(len(pre), device=pre.device).repeat_interleave(self.k)
        return rows, top.indices.reshape(-1)  # [B * k] row-major


class BatchTopKSAE(SparseAutoencoder):
    """The batch shares ``k * B`` active latents in training; inference uses the learned
    threshold ``threshold_`` (running mean of the smallest kept value).

    Args:
        threshold_momentum: weight of the old value in the threshold's running mean.
        (others: see :class:`~mindscope.sae.base.SparseAutoencoder`)
    """

    arch: ClassVar[str] = "batchtopk"
    _params: ClassVar[tuple[str, ...]] = (*SparseAutoencoder._params, "threshold_momentum")
    _extra_tensors: ClassVar[tuple[str, ...]] = ("threshold_",)

    def __init__(
        self,
        n_latents: int = 1024,
        k: int = 16,
        *,
        threshold_momentum: float = 0.99,
        **kwargs: object,
    ) -> None:
        self.threshold_momentum = threshold_momentum
        super().__init__(n_latents, k, **kwargs)  # type: ignore[arg-type]

    def _init_extra(self) -> None:
        self.threshold_ = torch.tensor(-1.0)  # unset: < 0

    def _select(self, pre: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        n = pre.shape[1]
        if train or float(self.threshold_) < 0:
            flat = pre.reshape(-1)  # [B * n_latents]
            top = flat.topk(min(self.k * len(pre), flat.numel()))
            idx = top.indices[top.values > 0].sort().values
            return idx // n, idx % n
        rows, cols = (pre > self.threshold_.to(pre)).nonzero(as_tuple=True)
        return rows, cols

    def _after_step(self, pre: Tensor, a: Active) -> None:
        vals = a.vals.detach()
        if len(vals) == 0:
            return
        low = float(vals.min())
        old = float(self.threshold_)
        m = self.threshold_momentum
        self.threshold_ = torch.tensor(low if old < 0 else m * old + (1 - m) * low)

    def _state_scalars(self) -> dict[str, object]:
        return {**super()._state_scalars()}
