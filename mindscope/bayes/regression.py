"""Closed-form posteriors of in-context linear regression: ``y = w . x + e``, ``e ~ N(0, s^2)``.

A *regression prior* is any object with ``d`` (input width), ``noise`` (the noise variance
``s^2`` it assumes) and ``posterior_mean(x, y) -> [n, K, d]``: the posterior mean of ``w`` after
each prefix of a context. Because the prediction is linear in ``w``, the Bayes predictor of
``y_k`` (squared error) is ``x_k . E[w | (x_i, y_i)_{i<k}]`` (:func:`predict`). Two priors ship:

* :class:`FiniteTaskPrior` -- ``w`` uniform (or weighted) over a finite pool of ``M`` tasks. Its
  posterior mean is the *dMMSE* predictor of Raventos et al. (2023), Bayes-optimal for the
  pretraining distribution of a task-diversity-``M`` transformer; computed in chunks of tasks
  with a streaming log-sum-exp, so memory is bounded in ``M`` (:func:`dmmse`).
* :class:`GaussianPrior` -- ``w ~ N(mu, Sigma)``; its posterior mean is ridge regression (with
  ``mu = 0, Sigma = I``: ridge with ``lambda = s^2``), Bayes-optimal for Gaussian tasks
  (:func:`ridge_posterior`).

Every function works on all contexts and all context lengths at once.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = [
    "RegressionPrior",
    "FiniteTaskPrior",
    "GaussianPrior",
    "dmmse",
    "ridge_posterior",
    "predict",
    "check_context",
    "sample_contexts",
]


@runtime_checkable
class RegressionPrior(Protocol):
    """What the scorers need of a prior over task vectors ``w``."""

    d: int
    noise: float

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` task vectors ``[n, d]``."""
        ...

    def posterior_mean(self, x: Tensor, y: Tensor) -> Tensor:
        """``E[w | (x_i, y_i)_{i<k}]`` for every ``k``: ``[n, K, d]`` from ``x [n, K, d]``,
        ``y [n, K]`` (``k = 0`` is the prior mean)."""
        ...


def _positive(name: str, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise MindscopeError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def check_context(x: Tensor, y: Tensor, d: int | None = None) -> tuple[Tensor, Tensor]:
    """Check a batch of contexts ``x [n, K, d]``, ``y [n, K]``; one-line errors."""
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        raise MindscopeError("x and y must be torch tensors")
    if x.ndim != 3 or y.ndim != 2 or x.shape[:2] != y.shape:
        raise MindscopeError(
            f"contexts must be x [n, K, d] and y [n, K], got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if d is not None and x.shape[-1] != d:
        raise MindscopeError(f"x has width {x.shape[-1]}, the prior's tasks have width {d}")
    return x, y


def predict(prior: Any, x: Tensor, y: Tensor) -> Tensor:
    """The posterior-mean prediction of every ``y_k`` from the pairs before it: ``[n, K]``."""
    check_context(x, y, getattr(prior, "d", None))
    return (x * prior.posterior_mean(x, y).to(x.dtype)).sum(-1)


def _exclusive_cumsum(t: Tensor, dim: int) -> Tensor:
    """``out[k] = sum_{i<k} t[i]`` along ``dim``."""
    c = t.cumsum(dim)
    return c - t


def dmmse(
    tasks: Tensor,
    noise: float,
    x: Tensor,
    y: Tensor,
    *,
    log_weights: Tensor | None = None,
    budget: int = 1 << 20,
) -> Tensor:
    """Posterior mean of ``w`` under a finite task prior, after every prefix: ``[n, K, d]``.

    ``p(w_m | prefix k) ∝ pi_m exp(-sum_{i<k} (y_i - x_i . w_m)^2 / (2 s^2))``. Tasks are
    processed ``chunk`` at a time with a running (max, sum, weighted sum) -- a streaming
    log-sum-exp -- and contexts in slices, so no tensor exceeds about ``budget`` elements
    whatever ``M``.

    Args:
        tasks: ``[M, d]`` the task pool.
        noise: the noise variance ``s^2`` (> 0).
        x: ``[n, K, d]`` inputs; y: ``[n, K]`` targets.
        log_weights: ``[M]`` log prior weights (default uniform).
        budget: most elements of one ``[n_slice, K, chunk]`` block.
    """
    noise = _positive("noise", noise)
    check_context(x, y, tasks.shape[-1])
    n, k, d = x.shape
    m = tasks.shape[0]
    if m < 1:
        raise MindscopeError("the task pool is empty (M < 1)")
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    tasks = tasks.to(device=x.device, dtype=dtype)
    lw = None if log_weights is None else log_weights.to(device=x.device, dtype=dtype)
    # scaling x and y by 1/sqrt(2 s^2) makes the squared residual the negative log-likelihood
    c = (2.0 * noise) ** -0.5
    chunk = max(1, min(m, budget // max(1, k * min(n, 64))))
    rows = max(1, min(n, budget // max(1, k * chunk)))
    out = torch.empty(n, k, d, dtype=dtype, device=x.device)
    for r0 in range(0, n, rows):
        xs = x[r0 : r0 + rows].to(dtype) * c  # [b, K, d]
        ys = y[r0 : r0 + rows].to(dtype)[..., None] * c  # [b, K, 1]
        b = xs.shape[0]
        run_min = torch.full((b, k, 1), math.inf, dtype=dtype, device=x.device)  # [b, K, 1]
        run_sum = torch.zeros(b, k, 1, dtype=dtype, device=x.device)
        run_w = torch.zeros(b, k, d, dtype=dtype, device=x.device)  # [b, K, d]
        for c0 in range(0, m, chunk):
            wc = tasks[c0 : c0 + chunk]  # [c, d]
            sq = (xs @ wc.T).sub_(ys).square_()  # [b, K, c] scaled squared residuals
            nll = torch.empty_like(sq)
            nll[:, 0] = 0.0
            torch.cumsum(sq[:, :-1], 1, out=nll[:, 1:])  # [b, K, c] -log-lik of each prefix
            if lw is not None:
                nll.sub_(lw[c0 : c0 + chunk])
            new_min = torch.minimum(run_min, nll.amin(-1, keepdim=True))  # [b, K, 1]
            scale = torch.exp(new_min - run_min)  # [b, K, 1] (0 on the first chunk)
            p = torch.sub(new_min, nll, out=nll).exp_()  # [b, K, c] likelihood ratios
            run_sum.mul_(scale).add_(p.sum(-1, keepdim=True))
            run_w.mul_(scale).add_(p @ wc)  # [b, K, d]
            run_min = new_min
        out[r0 : r0 + rows] = run_w / run_sum
    return out


def ridge_posterior(
    x: Tensor,
    y: Tensor,
    noise: float,
    mean: Tensor | None = None,
    cov: Tensor | None = None,
) -> Tensor:
    """Posterior mean of ``w ~ N(mean, cov)`` after every prefix: ``[n, K, d]``.

    ``P_k = cov^-1 + X_k^T X_k / s^2``, ``E[w] = P_k^-1 (cov^-1 mean + X_k^T y_k / s^2)`` with
    ``X_k`` the first ``k`` inputs. With ``mean = 0`` and ``cov = I`` this is ridge regression
    with penalty ``lambda = s^2``.

    Args:
        x: ``[n, K, d]`` inputs; y: ``[n, K]`` targets.
        noise: noise variance ``s^2`` (> 0).
        mean: ``[d]`` prior mean (default 0); cov: ``[d, d]`` prior covariance (default I).
    """
    noise = _positive("noise", noise)
    check_context(x, y)
    dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    xs, ys = x.to(dtype), y.to(dtype)
    d = x.shape[-1]
    eye = torch.eye(d, dtype=dtype, device=x.device)
    prec0 = eye if cov is None else torch.linalg.inv(cov.to(dtype=dtype, device=x.device))
    mu = torch.zeros(d, dtype=dtype, device=x.device) if mean is None else mean.to(xs)
    xx = _exclusive_cumsum(xs[..., :, None] * xs[..., None, :], 1)  # [n, K, d, d]
    xy = _exclusive_cumsum(xs * ys[..., None], 1)  # [n, K, d]
    prec = prec0 + xx / noise  # [n, K, d, d]
    rhs = (prec0 @ mu) + xy / noise  # [n, K, d]
    return torch.linalg.solve(prec, rhs[..., None])[..., 0]


class FiniteTaskPrior:
    """``w`` drawn from a finite pool of ``M`` tasks (uniform, or with ``weights``).

    Args:
        tasks: ``[M, d]`` the pool.
        noise: the noise variance ``s^2`` the prior assumes (> 0).
        weights: ``[M]`` prior probabilities (default uniform).
        budget: memory bound of :func:`dmmse` (elements per block; small blocks stay in cache).
    """

    def __init__(
        self,
        tasks: Tensor,
        noise: float,
        weights: Tensor | None = None,
        budget: int = 1 << 20,
    ) -> None:
        if not isinstance(tasks, Tensor) or tasks.ndim != 2:
            raise MindscopeError("tasks must be a [M, d] tensor")
        if tasks.shape[0] < 1:
            raise MindscopeError(f"a finite task prior needs M >= 1 tasks, got {tasks.shape[0]}")
        self.tasks = tasks
        self.noise = _positive("noise", noise)
        self.d = int(tasks.shape[1])
        self.budget = budget
        self.log_weights = None
        if weights is not None:
            if weights.shape != (tasks.shape[0],) or (weights < 0).any() or weights.sum() <= 0:
                raise MindscopeError("weights must be [M] non-negative with a positive sum")
            self.log_weights = (weights / weights.sum()).log()

    @classmethod
    def sample_pool(
        cls, m: int, d: int, noise: float, seed: int, *, scale: float = 1.0
    ) -> FiniteTaskPrior:
        """A pool of ``m`` tasks drawn once from ``N(0, scale^2 I_d)`` with ``seed``."""
        if not isinstance(m, int) or m < 1:
            raise MindscopeError(f"the number of tasks M must be an integer >= 1, got {m!r}")
        gen = torch.Generator().manual_seed(seed)
        return cls(scale * torch.randn(m, d, generator=gen), noise)

    @property
    def n_tasks(self) -> int:
        """``M``."""
        return int(self.tasks.shape[0])

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` tasks drawn from the pool (with replacement, by the prior's weights)."""
        if self.log_weights is None:
            idx = torch.randint(0, self.n_tasks, (n,), generator=gen)
        else:
            idx = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=gen)
        return self.tasks[idx]

    def posterior_mean(self, x: Tensor, y: Tensor) -> Tensor:
        """dMMSE: ``[n, K, d]`` (see :func:`dmmse`)."""
        return dmmse(self.tasks, self.noise, x, y, log_weights=self.log_weights, budget=self.budget)

    def __repr__(self) -> str:
        return f"FiniteTaskPrior(M={self.n_tasks}, d={self.d}, noise={self.noise})"


class GaussianPrior:
    """``w ~ N(mean, cov)`` (default ``N(0, I_d)``): the posterior mean is ridge regression.

    Args:
        d: input width.
        noise: the noise variance ``s^2`` the prior assumes (> 0).
        mean: ``[d]`` (default 0); cov: ``[d, d]`` positive definite (default I).
    """

    def __init__(
        self, d: int, noise: float, mean: Tensor | None = None, cov: Tensor | None = None
    ) -> None:
        if not isinstance(d, int) or d < 1:
            raise MindscopeError(f"d must be an integer >= 1, got {d!r}")
        self.d = d
        self.noise = _positive("noise", noise)
        self.mean = mean
        self.cov = cov

    def sample(self, n: int, gen: torch.Generator) -> Tensor:
        """``n`` task vectors ``[n, d]``."""
        z = torch.randn(n, self.d, generator=gen)
        if self.cov is not None:
            z = z @ torch.linalg.cholesky(self.cov.float()).T
        return z if self.mean is None else z + self.mean

    def posterior_mean(self, x: Tensor, y: Tensor) -> Tensor:
        """Ridge: ``[n, K, d]`` (see :func:`ridge_posterior`)."""
        return ridge_posterior(x, y, self.noise, self.mean, self.cov)

    def __repr__(self) -> str:
        return f"GaussianPrior(d={self.d}, noise={self.noise})"


def sample_contexts(
    tasks: Tensor,
    k: int,
    noise_std: float,
    gen: torch.Generator,
    *,
    noise: str = "gaussian",
    df: float = 3.0,
    x_scale: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Contexts for the task vectors ``tasks [n, d]``: ``x [n, k, d] ~ N(0, x_scale^2 I)``,
    ``y [n, k] = x . w + e``.

    Args:
        noise: ``"gaussian"`` (``e ~ N(0, noise_std^2)``) or ``"student_t"`` (heavy tails:
            Student-t with ``df > 2`` degrees of freedom, scaled to variance ``noise_std^2``).
    """
    if not isinstance(k, int) or k < 1:
        raise MindscopeError(f"context length must be an integer >= 1, got {k!r}")
    if not math.isfinite(noise_std) or noise_std < 0:
        raise MindscopeError(f"noise_std must be >= 0, got {noise_std!r}")
    n, d = tasks.shape
    x = x_scale * torch.randn(n, k, d, generator=gen)
    if noise == "gaussian":
        e = torch.randn(n, k, generator=gen)
    elif noise == "student_t":
        if not df > 2:
            raise MindscopeError(f"student_t noise needs df > 2 (finite variance), got {df!r}")
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=gen)))
        e = torch.from_numpy(rng.standard_t(df, size=(n, k))).float() / math.sqrt(df / (df - 2))
    else:
        raise MindscopeError(f"noise must be 'gaussian' or 'student_t', got {noise!r}")
    y = (x @ tasks.float()[..., None])[..., 0] + noise_std * e
    return x, y
