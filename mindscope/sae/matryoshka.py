"""Matryoshka BatchTopK sparse autoencoder (Bussmann et al. 2025; Nabeshima 2024).

Nested prefixes of the dictionary (the first 1/16, 1/8, ... of the latents) must each
reconstruct the input on their own; the loss is the mean of the prefixes' reconstruction
losses, so early latents learn general features and later ones refine them, which resists
feature absorption in hierarchies.
"""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.sae.base import Active
from mindscope.sae.topk import BatchTopKSAE

__all__ = ["MatryoshkaSAE"]


class MatryoshkaSAE(BatchTopKSAE):
    """BatchTopK with a nested (Matryoshka) reconstruction loss.

    Args:
        prefixes: increasing fractions of ``n_latents`` whose prefixes are trained to
            reconstruct on their own (the last must be 1.0).
        (others: see :class:`~mindscope.sae.topk.BatchTopKSAE`)
    """

    arch: ClassVar[str] = "matryoshka"
    _params: ClassVar[tuple[str, ...]] = (*BatchTopKSAE._params, "prefixes")

    def __init__(
        self,
        n_latents: int = 1024,
        k: int = 16,
        *,
        prefixes: tuple[float, ...] | list[float] = (0.0625, 0.125, 0.25, 0.5, 1.0),
        **kwargs: object,
    ) -> None:
        self.prefixes = [float(p) for p in prefixes]
        super().__init__(n_latents, k, **kwargs)  # type: ignore[arg-type]

    def _validate(self) -> None:
        super()._validate()
        p = self.prefixes
        if (
            not p
            or p[-1] != 1.0
            or any(b <= a for a, b in zip(p, p[1:], strict=False))
            or p[0] <= 0
        ):
            raise MindscopeError(f"prefixes must increase in (0, 1] and end at 1.0, got {p}")

    def _sizes(self) -> list[int]:
        return sorted({max(1, round(f * self.n_latents)) for f in self.prefixes})

    def _recon_loss(
        self, tn: Tensor, a: Active, params: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        losses = []
        x_hat = tn
        for m in self._sizes():
            part = Active(a.rows, a.cols, a.vals * (a.cols < m))
            x_hat = self._decode_active(part, params["W_dec_"], len(tn)) + params["b_dec_"]
            losses.append((x_hat - tn).pow(2).sum(-1).mean())
        return sum(losses) / len(losses), x_hat  # type: ignore[return-value]
