"""Linear discriminant analysis reporter with covariance shrinkage."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.covariance import ClassMoments, StreamingMoments, shrink
from mindscope.covariance import ledoit_wolf_shrinkage as _lw_moments
from mindscope.errors import MindscopeError
from mindscope.probes._common import calibrate
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["LdaReporter", "ledoit_wolf_shrinkage"]


def ledoit_wolf_shrinkage(xc: Tensor) -> Tensor:
    """Ledoit-Wolf shrinkage intensity for centred data ``xc [L, n, d]``: ``[L]`` in [0, 1].

    Same estimator as ``sklearn.covariance.ledoit_wolf_shrinkage(..., assume_centered=True)``;
    computed through :mod:`mindscope.covariance` (the moments the detectors use).
    """
    xc = xc.double()
    n = xc.shape[1]
    s = xc.transpose(1, 2) @ xc / n  # [L, d, d]
    c = xc.square().sum(-1).square().sum(-1)  # [L] sum_i |x_i|^4
    return _lw_moments(s, c, n)


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
        moments = ClassMoments.empty().update(f, y)
        means = moments.means()
        mu1, mu0 = means[1], means[0]  # [L, d]
        pooled: StreamingMoments = moments.pooled()  # within-class scatter
        cov = pooled.covariance()  # [L, d, d] pooled within-class
        d = f.shape[2]
        if self.shrinkage == "auto":
            alpha = _lw_moments(cov, pooled.c, pooled.n)  # [L]
        else:
            alpha = torch.full(
                (f.shape[0],), float(self.shrinkage), dtype=torch.float64, device=f.device
            )
        mu = torch.diagonal(cov, dim1=1, dim2=2).sum(-1) / d  # [L]
        eye = torch.eye(d, dtype=torch.float64, device=f.device)
        shrunk = shrink(cov, alpha) + 1e-9 * mu.clamp_min(1e-12)[:, None, None] * eye
        direction = torch.linalg.solve(shrunk, (mu1 - mu0).unsqueeze(-1)).squeeze(-1)  # [L, d]
        mean = f.mean(dim=1)
        scores = torch.einsum("lnd,ld->ln", f - mean[:, None], direction)
        a, c = calibrate(scores, y)
        self.shrinkage_ = alpha.float()
        self._set_linear(
            mean[:, None], torch.ones_like(mean)[:, None], (a[:, None] * direction)[:, None], c
        )
