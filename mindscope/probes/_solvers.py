"""Batched solvers shared by the reporters (internal): L2 logistic regression by Newton's method.

Every function works on a batch of independent problems (one per layer, fold, strength...), so
fitting all layers costs one call, not one Python iteration per layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["logistic_newton", "platt"]


def _objective(xa: Tensor, theta: Tensor, y: Tensor, sw: Tensor, reg: Tensor) -> Tensor:
    """Weighted logistic loss plus ``0.5 * sum(reg * theta**2)``; returns ``[B]``."""
    z = torch.bmm(xa, theta.unsqueeze(-1)).squeeze(-1)  # [B, n]
    nll = (F.softplus(z) - y * z) * sw  # [B, n]
    return nll.sum(-1) + 0.5 * (reg * theta.square()).sum(-1)


def logistic_newton(
    x: Tensor,
    y: Tensor,
    inv_c: Tensor,
    *,
    sample_weight: Tensor | None = None,
    max_iter: int = 50,
    tol: float = 1e-8,
    init: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Minimise ``sum_i w_i logloss(x_i . coef + b, y_i) + ||coef||^2 / (2 C)`` for a batch.

    This is scikit-learn's ``LogisticRegression(C=C)`` objective (intercept not penalised),
    solved by damped Newton steps with backtracking, in float64.

    Args:
        x: features ``[B, n, f]``.
        y: 0/1 targets ``[B, n]`` or ``[n]``.
        inv_c: ``1 / C`` per problem, ``[B]``.
        sample_weight: ``[B, n]`` or ``[n]`` non-negative weights (0 drops an example).
        max_iter: Newton iterations at most.
        tol: stop when every problem's Newton decrement falls below ``tol``.
        init: warm start ``[B, f + 1]`` (coef then intercept).

    Returns:
        ``coef [B, f]`` and ``intercept [B]`` (float64).
    """
    b, n, f = x.shape
    dev = x.device
    xa = torch.cat([x.double(), x.new_ones(b, n, 1, dtype=torch.float64)], dim=-1)  # [B,n,f+1]
    yy = y.double().to(dev).expand(b, n)
    sw = (
        sample_weight.double().to(dev).expand(b, n)
        if sample_weight is not None
        else torch.ones(b, n, dtype=torch.float64, device=dev)
    )
    reg = torch.cat(
        [
            inv_c.double().to(dev)[:, None].expand(b, f),
            torch.full((b, 1), 1e-10, dtype=torch.float64, device=dev),
        ],
        dim=-1,
    )  # [B, f+1]; the tiny intercept ridge only keeps H invertible
    theta = (
        init.double().clone()
        if init is not None
        else torch.zeros(b, f + 1, dtype=torch.float64, device=dev)
    )
    eye = torch.eye(f + 1, dtype=torch.float64, device=dev)
    loss = _objective(xa, theta, yy, sw, reg)
    active = torch.ones(b, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        z = torch.bmm(xa, theta.unsqueeze(-1)).squeeze(-1)  # [B, n]
        p = torch.sigmoid(z)
        grad = torch.bmm(((p - yy) * sw).unsqueeze(1), xa).squeeze(1) + reg * theta  # [B, f+1]
        s = (p * (1 - p) * sw).clamp_min(1e-12)  # [B, n]
        hess = torch.bmm((xa * s.unsqueeze(-1)).transpose(1, 2), xa) + torch.diag_embed(reg)
        hess = hess + 1e-10 * eye
        step = torch.linalg.solve(hess, grad.unsqueeze(-1)).squeeze(-1)  # [B, f+1]
        decrement = (grad * step).sum(-1)  # [B], >= 0
        step = step * active[:, None]
        t = torch.ones(b, dtype=torch.float64, device=dev)
        accepted = torch.zeros(b, dtype=torch.bool, device=dev)
        new_theta = theta
        for _ in range(30):  # backtracking line search, batched
            cand = theta - t[:, None] * step
            cand_loss = _objective(xa, cand, yy, sw, reg)
            ok = cand_loss <= loss - 1e-4 * t * decrement
            newly = ok & ~accepted
            new_theta = torch.where(newly[:, None], cand, new_theta)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            t = torch.where(accepted, t, t * 0.5)
        theta = new_theta
        loss = _objective(xa, theta, yy, sw, reg)
        active = active & (decrement.abs() > tol) & accepted
        if not bool(active.any()):
            break
    return theta[:, :f], theta[:, f]


def platt(scores: Tensor, y: Tensor, sample_weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fit ``sigmoid(a * s + c)`` to labels for a batch of 1-D scores.

    Args:
        scores: ``[B, n]`` raw scores.
        y: ``[n]`` or ``[B, n]`` 0/1 labels.

    Returns:
        ``a [B]`` and ``c [B]`` (float64); ``a`` is negative when the score points the wrong way.
    """
    b = scores.shape[0]
    coef, icpt = logistic_newton(
        scores.double().unsqueeze(-1),
        y,
        torch.full((b,), 1e-6, dtype=torch.float64, device=scores.device),
        sample_weight=sample_weight,
    )
    return coef[:, 0], icpt
