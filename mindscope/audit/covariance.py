"""Streaming mean and covariance in float64, with Ledoit-Wolf and OAS shrinkage.

:class:`StreamingMoments` accumulates, per layer, the count ``n``, the mean ``[d]``, the centred
second moment ``M2 = sum_i (x_i - mean)(x_i - mean)^T`` ``[d, d]``, and the two higher
moments that Ledoit-Wolf needs: ``b = sum_i |x_i - mean|^2 (x_i - mean)`` ``[d]`` and
``c = sum_i |x_i - mean|^4`` (a scalar). Each ``update(x)`` computes the batch's own centred
moments and merges them with the running ones (Chan et al.'s pairwise update, extended to
``b`` and ``c``), so nothing is ever a sum of raw squares and memory stays ``O(d^2)`` whatever
the number of rows. Two accumulators merge the same way (:meth:`StreamingMoments.merge`).

The shrinkage intensities follow scikit-learn exactly: :func:`ledoit_wolf_shrinkage` is
``sklearn.covariance.ledoit_wolf_shrinkage`` on the data centred at its mean, and
:func:`oas_shrinkage` is ``sklearn.covariance.OAS``. Shapes: ``L`` layers, ``d`` features.

The same accumulator serves class-conditional statistics (:class:`ClassMoments`: one
accumulator per class and the pooled within-class covariance), i.e. what LDA and DiffMean need.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = [
    "StreamingMoments",
    "ClassMoments",
    "ledoit_wolf_shrinkage",
    "oas_shrinkage",
    "shrink",
    "Shrinkage",
]

Shrinkage = float | str
"""``"auto"``/``"ledoit-wolf"`` (Ledoit-Wolf), ``"oas"``, or a fixed float in [0, 1]."""


def _as_layered(x: object, who: str) -> tuple[Tensor, bool]:
    """``x`` as float64 ``[L, n, d]`` and whether it had a layer axis."""
    t = torch.as_tensor(x)
    if t.ndim == 2:
        return t.double().unsqueeze(0), False
    if t.ndim == 3:
        return t.double(), True
    raise MindscopeError(
        f"{who}: activations must be [n, d] or [layers, n, d], got shape {tuple(t.shape)}"
    )


class StreamingMoments:
    """Running per-layer mean, covariance and Ledoit-Wolf moments (float64).

    Feed ``[n, d]`` or ``[layers, n, d]`` batches with :meth:`update`; the first batch fixes
    the layer count and width.

    Attributes:
        n: rows seen so far.
        mean: ``[L, d]``.
        m2: ``[L, d, d]`` centred second moment (``n * covariance``).
        b: ``[L, d]`` ``sum |x - mean|^2 (x - mean)``.
        c: ``[L]`` ``sum |x - mean|^4``.
    """

    def __init__(self) -> None:
        self.n = 0
        self.layered: bool | None = None
        self.mean = torch.zeros(0, dtype=torch.float64)
        self.m2 = torch.zeros(0, dtype=torch.float64)
        self.b = torch.zeros(0, dtype=torch.float64)
        self.c = torch.zeros(0, dtype=torch.float64)

    @property
    def shape(self) -> tuple[int, int]:
        """``(layers, d)``; ``(0, 0)`` before the first update."""
        return (int(self.mean.shape[0]), int(self.mean.shape[1])) if self.n else (0, 0)

    def update(self, x: object) -> StreamingMoments:
        """Merge a batch ``[n, d]`` or ``[layers, n, d]`` into the running moments; returns self."""
        xl, layered = _as_layered(x, "StreamingMoments.update")
        if xl.shape[1] == 0:
            return self
        if not torch.isfinite(xl).all():
            bad = int((~torch.isfinite(xl)).any(-1).any(0).sum())
            raise MindscopeError(f"activations contain NaN or inf ({bad} rows); refusing to fit")
        if self.n and (xl.shape[0], xl.shape[2]) != self.shape:
            raise MindscopeError(
                f"batch has {xl.shape[0]} layers x width {xl.shape[2]}, but earlier batches had "
                f"{self.shape[0]} layers x width {self.shape[1]}"
            )
        nb = xl.shape[1]
        mean = xl.mean(1)  # [L, d]
        w = xl - mean[:, None]  # [L, nb, d]
        sq = w.square().sum(-1)  # [L, nb]
        other = StreamingMoments()
        other.n, other.layered = nb, layered
        other.mean = mean
        other.m2 = w.transpose(1, 2) @ w  # [L, d, d]
        other.b = (sq[:, :, None] * w).sum(1)  # [L, d]
        other.c = sq.square().sum(1)  # [L]
        return self.merge(other)

    def merge(self, other: StreamingMoments) -> StreamingMoments:
        """Combine ``other``'s moments into these (in place); returns self."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.layered = other.n, other.layered
            self.mean, self.m2 = other.mean.clone(), other.m2.clone()
            self.b, self.c = other.b.clone(), other.c.clone()
            return self
        if other.shape != self.shape:
            raise MindscopeError(f"cannot merge moments of shape {other.shape} into {self.shape}")
        n = self.n + other.n
        mean = self.mean + (other.mean - self.mean) * (other.n / n)  # [L, d]
        parts = [(self.n, self.mean, self.m2, self.b, self.c)]
        parts.append((other.n, other.mean, other.m2, other.b, other.c))
        m2 = torch.zeros_like(self.m2)
        b = torch.zeros_like(self.b)
        c = torch.zeros_like(self.c)
        for k, mu, m2k, bk, ck in parts:
            # x - mean = w + e with w = x - mu (sums to 0 in the part) and e = mu - mean
            e = mu - mean  # [L, d]
            e2 = e.square().sum(-1)  # [L]
            m2e = (m2k @ e[:, :, None]).squeeze(-1)  # [L, d]
            tr = torch.diagonal(m2k, dim1=1, dim2=2).sum(-1)  # [L]
            m2 += m2k + k * e[:, :, None] * e[:, None, :]
            b += bk + 2 * m2e + tr[:, None] * e + k * e2[:, None] * e
            c += ck + 4 * (m2e * e).sum(-1) + k * e2.square() + 4 * (bk * e).sum(-1) + 2 * e2 * tr
        self.n, self.mean, self.m2, self.b, self.c = n, mean, m2, b, c
        return self

    def covariance(self) -> Tensor:
        """Maximum-likelihood covariance ``M2 / n``: ``[L, d, d]`` float64."""
        if self.n == 0:
            raise MindscopeError("no rows seen: the trusted set is empty")
        return self.m2 / self.n


def ledoit_wolf_shrinkage(cov: Tensor, c: Tensor, n: int) -> Tensor:
    """Ledoit-Wolf shrinkage intensity ``[L]`` in [0, 1] from streaming moments.

    Args:
        cov: ``[L, d, d]`` covariance ``M2 / n`` of data centred at its mean.
        c: ``[L]`` ``sum_i |x_i - mean|^4``.
        n: number of rows.

    Equal to ``sklearn.covariance.ledoit_wolf_shrinkage(x - x.mean(0), assume_centered=True)``.
    """
    d = cov.shape[-1]
    trace = torch.diagonal(cov, dim1=1, dim2=2).sum(-1)  # [L]
    mu = trace / d
    s_fro2 = cov.square().sum((1, 2))  # [L]
    beta = (c / n - s_fro2) / (d * n)
    delta = (s_fro2 - 2 * mu * trace + d * mu.square()) / d
    beta = torch.minimum(beta, delta)
    return torch.where(beta > 0, beta / delta.clamp_min(1e-300), torch.zeros_like(delta))


def oas_shrinkage(cov: Tensor, n: int) -> Tensor:
    """Oracle-approximating shrinkage intensity ``[L]`` (``sklearn.covariance.OAS``)."""
    d = cov.shape[-1]
    alpha = cov.square().mean((1, 2))
    mu = torch.diagonal(cov, dim1=1, dim2=2).sum(-1) / d
    num = alpha + mu.square()
    den = (n + 1) * (alpha - mu.square() / d)
    return torch.where(den > 0, (num / den.clamp_min(1e-300)).clamp_max(1.0), torch.ones_like(den))


def shrink(cov: Tensor, alpha: Tensor) -> Tensor:
    """``(1 - a) S + a tr(S)/d I`` per layer: ``cov [L, d, d]``, ``alpha [L]`` -> ``[L, d, d]``."""
    d = cov.shape[-1]
    mu = torch.diagonal(cov, dim1=1, dim2=2).sum(-1) / d  # [L]
    eye = torch.eye(d, dtype=cov.dtype)
    return (1 - alpha)[:, None, None] * cov + (alpha * mu)[:, None, None] * eye


def shrinkage_intensity(m: StreamingMoments, shrinkage: Shrinkage) -> Tensor:
    """The intensity ``[L]`` that ``shrinkage`` asks for, given moments ``m``."""
    cov = m.covariance()
    if shrinkage in ("auto", "ledoit-wolf"):
        return ledoit_wolf_shrinkage(cov, m.c, m.n)
    if shrinkage == "oas":
        return oas_shrinkage(cov, m.n)
    if isinstance(shrinkage, int | float) and 0 <= float(shrinkage) <= 1:
        return torch.full((cov.shape[0],), float(shrinkage), dtype=torch.float64)
    raise MindscopeError(
        f"shrinkage must be 'auto', 'ledoit-wolf', 'oas' or a float in [0, 1], got {shrinkage!r}"
    )


def check_shrinkage(shrinkage: object) -> Shrinkage:
    """Validate a shrinkage hyper-parameter (see :data:`Shrinkage`)."""
    if shrinkage in ("auto", "ledoit-wolf", "oas"):
        return str(shrinkage)
    if isinstance(shrinkage, int | float) and not isinstance(shrinkage, bool):
        if 0 <= float(shrinkage) <= 1:
            return float(shrinkage)
    raise MindscopeError(
        f"shrinkage must be 'auto', 'ledoit-wolf', 'oas' or a float in [0, 1], got {shrinkage!r}"
    )


@dataclass
class ClassMoments:
    """One :class:`StreamingMoments` per class label, for class means and the pooled
    within-class covariance (LDA, DiffMean)."""

    classes: dict[int, StreamingMoments]

    @classmethod
    def empty(cls) -> ClassMoments:
        return cls({})

    def update(self, x: object, y: object) -> ClassMoments:
        """Merge a batch ``[n, d]`` / ``[L, n, d]`` with labels ``y [n]`` (ints); returns self."""
        xl, _ = _as_layered(x, "ClassMoments.update")
        yt = torch.as_tensor(y).long().reshape(-1)
        if yt.shape[0] != xl.shape[1]:
            raise MindscopeError(f"labels must be [{xl.shape[1]}], got {tuple(yt.shape)}")
        for k in yt.unique().tolist():
            self.classes.setdefault(int(k), StreamingMoments()).update(xl[:, yt == k])
        return self

    def means(self) -> dict[int, Tensor]:
        """Class means ``{label: [L, d]}``."""
        return {k: m.mean for k, m in sorted(self.classes.items())}

    def pooled(self) -> StreamingMoments:
        """Moments of the data with each row centred at its class mean (the within-class
        scatter): ``covariance()`` is LDA's pooled covariance, and its ``c`` feeds the same
        Ledoit-Wolf intensity as :func:`mindscope.probes.lda.ledoit_wolf_shrinkage`."""
        out = StreamingMoments()
        for m in self.classes.values():
            centred = StreamingMoments()
            centred.n, centred.layered = m.n, m.layered
            centred.mean = torch.zeros_like(m.mean)
            centred.m2, centred.b, centred.c = m.m2, m.b, m.c
            out.merge(centred)
        return out
