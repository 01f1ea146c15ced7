"""LEACE: least-squares concept erasure (Belrose et al. 2023, arXiv 2306.03819), closed form.

The eraser ``x -> x - L R (x - mean)`` (``P = I - L R`` of rank ``k``) is the least-squares
smallest edit after which no linear classifier can predict the concept better than a constant:
every class has the same mean. With ``W`` the (pseudo-)whitening of ``Sigma_xx`` and ``U`` the
left singular vectors of ``W Sigma_xz``: ``L = W^+ U``, ``R = U^T W``. As in EleutherAI's
concept-erasure (whose defaults these are): the covariance of ``x`` is shrunk (optimal linear
shrinkage towards a scaled identity), singular values under ``svd_tol`` are dropped, and if the
edit would raise the trace of the covariance it is mixed with the orthogonal projection until
it does not. Statistics accumulate (in float64 by default) by Welford's update, so
:meth:`LeaceFitter.update` over batches equals one fit on all the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mindscope.errors import MindscopeError

__all__ = ["LeaceFitter", "LeaceEraser", "concept_matrix", "optimal_linear_shrinkage"]


def concept_matrix(y: torch.Tensor, n_classes: int | None = None) -> torch.Tensor:
    """Integer class labels ``[n]`` as the concept matrix ``Z``: one column (``y == 1``) for two
    classes, one-hot ``[n, k]`` for ``k > 2``. Float labels ``[n, k]`` pass through."""
    y = torch.as_tensor(y)
    if y.is_floating_point():
        return y.reshape(len(y), -1).double()
    if y.ndim != 1:
        raise MindscopeError(f"concept labels must be [n] ints, got shape {tuple(y.shape)}")
    k = int(n_classes if n_classes is not None else int(y.max()) + 1 if len(y) else 0)
    if k < 2:
        raise MindscopeError("the concept has one class: there is nothing to erase")
    if int(y.min()) < 0 or int(y.max()) >= k:
        raise MindscopeError(f"concept labels must lie in 0..{k - 1}")
    if k == 2:
        return (y == 1).double()[:, None]
    return torch.nn.functional.one_hot(y.long(), k).double()


def optimal_linear_shrinkage(s: torch.Tensor, n: float) -> torch.Tensor:
    """Shrink a sample covariance ``[p, p]`` (normalised by ``n``) towards ``trace/p * I`` with
    the asymptotically optimal weight (Ledoit-Wolf style, arXiv 1308.2608)."""
    p = s.shape[-1]
    tr = torch.trace(s)
    target = torch.eye(p, dtype=s.dtype, device=s.device) * tr / p
    t_sq = target.pow(2).sum()
    s_sq = s.pow(2).sum()
    prod = torch.trace(s @ target)
    alpha = 1 - tr.pow(2) * t_sq / n / (s_sq * t_sq - prod**2)
    beta = (1 - alpha) * prod / t_sq
    return alpha * s + beta * target


@dataclass(frozen=True)
class LeaceEraser:
    """A fitted LEACE eraser: ``x - ((x - bias) @ proj_right.T) @ proj_left.T``.

    Attributes:
        proj_left: ``[d, k]``.
        proj_right: ``[k, d]``.
        bias: ``[d]`` the mean of ``x`` (``None``: not affine).
    """

    proj_left: torch.Tensor
    proj_right: torch.Tensor
    bias: torch.Tensor | None

    @property
    def d(self) -> int:
        """Width of the representation."""
        return int(self.proj_left.shape[0])

    @property
    def P(self) -> torch.Tensor:  # noqa: N802 - the paper's name
        """The projection ``[d, d]`` (``I - proj_left @ proj_right``)."""
        eye = torch.eye(self.d, dtype=self.proj_left.dtype, device=self.proj_left.device)
        return eye - self.proj_left @ self.proj_right

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Erase the concept from ``x`` ``[..., d]`` (same shape and dtype back)."""
        if x.shape[-1] != self.d:
            raise MindscopeError(f"eraser fitted on width {self.d}, got width {x.shape[-1]}")
        left = self.proj_left.to(device=x.device, dtype=x.dtype)
        right = self.proj_right.to(device=x.device, dtype=x.dtype)
        delta = x - self.bias.to(device=x.device, dtype=x.dtype) if self.bias is not None else x
        return x - (delta @ right.mT) @ left.mT

    def to(self, dtype: torch.dtype) -> LeaceEraser:
        """The same eraser with tensors in ``dtype``."""
        b = None if self.bias is None else self.bias.to(dtype)
        return LeaceEraser(self.proj_left.to(dtype), self.proj_right.to(dtype), b)


class LeaceFitter:
    """Streaming LEACE fitter (scikit-learn style).

    Args:
        shrinkage: shrink the covariance of ``x`` (default on, as concept-erasure).
        svd_tol: drop singular values of the whitened cross-covariance below this.
        constrain_cov_trace: never let the edit raise the trace of the covariance.
        affine: keep the mean of ``x`` (erase ``x - mean``).
        dtype: dtype of the statistics and the solve (float64 by default: on ill-conditioned
            activations float32 statistics move the eraser by ~1e-3; float32 is faster).

    Attributes (after :meth:`fit`/:meth:`update`):
        mean_x_: ``[d]``; mean_z_: ``[k]``; n_: samples seen; eraser_: the :class:`LeaceEraser`.
    """

    def __init__(
        self,
        *,
        shrinkage: bool = True,
        svd_tol: float = 0.01,
        constrain_cov_trace: bool = True,
        affine: bool = True,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.dtype = dtype
        self.shrinkage = shrinkage
        self.svd_tol = svd_tol
        self.constrain_cov_trace = constrain_cov_trace
        self.affine = affine

    def fit(self, x: torch.Tensor, y: torch.Tensor) -> LeaceFitter:
        """Fit on ``x`` ``[n, d]`` and concept labels ``y`` ``[n]`` (ints) or ``[n, k]``."""
        for attr in ("n_", "mean_x_", "mean_z_", "_xx", "_xz", "_k"):
            self.__dict__.pop(attr, None)
        return self.update(x, y)

    def update(self, x: torch.Tensor, y: torch.Tensor, n_classes: int | None = None) -> LeaceFitter:
        """Add a batch (streaming); ``n_classes`` fixes the number of classes when a batch may
        miss some."""
        x = torch.as_tensor(x)
        if x.ndim != 2:
            raise MindscopeError(f"LEACE takes x as [n, d], got shape {tuple(x.shape)}")
        y = torch.as_tensor(y)
        k_fixed = getattr(self, "_k", None) if n_classes is None else n_classes
        z = concept_matrix(y, k_fixed).to(self.dtype)
        if getattr(self, "_k", None) is None and not y.is_floating_point():
            self._k = z.shape[1] if z.shape[1] > 1 else 2
        if z.shape[0] != x.shape[0]:
            raise MindscopeError(f"x has {x.shape[0]} rows, the labels {z.shape[0]}")
        xd = x.to(device="cpu", dtype=self.dtype)
        first = not hasattr(self, "n_")
        if first:
            d, k = xd.shape[1], z.shape[1]
            self.n_ = 0
            self.mean_x_ = torch.zeros(d, dtype=self.dtype)
            self.mean_z_ = torch.zeros(k, dtype=self.dtype)
            self._xx = torch.zeros(d, d, dtype=self.dtype)
            self._xz = torch.zeros(d, k, dtype=self.dtype)
            self._dtype = x.dtype
        if xd.shape[1] != self.mean_x_.shape[0] or z.shape[1] != self.mean_z_.shape[0]:
            raise MindscopeError("LEACE update: width or number of classes changed between batches")
        self.n_ += xd.shape[0]
        # Welford's update (x - 0 is x: the first batch skips that subtraction)
        dx = xd if first else xd - self.mean_x_
        self.mean_x_ += dx.sum(0) / self.n_
        self._xx.addmm_(dx.T, xd - self.mean_x_)
        dz = z if first else z - self.mean_z_
        self.mean_z_ += dz.sum(0) / self.n_
        self._xz.addmm_(dx.T, z - self.mean_z_)
        # NaN or infinity in x reaches the mean and the diagonal: checked there, not per value
        if not bool(
            torch.isfinite(self.mean_x_).all() and torch.isfinite(self._xx.diagonal()).all()
        ):
            raise MindscopeError("LEACE: x has NaN or infinite values (or overflows the dtype)")
        self.__dict__.pop("_eraser", None)
        return self

    # ----------------------------------------------------------------- statistics
    @property
    def sigma_xx_(self) -> torch.Tensor:
        """Covariance of ``x`` ``[d, d]`` (shrunk when ``shrinkage``)."""
        self._check()
        s = (self._xx + self._xx.T) / 2
        if self.shrinkage:
            return optimal_linear_shrinkage(s / self.n_, self.n_)
        return s / (self.n_ - 1)

    @property
    def sigma_xz_(self) -> torch.Tensor:
        """Cross-covariance of ``x`` and the concept ``[d, k]``."""
        self._check()
        return self._xz / (self.n_ - 1)

    def _check(self) -> None:
        if getattr(self, "n_", 0) < 2:
            raise MindscopeError("LEACE needs at least two samples: call fit() first")

    @property
    def eraser_(self) -> LeaceEraser:
        """The fitted :class:`LeaceEraser` (computed once per state of the statistics)."""
        if "_eraser" not in self.__dict__:
            self._eraser = self._compute()
        return self._eraser

    def _compute(self) -> LeaceEraser:
        sigma = self.sigma_xx_
        d = sigma.shape[0]
        eye = torch.eye(d, dtype=self.dtype)
        vals, vecs = torch.linalg.eigh(sigma)
        keep = vals > vals[-1] * d * torch.finfo(vals.dtype).eps
        vals = vals.clamp_min(0.0)
        w = vecs * torch.where(keep, vals.rsqrt(), 0.0) @ vecs.T  # whitening
        w_inv = vecs * torch.where(keep, vals.sqrt(), 0.0) @ vecs.T
        u, s, _ = torch.linalg.svd(w @ self.sigma_xz_, full_matrices=False)
        u = u * (s > self.svd_tol)
        left, right = w_inv @ u, u.T @ w
        if self.constrain_cov_trace:
            p = eye - left @ right
            old, new = torch.trace(sigma), torch.trace(p @ sigma @ p.T)
            if new > old:  # mix with the orthogonal projection until the trace is kept
                q = eye - u @ u.T
                a, b = new, 2 * torch.trace(p @ sigma @ q.T)
                c, w0 = torch.trace(q @ sigma @ q.T), old
                disc = torch.sqrt(4 * w0 * a - 4 * w0 * b + 4 * w0 * c - 4 * a * c + b**2)
                r1 = (-b / 2 + c - disc / 2) / (a - b + c)
                r2 = (-b / 2 + c + disc / 2) / (a - b + c)
                alpha = torch.where(r1 > 0, r1, r2).clamp(0, 1)
                p = alpha * p + (1 - alpha) * q
                uu, ss, vh = torch.linalg.svd(eye - p)
                left, right = uu * ss.sqrt(), vh * ss.sqrt()[:, None]
        bias = self.mean_x_.clone() if self.affine else None  # later updates move mean_x_
        dt = self._dtype if self._dtype.is_floating_point else torch.float32
        return LeaceEraser(left, right, bias).to(dt)
