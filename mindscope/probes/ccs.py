"""Contrast-consistent search (Burns et al. 2022), batched over layers and restarts."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._inputs import Layout
from mindscope.probes._solvers import platt
from mindscope.probes.base import Reporter

__all__ = ["CcsReporter", "ccs_loss"]


def _loss_and_grad(xn: Tensor, w: Tensor, b: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """CCS loss ``[L, R]`` and its gradient w.r.t. the logits, ``[L, 2n, R]``."""
    n_layers, _, r = xn.shape[0], xn.shape[1], w.shape[1]
    z = torch.baddbmm(b[:, None, :], xn, w.transpose(1, 2))  # [L, 2n, R]
    p = torch.sigmoid(z).view(n_layers, n, 2, r)  # [L, n, 2, R]
    p0, p1 = p[:, :, 0], p[:, :, 1]  # [L, n, R]
    incons = p0 + p1 - 1
    low0 = p0 <= p1
    pmin = torch.where(low0, p0, p1)
    loss = (incons.square() + pmin.square()).mean(1)  # [L, R]
    dp0 = 2 * incons + torch.where(low0, 2 * p0, torch.zeros_like(p0))
    dp1 = 2 * incons + torch.where(low0, torch.zeros_like(p1), 2 * p1)
    gz = torch.stack([dp0 * p0 * (1 - p0), dp1 * p1 * (1 - p1)], dim=2) / n  # [L, n, 2, R]
    return loss, gz.view(n_layers, 2 * n, r)


def _top_direction(x: Tensor, gen: torch.Generator, iters: int = 6) -> Tensor:
    """Top principal direction of the centred pair differences, scaled to unit logit spread.

    Randomised block power iteration on ``x [L, n, 2, d]``; returns ``[L, d]``.
    """
    diff = x[:, :, 1] - x[:, :, 0]
    diff = diff - diff.mean(1, keepdim=True)  # [L, n, d]
    q = torch.randn(x.shape[0], x.shape[-1], 4, generator=gen).to(x.device)  # [L, d, 4]
    for _ in range(iters):
        q, _ = torch.linalg.qr(diff.transpose(1, 2) @ (diff @ q))
    v = q[..., 0]  # [L, d]
    spread = (x[:, :, 1] @ v[..., None]).std(dim=1).clamp_min(1e-6)  # [L, 1]
    return v / spread


def ccs_loss(logit0: Tensor, logit1: Tensor) -> Tensor:
    """CCS loss over the example axis (-1): consistency + confidence, squared.

    ``mean((p1 - (1 - p0))**2) + mean(min(p0, p1)**2)`` with ``p = sigmoid(logit)``.

    Args:
        logit0: ``[..., n]`` logits of the negative side.
        logit1: ``[..., n]`` logits of the positive side.

    Returns:
        ``[...]`` loss per problem.
    """
    p0, p1 = torch.sigmoid(logit0), torch.sigmoid(logit1)
    consistency = (p1 - (1 - p0)).square().mean(-1)
    confidence = torch.minimum(p0, p1).square().mean(-1)
    return consistency + confidence


class CcsReporter(Reporter):
    """CCS: a linear probe ``p(x) = sigmoid(w . x_norm + b)`` trained so that the two sides of
    each pair get consistent (``p1 ~ 1 - p0``) and confident credences, without labels.

    Each side is normalised with its own training mean and (if ``var_normalize``) per-dimension
    standard deviation, as in Burns et al.; test data reuse the training statistics. All layers
    and ``n_restarts`` random (spherical) initialisations are trained together by AdamW on one
    batched tensor ``[layers, restarts, d]``; per layer the restart with the lowest final CCS
    loss is kept (as elk and the paper do).

    Credence of a pair: ``sigmoid(a * (w . x1_norm - w . x0_norm) + c)``. With labels, ``a`` and
    ``c`` come from Platt scaling (so the sign follows the labels, as elk's Platt step does);
    without labels ``a = 1/2, c = 0`` (which equals the paper's ``(p1 + 1 - p0) / 2`` for a
    consistent probe) and the sign is arbitrary: ``labels_used_`` is False and
    :func:`mindscope.probes.evaluate` then reports ``max(auroc, 1 - auroc)`` as elk does.

    Args:
        n_restarts: random initialisations per layer.
        n_steps: AdamW steps (full batch).
        lr: AdamW learning rate.
        weight_decay: AdamW (decoupled) weight decay.
        var_normalize: divide each side by its per-dimension standard deviation.
        pca_init: start restart 0 from the top principal direction of the normalised pair
            differences (elk's ``init="pca"``); the other restarts stay random.
        seed: seed of the initialisations.
    """

    _params = ("n_restarts", "n_steps", "lr", "weight_decay", "var_normalize", "pca_init", "seed")
    _features = "both"
    supervised = False
    method = "ccs"

    def __init__(
        self,
        n_restarts: int = 10,
        n_steps: int = 100,
        lr: float = 1e-2,
        weight_decay: float = 0.01,
        var_normalize: bool = True,
        pca_init: bool = True,
        seed: int = 0,
    ) -> None:
        if n_restarts < 1 or n_steps < 1:
            raise MindscopeError("n_restarts and n_steps must be at least 1")
        self.n_restarts = int(n_restarts)
        self.n_steps = int(n_steps)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.var_normalize = bool(var_normalize)
        self.pca_init = bool(pca_init)
        self.seed = int(seed)

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        if not layout.paired:
            raise MindscopeError("CcsReporter needs contrast pairs [n, 2, d] or [layers, n, 2, d]")
        x = x.float()
        n_layers, n, _, d = x.shape
        mean = x.mean(dim=1)  # [L, 2, d] per-side training mean
        if self.var_normalize:
            scale = x.std(dim=1).clamp_min(1e-6)  # [L, 2, d]
        else:
            scale = torch.ones_like(mean)
        xn = ((x - mean[:, None]) / scale[:, None]).reshape(n_layers, n * 2, d)  # [L, 2n, d]

        w, b, loss = self._train(xn, n)  # w: [L, R, d], b/loss: [L, R]
        best = loss.argmin(dim=1)  # [L]
        rows = torch.arange(n_layers, device=x.device)
        w_best = w[rows, best]  # [L, d]
        self.loss_ = loss[rows, best]
        self.restart_losses_ = loss

        scores = (xn.view(n_layers, n, 2, d) @ w_best[:, None, :, None]).squeeze(-1)  # [L, n, 2]
        raw = scores[..., 1] - scores[..., 0]  # [L, n]; the probe bias cancels in the pair
        if y is not None:
            a, c = platt(raw, y)
        else:
            a = torch.full((n_layers,), 0.5, dtype=torch.float64, device=x.device)
            c = torch.zeros(n_layers, dtype=torch.float64, device=x.device)
        coef = torch.stack([-w_best, w_best], dim=1) * a.float()[:, None, None]  # [L, 2, d]
        self._set_linear(mean, scale, coef, c)

    def _train(self, xn: Tensor, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """Batched AdamW on all (layer, restart) probes; returns ``w``, ``b``, final loss.

        ``xn`` is ``[L, 2n, d]`` (pairs interleaved: row ``2i + s`` is side ``s`` of pair ``i``).
        Gradients are computed in closed form: two batched matmuls per step.
        """
        n_layers, _, d = xn.shape
        r = self.n_restarts
        gen = torch.Generator().manual_seed(self.seed)
        theta = torch.randn(n_layers, r, d + 1, generator=gen).to(xn.device)
        theta = theta / theta.norm(dim=-1, keepdim=True)  # spherical init, as in the paper
        w = theta[..., :d].contiguous()  # [L, R, d]
        b = theta[..., d].contiguous()  # [L, R]
        if self.pca_init:
            w[:, 0] = _top_direction(xn.view(n_layers, n, 2, d), gen)  # [L, d]
            b[:, 0] = 0.0
        m_w, v_w = torch.zeros_like(w), torch.zeros_like(w)
        m_b, v_b = torch.zeros_like(b), torch.zeros_like(b)
        beta1, beta2, eps = 0.9, 0.999, 1e-8
        for step in range(1, self.n_steps + 1):
            _, gz = _loss_and_grad(xn, w, b, n)  # gz: [L, 2n, R]
            g_w = torch.bmm(gz.transpose(1, 2), xn)  # [L, R, d]
            g_b = gz.sum(1)  # [L, R]
            c1, c2 = 1 - beta1**step, 1 - beta2**step
            for p, g, m, v in ((w, g_w, m_w, v_w), (b, g_b, m_b, v_b)):
                p.mul_(1 - self.lr * self.weight_decay)  # decoupled weight decay (AdamW)
                m.mul_(beta1).add_(g, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                p.addcdiv_(m / c1, (v / c2).sqrt_().add_(eps), value=-self.lr)
        final, _ = _loss_and_grad(xn, w, b, n)
        return w, b, final

    def _tensor_names(self) -> tuple[str, ...]:
        return ("mean_", "scale_", "coef_", "intercept_")
