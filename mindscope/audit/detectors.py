"""Anomaly detectors of other kinds than Mahalanobis: neighbourhood density (local outlier
factor), random partitioning (isolation forest), and a spectral score (quantum entropy, QUE).

All follow :class:`mindscope.audit.base.Detector`: fit on trusted ``[n, d]`` / ``[layers, n, d]``,
score ``[n]`` / ``[layers, n]``, higher = more anomalous. scikit-learn is imported lazily.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mindscope.audit.base import Detector
from mindscope.audit.covariance import (
    StreamingMoments,
    check_shrinkage,
    shrink,
    shrinkage_intensity,
)
from mindscope.errors import MindscopeError

__all__ = ["LofDetector", "IsolationForestDetector", "QueDetector", "make_detector"]


class LofDetector(Detector):
    """Local outlier factor (``sklearn.neighbors.LocalOutlierFactor(novelty=True)``) per layer;
    the score is ``-score_samples`` (about 1 for inliers, larger for outliers).

    Args:
        n_neighbors: neighbours defining the local density; the trusted set needs more rows.
        standardize: z-score each feature with the trusted mean and standard deviation first.
    """

    _params = ("n_neighbors", "standardize")
    method = "lof"

    def __init__(self, n_neighbors: int = 20, standardize: bool = True) -> None:
        if int(n_neighbors) < 1:
            raise MindscopeError(f"n_neighbors must be >= 1, got {n_neighbors}")
        self.n_neighbors = int(n_neighbors)
        self.standardize = bool(standardize)

    def _check_enough(self, n: int, d: int) -> None:
        if n <= self.n_neighbors:
            raise MindscopeError(
                f"LofDetector(n_neighbors={self.n_neighbors}) needs more than "
                f"{self.n_neighbors} trusted examples, got {n}"
            )

    def _norm(self, x: Tensor) -> Tensor:
        return (x - self.mu_[:, None]) / self.sd_[:, None] if self.standardize else x

    def _fit_layered(self, x: Tensor) -> None:
        from sklearn.neighbors import LocalOutlierFactor

        self.mu_ = x.mean(1)
        sd = x.std(1)
        self.sd_ = torch.where(sd > 0, sd, torch.ones_like(sd))
        z = self._norm(x)
        self.estimators_ = [
            LocalOutlierFactor(n_neighbors=self.n_neighbors, novelty=True).fit(z[k].numpy())
            for k in range(x.shape[0])
        ]

    def _score_layered(self, x: Tensor) -> Tensor:
        z = self._norm(x)
        return torch.stack(
            [
                -torch.from_numpy(est.score_samples(z[k].numpy())).double()
                for k, est in enumerate(self.estimators_)
            ]
        )


class IsolationForestDetector(Detector):
    """Isolation forest (``sklearn.ensemble.IsolationForest``) per layer; the score is
    ``-score_samples`` (shorter average path = more anomalous).

    Args:
        n_estimators: trees per layer.
        seed: random state.
    """

    _params = ("n_estimators", "seed")
    method = "iforest"

    def __init__(self, n_estimators: int = 200, seed: int = 0) -> None:
        self.n_estimators = int(n_estimators)
        self.seed = int(seed)

    def _fit_layered(self, x: Tensor) -> None:
        from sklearn.ensemble import IsolationForest

        self.estimators_ = [
            IsolationForest(n_estimators=self.n_estimators, random_state=self.seed).fit(
                x[k].numpy()
            )
            for k in range(x.shape[0])
        ]

    def _score_layered(self, x: Tensor) -> Tensor:
        return torch.stack(
            [
                -torch.from_numpy(est.score_samples(x[k].numpy())).double()
                for k, est in enumerate(self.estimators_)
            ]
        )


class QueDetector(Detector):
    """Quantum entropy score (Dong, Hopkins & Li 2019), a spectral outlier score.

    Inputs are whitened with the trusted mean and (shrunk) covariance, ``y = W (x - mean)``.
    For the batch being scored, ``C`` is the second moment of the whitened inputs and
    ``Q = exp(alpha (C - I) / (|C|_2 - 1))``; the score of input ``i`` is
    ``y_i^T Q y_i / tr(Q)``. Directions in which the *batch* has excess variance over the
    trusted data dominate ``Q``, so the score is transductive: it depends on the other
    inputs scored together (score the whole untrusted pool at once).

    Args:
        alpha: inverse temperature (0: plain squared whitened norm, i.e. Mahalanobis;
            large: only the top excess-variance direction counts).
        shrinkage: shrinkage of the trusted covariance used for whitening.
    """

    _params = ("alpha", "shrinkage")
    method = "que"
    transductive = True

    def __init__(self, alpha: float = 4.0, shrinkage: float | str = "auto") -> None:
        if float(alpha) < 0:
            raise MindscopeError(f"alpha must be >= 0, got {alpha}")
        self.alpha = float(alpha)
        self.shrinkage = check_shrinkage(shrinkage)

    def _fit_layered(self, x: Tensor) -> None:
        m = StreamingMoments().update(x)
        cov = shrink(m.covariance(), shrinkage_intensity(m, self.shrinkage))  # [L, d, d]
        evals, evecs = torch.linalg.eigh(cov)
        if (evals <= 0).any():
            raise MindscopeError("trusted covariance is singular; use shrinkage='auto'")
        self.location_ = m.mean.clone()
        self.whitener_ = evecs @ torch.diag_embed(evals.rsqrt()) @ evecs.transpose(1, 2)

    def _score_layered(self, x: Tensor) -> Tensor:
        y = (x - self.location_[:, None]) @ self.whitener_  # [L, n, d] (whitener symmetric)
        n = y.shape[1]
        c = y.transpose(1, 2) @ y / n  # [L, d, d]
        evals, evecs = torch.linalg.eigh(c)
        top = evals[:, -1:]  # [L, 1] spectral norm
        denom = (top - 1).clamp_min(1e-6)
        # Q = V diag(w) V^T, scaled by exp(-alpha) for stability (the ratio is unchanged)
        w = torch.exp(self.alpha * (evals - top) / denom)  # [L, d]
        proj = y @ evecs  # [L, n, d]
        return (proj.square() * w[:, None]).sum(-1) / w.sum(-1, keepdim=True)  # [L, n]


def make_detector(method: str, **kwargs: Any) -> Detector:
    """A detector by method name (``mahalanobis``, ``lof``, ``iforest``, ``que``)."""
    from mindscope.audit.base import REGISTRY
    from mindscope.audit.mahalanobis import MahalanobisDetector  # noqa: F401  (registers)

    if method not in REGISTRY:
        raise MindscopeError(f"unknown detector {method!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[method](**kwargs)
