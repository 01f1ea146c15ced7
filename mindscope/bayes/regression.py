"""Closed-form posteriors of in-context linear regression: ``y = w . x + e``, ``e ~ N(0, s^2)``.

A *regression prior* is any object with ``d`` (input width), ``noise`` (the noise variance
``s^2`` it assumes) and ``posterior_mean(x, y) -> [n, K, d]``: the posterior mean of ``w`` after
each prefix of a context. Because the prediction is linear in ``w``, the Bayes predictor of
``y_k`` (squared error) is ``x_k . E[w | (x_i, y_i)_{i<k}]`` (:func:`predict`). Two priors ship:

* :class:`FiniteTaskPrior` -- ``w`` uniform (or weighted) over a finite pool of ``M`` tasks. Its
  posterior mean is the *dMMSE* predictor of Raventos et al. (2023), Bayes-optimal for the
  pretraining distribution of a task-diversity-``M`` transformer; computed as softmax attention
  of prefixes over tasks (fused kernel, chunks of tasks merged by a streaming log-sum-exp), so
  memory is bounded in ``M`` (:func:`dmmse`).
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


def _quadratic_features(x: Tensor, y: Tensor, noise: float, log_weights: bool) -> Tensor:
    """The context side of every prefix's log-likelihood, as one row per prefix: ``[n*K, P]``.

    ``-sum_{i<k} (y_i - x_i . w)^2 / (2 s^2) = q_k . phi(w) + c_k``, with the task features
    ``phi(w) = [w, w_a w_b for a <= b (, log prior weight)]`` (:func:`_task_features`) and
    ``q_k = [b_k / s^2, -(2 - [a = b]) A_k,ab / (2 s^2) (, 1)]``, ``A_k = sum_{i<k} x_i x_i^T``,
    ``b_k = sum_{i<k} y_i x_i``. ``c_k`` does not depend on ``w`` and cancels in the posterior.
    ``P = d + d(d+1)/2`` (+1 with log weights).
    """
    n, k, d = x.shape
    ia, ib = torch.triu_indices(d, d, device=x.device)
    off = (2.0 - (ia == ib).to(x.dtype)) / (-2.0 * noise)  # [d(d+1)/2]
    parts = [
        _exclusive_cumsum(x * y[..., None], 1) / noise,  # [n, K, d]
        _exclusive_cumsum(x[..., ia] * x[..., ib], 1) * off,  # [n, K, d(d+1)/2]
    ]
    if log_weights:
        parts.append(torch.ones(n, k, 1, dtype=x.dtype, device=x.device))
    return torch.cat(parts, -1).reshape(n * k, -1)


def _task_features(tasks: Tensor, log_weights: Tensor | None) -> Tensor:
    """``phi(w)`` of every task: ``[M, P]``; its first ``d`` columns are ``w`` itself."""
    d = tasks.shape[1]
    ia, ib = torch.triu_indices(d, d, device=tasks.device)
    parts = [tasks, tasks[:, ia] * tasks[:, ib]]
    if log_weights is not None:
        parts.append(log_weights[:, None])
    return torch.cat(parts, -1).contiguous()


def _fused_attention() -> Any:
    """PyTorch's fused CPU attention kernel returning the log-normaliser, or None."""
    return getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)


def _softmax_mean(q: Tensor, kf: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """``softmax(q kf^T) kf`` and its log-normaliser ``logsumexp(q kf^T)`` over one chunk.

    ``q [r, P]``, ``kf [c, P]`` -> ``([r, P], [r])``. On CPU the fused attention kernel does it
    without materialising ``[r, c]`` (blocks inside the kernel); elsewhere, or if the kernel
    refuses, rows go ``budget // c`` at a time through plain matmuls.
    """
    op = _fused_attention()
    if op is not None and q.device.type == "cpu":
        try:
            out, lse = op(q[None, None], kf[None, None], kf[None, None], scale=1.0)
            return out[0, 0], lse[0, 0].to(q.dtype)
        except (RuntimeError, NotImplementedError):  # pragma: no cover - older builds
            pass
    outs, lses = [], []
    step = max(1, budget // kf.shape[0])
    for r0 in range(0, q.shape[0], step):
        logits = q[r0 : r0 + step] @ kf.T  # [r, c]
        lse = logits.logsumexp(1)  # [r]
        outs.append(logits.sub_(lse[:, None]).exp_() @ kf)
        lses.append(lse)
    return torch.cat(outs), torch.cat(lses)


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

    ``p(w_m | prefix k) ∝ pi_m exp(-sum_{i<k} (y_i - x_i . w_m)^2 / (2 s^2))``. The exponent is
    a dot product of a per-prefix feature ``q_k`` (running sums ``sum x_i x_i^T`` and
    ``sum y_i x_i``) with a per-task feature ``phi(w_m) = [w_m, w_m w_m^T]``, so the posterior
    mean is softmax attention: queries are the ``n*K`` prefixes, keys the ``M`` tasks' features,
    values the tasks. It runs as one fused kernel call per (slice of contexts, chunk of tasks),
    and chunks of tasks are merged with their log-normalisers (a streaming log-sum-exp): no
    tensor exceeds about ``budget`` elements whatever ``M`` and ``n``.

    Precision: the exponent is a difference of terms of size ``k |w|^2 / (2 s^2)``; in float32
    the posterior mean is within about 1e-4 of the exact one at ``s^2 = 0.25``, ``K = 16``,
    ``|w|^2 = 8``; pass float64 contexts for float64 work.

    Args:
        tasks: ``[M, d]`` the task pool.
        noise: the noise variance ``s^2`` (> 0).
        x: ``[n, K, d]`` inputs; y: ``[n, K]`` targets (float64 in -> float64 work, else float32).
        log_weights: ``[M]`` log prior weights (default uniform).
        budget: most elements of one feature block (``[rows, P]`` or ``[chunk, P]``,
            ``P = d + d(d+1)/2``).
    """
    noise = _positive("noise", noise)
    check_context(x, y, tasks.shape[-1])
    n, k, d = x.shape
    m = tasks.shape[0]
    if m < 1:
        raise MindscopeError("the task pool is empty (M < 1)")
    if log_weights is not None and tuple(log_weights.shape) != (m,):
        raise MindscopeError(f"log_weights must be [M] = [{m}], got {tuple(log_weights.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    tasks = tasks.to(device=x.device, dtype=dtype)
    lw = None if log_weights is None else log_weights.to(device=x.device, dtype=dtype)
    p = d + d * (d + 1) // 2 + (lw is not None)  # features per task
    chunk = max(1, budget // p)  # tasks per kernel call
    rows = max(1, budget // (p * k))  # contexts per slice

    def feats(c0: int) -> Tensor:  # [chunk, P], built per chunk so memory stays flat in M
        return _task_features(tasks[c0 : c0 + chunk], None if lw is None else lw[c0 : c0 + chunk])

    out = torch.empty(n, k, d, dtype=dtype, device=x.device)
    for r0 in range(0, n, rows):
        q = _quadratic_features(
            x[r0 : r0 + rows].to(dtype), y[r0 : r0 + rows].to(dtype), noise, lw is not None
        )  # [b*K, P]
        acc, run = _softmax_mean(q, feats(0), budget)
        acc = acc[:, :d]  # [b*K, d]
        for c0 in range(chunk, m, chunk):
            mean_c, lse_c = _softmax_mean(q, feats(c0), budget)
            new = torch.logaddexp(run, lse_c)  # [b*K]
            acc = acc * (run - new).exp()[:, None] + mean_c[:, :d] * (lse_c - new).exp()[:, None]
            run = new
        out[r0 : r0 + rows] = acc.reshape(-1, k, d)
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
