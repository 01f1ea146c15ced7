"""Mahalanobis-distance anomaly detection with a streaming fit.

Concept-erasure style: a :class:`MahalanobisFitter` accumulates trusted activations batch by
batch (:meth:`MahalanobisFitter.update`, float64 moments merged stably, memory ``O(d^2)``
whatever the number of rows), and :meth:`MahalanobisFitter.detector` freezes them into a fitted
:class:`MahalanobisDetector`. ``MahalanobisDetector().fit(trusted)`` does both in one call::

    det = MahalanobisDetector(shrinkage="auto").fit(trusted)       # [n, d] or [layers, n, d]
    det.score(untrusted)                                           # squared distances
    fitter = MahalanobisFitter()
    for batch in batches:                                          # 200k rows, flat memory
        fitter.update(batch)
    det = fitter.detector()

The score of ``x`` at a layer is the squared distance ``(x - mean)^T Sigma^-1 (x - mean)``
with ``Sigma`` the trusted covariance shrunk towards ``tr(Sigma)/d * I``
(Ledoit-Wolf intensity by default, as ``sklearn.covariance.LedoitWolf``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mindscope.audit.base import Detector, _check_finite, as_activations
from mindscope.audit.covariance import (
    Shrinkage,
    StreamingMoments,
    check_shrinkage,
    shrink,
    shrinkage_intensity,
)
from mindscope.errors import MindscopeError

__all__ = ["MahalanobisDetector", "MahalanobisFitter"]


class MahalanobisFitter:
    """Streaming accumulator of trusted activations for :class:`MahalanobisDetector`.

    Args:
        shrinkage: ``"auto"`` (Ledoit-Wolf), ``"oas"``, or a float in [0, 1].
        source: fingerprint of where the activations come from (see
            :func:`mindscope.audit.fingerprint`); checked again when scoring.
    """

    def __init__(self, shrinkage: Shrinkage = "auto", *, source: str | None = None) -> None:
        self.shrinkage = check_shrinkage(shrinkage)
        self.source = source
        self.moments = StreamingMoments()
        self._layered: bool | None = None

    @property
    def n(self) -> int:
        """Rows seen so far."""
        return self.moments.n

    def update(self, x: Any) -> MahalanobisFitter:
        """Add a batch of trusted activations ``[n, d]`` or ``[layers, n, d]``; returns self."""
        xl, layered, fp = as_activations(x, None)
        if fp is not None:
            if self.source is not None and fp != self.source:
                raise MindscopeError(
                    f"batch fingerprint {fp} differs from this fitter's source {self.source}"
                )
            self.source = fp
        if self._layered is not None and layered != self._layered:
            raise MindscopeError("mixing batches with and without a layer axis")
        _check_finite(xl, "trusted")
        self._layered = layered
        self.moments.update(xl)
        return self

    def detector(self) -> MahalanobisDetector:
        """Freeze the moments into a fitted :class:`MahalanobisDetector`.

        The detector's trusted-score statistics (for :meth:`score_aggregate`) use the
        closed form of the mean squared distance on the trusted set, ``tr(Sigma^-1 S)``.
        """
        det = MahalanobisDetector(self.shrinkage)
        m = self.moments
        if m.n == 0:
            raise MindscopeError("MahalanobisDetector: the trusted set is empty")
        L, d = m.shape
        det._check_enough(m.n, d)
        det._fit_moments(m)
        det.n_layers_, det.layered_, det.d_in_, det.n_trusted_ = L, bool(self._layered), d, m.n
        det.fingerprint_ = self.source
        # mean of the trusted scores: tr(P S); their spread is not known from the moments, so
        # the scale is the chi-square one, sqrt(2 * mean)
        cov = m.covariance()
        loc = torch.einsum("lij,lji->l", det.precision_, cov)
        det.train_loc_ = loc
        det.train_scale_ = (2 * loc).sqrt().clamp_min(1e-12)
        return det


class MahalanobisDetector(Detector):
    """Squared Mahalanobis distance to the trusted mean, per layer.

    Args:
        shrinkage: ``"auto"`` (Ledoit-Wolf, per layer), ``"oas"``, or a float ``a`` in [0, 1]:
            the covariance becomes ``(1 - a) S + a tr(S)/d I``. With ``0`` (no shrinkage) the
            trusted set needs more rows than the activation width.

    Attributes (after ``fit``):
        location_: ``[layers, d]`` trusted mean.
        precision_: ``[layers, d, d]`` inverse of the shrunk covariance (float64).
        shrinkage_: ``[layers]`` shrinkage intensity used.
    """

    _params = ("shrinkage",)
    method = "mahalanobis"

    location_: Tensor
    precision_: Tensor
    shrinkage_: Tensor

    def __init__(self, shrinkage: Shrinkage = "auto") -> None:
        self.shrinkage = check_shrinkage(shrinkage)

    def fit(
        self, x: Any, *, source: str | None = None, batch_size: int = 8192
    ) -> MahalanobisDetector:
        """Fit on trusted activations (streamed through a :class:`MahalanobisFitter` in
        batches of ``batch_size`` rows); returns self."""
        xl, layered, fp = as_activations(x, source)
        _check_finite(xl, "trusted")
        fitter = MahalanobisFitter(self.shrinkage, source=fp)
        fitter._layered = layered
        for s in range(0, xl.shape[1], batch_size):
            fitter.moments.update(xl[:, s : s + batch_size])
        fitted = fitter.detector()
        self.__dict__.update(fitted.__dict__)
        return self

    def _check_enough(self, n: int, d: int) -> None:
        super()._check_enough(n, d)
        if self.shrinkage == 0 and n <= d:
            raise MindscopeError(
                f"MahalanobisDetector(shrinkage=0) needs more trusted examples than the width: "
                f"at least {d + 1} for d={d}, got {n}; use shrinkage='auto' (Ledoit-Wolf) to fit "
                "on fewer"
            )

    def _fit_moments(self, m: StreamingMoments) -> None:
        alpha = shrinkage_intensity(m, self.shrinkage)  # [L]
        cov = shrink(m.covariance(), alpha)  # [L, d, d]
        mu = torch.diagonal(cov, dim1=1, dim2=2).mean(-1)
        if (mu <= 0).any():
            raise MindscopeError("trusted activations are constant at some layer (zero variance)")
        try:
            chol = torch.linalg.cholesky(cov)
        except torch.linalg.LinAlgError:
            raise MindscopeError(
                "trusted covariance is singular; use shrinkage='auto' or more trusted examples"
            ) from None
        self.precision_ = torch.cholesky_inverse(chol)
        self.precision_ = (self.precision_ + self.precision_.transpose(1, 2)) / 2
        self.location_ = m.mean.clone()
        self.shrinkage_ = alpha

    def _fit_layered(self, x: Tensor) -> None:  # pragma: no cover - fit() is overridden
        self._fit_moments(StreamingMoments().update(x))

    def _score_layered(self, x: Tensor) -> Tensor:
        xc = x - self.location_[:, None]  # [L, n, d]
        return ((xc @ self.precision_) * xc).sum(-1)  # [L, n]
