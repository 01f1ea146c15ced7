"""JumpReLU (Rajamanoharan et al. 2024) and standard L1 sparse autoencoders.

Both set their sparsity by a penalty coefficient; to compare architectures at a matched L0 the
coefficient here follows a controller: after each step ``log coef += rate * (L0 - k) / k``, so the
batch L0 settles at the target ``k``.

JumpReLU: ``z = pre * H(pre - theta)`` with a learned threshold per latent; the L0 penalty
``coef * sum H(pre - theta)`` and the threshold get straight-through pseudo-derivatives with a
rectangle kernel of width ``bandwidth`` (the paper's estimator). L1: ``z = ReLU(pre)``, penalty
``coef * sum z`` (the decoder rows have unit norm, so this is Anthropic's ``|z| ||W_dec||``).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.sae.base import Active, SparseAutoencoder

__all__ = ["JumpReLUSAE", "L1SAE"]


def _rect(u: Tensor) -> Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(x, theta)
        ctx.eps = eps
        return x * (x > theta)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None]:
        x, theta = ctx.saved_tensors
        eps = ctx.eps
        gx = g * (x > theta)
        gt = g * (-(theta / eps) * _rect((x - theta) / eps))
        return gx, gt, None


class _Step(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor, theta: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(x, theta)
        ctx.eps = eps
        return (x > theta).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, Tensor, None]:
        x, theta = ctx.saved_tensors
        eps = ctx.eps
        return torch.zeros_like(x), g * (-(1.0 / eps) * _rect((x - theta) / eps)), None


class _Controlled(SparseAutoencoder):
    """Shared: a sparsity coefficient steered to the L0 target ``k``."""

    _params: ClassVar[tuple[str, ...]] = (*SparseAutoencoder._params, "coef", "coef_rate")

    def __init__(
        self,
        n_latents: int = 1024,
        k: int = 16,
        *,
        coef: float = 1.0,
        coef_rate: float = 0.02,
        **kwargs: Any,
    ) -> None:
        self.coef = coef
        self.coef_rate = coef_rate
        kwargs.setdefault("aux_coef", 0.0)
        super().__init__(n_latents, k, **kwargs)

    def _validate(self) -> None:
        super()._validate()
        if not self.coef > 0 or self.coef_rate < 0:
            raise MindscopeError("coef must be > 0 and coef_rate >= 0")

    def _init_extra(self) -> None:
        self.coef_ = float(self.coef)

    def _start_quantile(self, xn: Tensor) -> Tensor:
        """``[n_latents]`` per-latent quantile of the first batch's pre-activations at which
        each latent fires on a ``k / n_latents`` share of inputs (so the start has L0 ~ k)."""
        pre = self._pre(xn)  # [B, n_latents]
        q = 1 - self.k / self.n_latents
        return torch.quantile(pre, q, dim=0).clamp_min(1e-3)

    def _after_step(self, pre: Tensor, a: Active) -> None:
        l0 = float((a.vals.detach() > 0).sum()) / len(pre)
        err = max(-1.0, min(1.0, (l0 - self.k) / self.k))
        self.coef_ *= math.exp(self.coef_rate * err)

    def _state_scalars(self) -> dict[str, Any]:
        return {**super()._state_scalars(), "coef": self.coef_}

    def _load_scalars(self, s: dict[str, Any]) -> None:
        super()._load_scalars(s)
        self.coef_ = float(s.get("coef", self.coef))


class L1SAE(_Controlled):
    """ReLU latents with an L1 penalty (unit-norm decoder); the coefficient tracks L0 = ``k``.

    Args:
        coef: initial L1 coefficient (``coef_`` is the value reached).
        coef_rate: controller rate (0: a fixed coefficient).
        (others: see :class:`~mindscope.sae.base.SparseAutoencoder`)
    """

    arch: ClassVar[str] = "l1"

    def _init_from_batch(self, xn: Tensor) -> None:
        # start at L0 ~ k: shift each latent's bias so it fires on a k / n_latents share
        self.b_enc_ = self.b_enc_ - self._start_quantile(xn)

    def _select(self, pre: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        rows, cols = (pre > 0).nonzero(as_tuple=True)
        return rows, cols

    def _extra_loss(
        self, xn: Tensor, pre: Tensor, a: Active, x_hat: Tensor, params: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        return self.coef_ * a.vals.sum() / len(xn), {"coef": self.coef_}


class JumpReLUSAE(_Controlled):
    """JumpReLU latents with a learned threshold per latent and an L0 penalty.

    Args:
        bandwidth: width of the straight-through estimator's kernel (normalised units).
        init_threshold: starting threshold of every latent (replaced on the first batch by the
            quantile at which the latent fires on a ``k / n_latents`` share of inputs).
        coef: initial L0 coefficient; coef_rate: controller rate (0: fixed).
        (others: see :class:`~mindscope.sae.base.SparseAutoencoder`)
    """

    arch: ClassVar[str] = "jumprelu"
    _params: ClassVar[tuple[str, ...]] = (*_Controlled._params, "bandwidth", "init_threshold")
    _extra_tensors: ClassVar[tuple[str, ...]] = ("log_threshold_",)

    def __init__(
        self,
        n_latents: int = 1024,
        k: int = 16,
        *,
        bandwidth: float = 0.05,
        init_threshold: float = 0.1,
        coef: float = 0.1,
        **kwargs: Any,
    ) -> None:
        self.bandwidth = bandwidth
        self.init_threshold = init_threshold
        super().__init__(n_latents, k, coef=coef, **kwargs)

    def _init_extra(self) -> None:
        super()._init_extra()
        self.log_threshold_ = torch.full(
            (self.n_latents,), math.log(self.init_threshold), device=self.device
        )

    def _init_from_batch(self, xn: Tensor) -> None:
        # start at L0 ~ k: each latent's threshold at its own (1 - k / n_latents) quantile
        self.log_threshold_ = self._start_quantile(xn).log()

    def _trainable(self) -> list[tuple[str, Tensor]]:
        return [*super()._trainable(), ("log_threshold_", self.log_threshold_)]

    @property
    def threshold_(self) -> Tensor:
        """``[n_latents]`` thresholds."""
        return self.log_threshold_.exp()

    def _theta(self) -> Tensor:
        live = getattr(self, "_live", None)
        return live["log_threshold_"].exp() if live is not None else self.threshold_

    def _select(self, pre: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        theta = self.threshold_
        mask = pre > theta
        if train:  # entries in the kernel's band carry the threshold's gradient
            mask |= (pre - theta).abs() < self.bandwidth / 2
        rows, cols = mask.nonzero(as_tuple=True)
        return rows, cols

    def _activation(self, vals: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        theta = self._theta()[cols]
        if not vals.requires_grad:
            return vals * (vals > theta)
        return _JumpReLU.apply(vals, theta, self.bandwidth)  # type: ignore[no-any-return]

    def _extra_loss(
        self, xn: Tensor, pre: Tensor, a: Active, x_hat: Tensor, params: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        theta = params["log_threshold_"].exp()[a.cols]
        vals = pre[a.rows, a.cols]
        l0 = _Step.apply(vals, theta, self.bandwidth).sum() / len(xn)  # type: ignore[union-attr]
        return self.coef_ * l0, {"coef": self.coef_}
