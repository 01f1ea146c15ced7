"""Oracle LEACE: the smallest edit given the concept label of each input (arXiv 2306.03819).

``x -> x - Sigma_xz Sigma_zz^+ (z - mean_z)``: the least-squares residual of ``x`` on the
concept. It needs ``z`` at erasure time, so it is the reference the (label-free) LEACE eraser's
distortion is compared against.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mindscope.erasure.leace import concept_matrix
from mindscope.errors import MindscopeError

__all__ = ["OracleFitter", "OracleEraser"]


@dataclass(frozen=True)
class OracleEraser:
    """``x - (z - mean_z) @ coef.T``; ``coef`` ``[d, k]``, ``mean_z`` ``[k]``."""

    coef: torch.Tensor
    mean_z: torch.Tensor

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Erase from ``x`` ``[n, d]`` given labels ``y`` ``[n]``."""
        z = concept_matrix(y, self.mean_z.shape[0] if self.mean_z.shape[0] > 1 else 2)
        expected = (z - self.mean_z) @ self.coef.T  # [n, d]
        return x - expected.to(dtype=x.dtype, device=x.device)


class OracleFitter:
    """Fits :class:`OracleEraser` (scikit-learn style; ``svd_tol`` for the pseudo-inverse)."""

    def __init__(self, *, svd_tol: float = 0.01) -> None:
        self.svd_tol = svd_tol

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> OracleFitter:
        """Fit on ``x`` ``[n, d]`` and labels ``y`` ``[n]``; sets ``eraser_``."""
        x = torch.as_tensor(x)
        z = concept_matrix(y)
        if x.ndim != 2 or x.shape[0] != z.shape[0] or x.shape[0] < 2:
            raise MindscopeError("oracle LEACE needs x [n, d] and one label per row (n >= 2)")
        xd = x.double()
        dx, dz = xd - xd.mean(0), z - z.mean(0)
        sxz = dx.T @ dz / (len(x) - 1)
        szz = dz.T @ dz / (len(x) - 1)
        self.eraser_ = OracleEraser(sxz @ torch.linalg.pinv(szz, atol=self.svd_tol), z.mean(0))
        return self
