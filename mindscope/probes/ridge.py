"""Ridge-regression reporter: continuous targets (a quantity, a count, a reward), with R^2."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["RidgeReporter", "r2_score", "DEFAULT_ALPHAS"]

DEFAULT_ALPHAS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0, 1e3)


def r2_score(pred: Tensor, y: Tensor) -> Tensor:
    """Coefficient of determination of ``pred [..., n]`` against ``y [n]``: ``[...]``.

    ``1 - SS_res / SS_tot``, as ``sklearn.metrics.r2_score`` (1 is perfect, 0 is the mean).
    """
    y = y.to(device=pred.device, dtype=torch.float64)
    p = pred.double()
    ss_res = (p - y).square().sum(-1)
    ss_tot = (y - y.mean()).square().sum().clamp_min(1e-300)
    return 1.0 - ss_res / ss_tot


class RidgeReporter(Reporter):
    """Linear regression with an L2 penalty, fitted on every layer at once.

    Minimises ``||y - (f - mean) / scale . coef - b||^2 + alpha ||coef||^2`` per layer
    (scikit-learn's ``Ridge(alpha)`` objective, intercept not penalised). Features are the
    activations ``[n, d]`` (or pair differences for contrast pairs).

    Args:
        alpha: penalty; ``None`` picks it per layer from ``alphas`` by exact leave-one-out
            error (closed form from one SVD per layer, as scikit-learn's ``RidgeCV``).
        alphas: candidate penalties.
        normalize: standardise features with the training mean and standard deviation.
    """

    _params = ("alpha", "alphas", "normalize")
    supervised = True
    method = "ridge"

    def __init__(
        self,
        alpha: float | None = None,
        alphas: Sequence[float] = DEFAULT_ALPHAS,
        normalize: bool = True,
    ) -> None:
        if alpha is not None and not alpha >= 0:
            raise MindscopeError(f"alpha must be >= 0, got {alpha!r}")
        if not alphas or any(not a > 0 for a in alphas):
            raise MindscopeError(f"alphas must be positive numbers, got {alphas!r}")
        self.alpha = None if alpha is None else float(alpha)
        self.alphas = alphas  # kept as given (scikit-learn's clone checks identity)
        self.normalize = bool(normalize)

    # ------------------------------------------------------------------ targets
    def _check_targets(self, y: Any, n: int, device: torch.device) -> Tensor | None:
        if y is None:
            raise MindscopeError("RidgeReporter is supervised: fit(x, y) needs targets y")
        if isinstance(y, Tensor) and y.device != device:
            raise MindscopeError(
                f"RidgeReporter: activations are on {device} but targets are on {y.device}; "
                "put them on one device"
            )
        yt = torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y.detach())
        if yt.ndim != 1 or yt.shape[0] != n:
            raise MindscopeError(f"targets must have shape [{n}], got {tuple(yt.shape)}")
        yt = yt.to(device=device, dtype=torch.float64)
        if not torch.isfinite(yt).all():
            raise MindscopeError("targets contain NaN/inf")
        if n < 3:
            raise MindscopeError(f"RidgeReporter needs at least 3 examples, got {n}")
        if float(yt.std()) == 0.0:
            raise MindscopeError("targets are constant: nothing to regress")
        return yt

    # ------------------------------------------------------------------ fitting
    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        assert y is not None
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d]
        n_layers, n, d = f.shape
        mean = f.mean(dim=1)  # [L, d]
        scale = f.std(dim=1).clamp_min(1e-8) if self.normalize else torch.ones_like(mean)  # [L, d]
        fz = (f - mean[:, None]) / scale[:, None]  # [L, n, d], centred
        ybar = y.mean()
        yc = y - ybar  # [n]
        u, s, vh = torch.linalg.svd(fz, full_matrices=False)  # u [L,n,k], s [L,k], vh [L,k,d]
        uty = torch.einsum("lnk,n->lk", u, yc)  # [L, k]
        if self.alpha is None:
            alphas = torch.tensor(
                [float(a) for a in self.alphas], dtype=torch.float64, device=f.device
            )  # [A]
            s2 = s.square()[:, None, :]  # [L, 1, k]
            shrink = s2 / (s2 + alphas[None, :, None])  # [L, A, k]
            fitted = torch.einsum("lnk,lak,lk->lan", u, shrink, uty)  # [L, A, n]
            # hat diagonal of the centred problem, plus 1/n for the intercept
            hat = torch.einsum("lnk,lak->lan", u.square(), shrink) + 1.0 / n  # [L, A, n]
            loo = ((yc[None, None] - fitted) / (1 - hat).clamp_min(1e-12)).square().mean(-1)
            best = loo.argmin(dim=1)  # [L]
            alpha = alphas[best]  # [L]
        else:
            alpha = torch.full((n_layers,), self.alpha, dtype=torch.float64, device=f.device)
        coef = torch.einsum(
            "lkd,lk->ld", vh, s / (s.square() + alpha[:, None]).clamp_min(1e-300) * uty
        )  # [L, d]
        self.alpha_ = alpha.float()
        self._set_linear(
            mean[:, None], scale[:, None], coef[:, None], ybar.expand(n_layers).clone()
        )

    # ------------------------------------------------------------------ outputs
    def predict(self, x: Any) -> Tensor:
        """Predicted targets ``[n]`` or ``[layers, n]`` (differentiable in ``x``)."""
        return self.decision_function(x)

    def predict_proba(self, x: Any) -> Tensor:
        """Not defined for regression: use :meth:`predict`."""
        raise MindscopeError("RidgeReporter predicts values, not credences: use predict(x)")

    def score(self, x: Any, y: Any) -> float | Tensor:
        """R^2 of the predictions against ``y``: a float, or ``[layers]`` when layered."""
        p = self.predict(x).detach()
        r2 = r2_score(p, torch.as_tensor(np.asarray(y) if not isinstance(y, Tensor) else y))
        return r2 if self.layered_ else float(r2)

    def _learned_extras(self) -> tuple[str, ...]:
        return ("alpha_",)
