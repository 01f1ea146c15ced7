"""Linear discriminant analysis reporter with covariance shrinkage."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._common import calibrate, class_means
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["LdaReporter", "ledoit_wolf_shrinkage"]


def ledoit_wolf_shrinkage(xc: Tensor) -> Tensor:
    """Ledoit-Wolf shrinkage intensity for centred data ``xc [L, n, d]``: ``[L]`` in [0, 1].

    Same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage(..., assume_centered=True)``.
    """
    n, d = xc.shape[1], xc.shape[2]
    s = xc.transpose(1, 2) @ xc / n  # [L, d, d]
    mu = torch.diagonal(s, dim1=1, dim2=2).sum(-1) / d  # [L]
    sq_norms = xc.square().sum(-1)  # [L, n]
    s_fro2 = s.square().sum((1, 2))  # [L]
    beta = (sq_norms.square().sum(-1) - n * s_fro2) / n**2  # sum_i ||x x^T - S||^2 / n^2
    delta = s_fro2 - 2 * mu * torch.diagonal(s, dim1=1, dim2=2).sum(-1) + d * mu.square()
    beta = torch.minimum(beta, delta)
    return torch.where(delta > 0, beta / delta.clamp_min(1e-300), torch.zeros_like(delta))


class LdaReporter(Reporter):
    """Fisher LDA: ``coef = Sigma_shrunk^-1 (mu1 - mu0)``, then Platt scaling.

    Args:
        shrinkage: ``"auto"`` (Ledoit-Wolf, per layer) or a float in [0, 1]; the pooled
            within-class covariance ``S`` becomes ``(1 - a) S + a * tr(S)/d * I``.
    """

    _params = ("shrinkage",)
    supervised = True
    method = "lda"

    def __init__(self, shrinkage: float | str = "auto") -> None:
        if not (
            shrinkage == "auto" or (isinstance(shrinkage, int | float) and 0 <= shrinkage <= 1)
        ):
            raise MindscopeError(f"shrinkage must be 'auto' or in [0, 1], got {shrinkage!r}")
        self.shrinkage = shrinkage

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        assert y is not None
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d]
        mu1, mu0 = class_means(f, y)  # [L, d]
        centred = f - torch.where(y.bool()[None, :, None], mu1[:, None], mu0[:, None])
        n, d = f.shape[1], f.shape[2]
        cov = centred.transpose(1, 2) @ centred / n  # [L, d, d] pooled within-class
        if self.shrinkage == "auto":
            alpha = ledoit_wolf_shrinkage(centred)  # [L]
        else:
            alpha = torch.full(
                (f.shape[0],), float(self.shrinkage), dtype=torch.float64, device=f.device
            )
        mu = torch.diagonal(cov, dim1=1, dim2=2).sum(-1) / d  # [L]
        eye = torch.eye(d, dtype=torch.float64, device=f.device)
        shrunk = (1 - alpha)[:, None, None] * cov + (alpha * mu)[:, None, None] * eye
        shrunk = shrunk + 1e-9 * mu.clamp_min(1e-12)[:, None, None] * eye
        direction = torch.linalg.solve(shrunk, (mu1 - mu0).unsqueeze(-1)).squeeze(-1)  # [L, d]
        mean = f.mean(dim=1)
        scores = torch.einsum("lnd,ld->ln", f - mean[:, None], direction)
        a, c = calibrate(scores, y)
        self.shrinkage_ = alpha.float()
        self._set_linear(
            mean[:, None], torch.ones_like(mean)[:, None], (a[:, None] * direction)[:, None], c
        )
