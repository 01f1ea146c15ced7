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

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mindscope.audit.base import Detector, _check_finite, as_activations
from mindscope.covariance import (
    Shrinkage,
    StreamingMoments,
    check_shrinkage,
    shrink,
    shrinkage_intensity,
)
from mindscope.errors import MindscopeError

__all__ = ["MahalanobisDetector", "MahalanobisFitter", "save_detector", "load_detector"]


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

    With fewer trusted examples than the width plus one, the fit works only thanks to the
    shrinkage and says so with a ``UserWarning``. The trusted-score statistics used by
    :meth:`score_aggregate` are the closed-form mean ``tr(Sigma^-1 S)`` and the chi-square
    scale ``sqrt(2 * mean)`` (the streaming fit never holds the trusted scores).
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

    def save(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write ``config.json`` + ``model.safetensors`` (see :func:`save_detector`)."""
        return save_detector(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str | Path, *, expect_source: str | None = None) -> MahalanobisDetector:
        """Read a saved detector (see :func:`load_detector`)."""
        return load_detector(path, expect_source=expect_source)

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
        d = m.shape[1]
        if m.n <= d:
            warnings.warn(
                f"MahalanobisDetector: {m.n} trusted examples for width {d} (an unshrunk "
                f"covariance needs at least {d + 1}); shrinkage {self.shrinkage!r} "
                f"(intensity {float(alpha.min()):.3g}-{float(alpha.max()):.3g}) keeps it "
                "invertible",
                UserWarning,
                stacklevel=3,
            )
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


_FORMAT_VERSION = 1
_TENSORS = ("location_", "precision_", "shrinkage_", "train_loc_", "train_scale_")


def save_detector(det: MahalanobisDetector, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write a fitted detector as ``config.json`` + ``model.safetensors`` into folder ``path``
    (its fingerprint included); refuses an existing detector unless ``overwrite``."""
    from safetensors.torch import save_file

    if not det.is_fitted:
        raise MindscopeError("MahalanobisDetector is not fitted; nothing to save")
    out = Path(path)
    if (out / "config.json").exists() and not overwrite:
        raise MindscopeError(f"{out} already holds a saved detector; refusing to overwrite it")
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "format_version": _FORMAT_VERSION,
        "class": "MahalanobisDetector",
        "params": det.get_params(),
        "fingerprint": det.fingerprint_,
        "n_layers": det.n_layers_,
        "layered": det.layered_,
        "d_in": det.d_in_,
        "n_trusted": det.n_trusted_,
    }
    save_file({k: getattr(det, k).contiguous() for k in _TENSORS}, str(out / "model.safetensors"))
    (out / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return out


def load_detector(path: str | Path, *, expect_source: str | None = None) -> MahalanobisDetector:
    """Read a detector written by :func:`save_detector`; with ``expect_source``, refuse one
    fitted on activations with another fingerprint (model, revision, position, layers)."""
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not w_path.is_file():
        raise FileNotFoundError(f"no saved detector at {folder} (need config.json + safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise MindscopeError(f"{cfg_path} is not valid JSON: {exc}") from None
    if cfg.get("format_version") != _FORMAT_VERSION or cfg.get("class") != "MahalanobisDetector":
        raise MindscopeError(f"{cfg_path} is not a saved MahalanobisDetector")
    if expect_source is not None and cfg.get("fingerprint") != expect_source:
        raise MindscopeError(
            f"detector at {folder} was fitted on activations with fingerprint "
            f"{cfg.get('fingerprint')}, not {expect_source}"
        )
    det = MahalanobisDetector(**cfg["params"])
    tensors = load_file(str(w_path))
    for name in _TENSORS:
        if name not in tensors:
            raise MindscopeError(f"{w_path} lacks tensor {name!r}")
        setattr(det, name, tensors[name].double())
    det.fingerprint_ = cfg.get("fingerprint")
    det.n_layers_, det.layered_ = int(cfg["n_layers"]), bool(cfg["layered"])
    det.d_in_, det.n_trusted_ = int(cfg["d_in"]), int(cfg["n_trusted"])
    if tuple(det.precision_.shape) != (det.n_layers_, det.d_in_, det.d_in_):
        raise MindscopeError(f"{w_path}: tensor shapes do not match config.json")
    return det
