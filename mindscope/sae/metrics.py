"""SAE metrics: reconstruction and sparsity on any activations, recovery of a planted truth.

On any activations: L0, fraction of variance explained, dead and dense fractions, shrinkage.
Against a planted dictionary (:class:`mindscope.sae.synthetic.PlantedDictionary`): the mean
matched cosine (MCC; true features and latents paired one-to-one by the Hungarian algorithm),
the precision / recall / F1 of each matched latent's firing against its feature's, and
uniqueness (how many distinct true features the latents' nearest matches cover).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = [
    "match_features",
    "mcc",
    "null_mcc",
    "firing_scores",
    "uniqueness",
    "reconstruction_metrics",
    "Matching",
]


@dataclass(frozen=True)
class Matching:
    """One-to-one pairing of true features and latents.

    Attributes:
        true_idx: ``[m]`` matched true features. latent_idx: ``[m]`` their latents.
        cos: ``[m]`` cosine of each pair. mcc: mean of ``cos``.
    """

    true_idx: np.ndarray
    latent_idx: np.ndarray
    cos: np.ndarray
    mcc: float


def _unit(w: Tensor) -> Tensor:
    w = torch.as_tensor(w).double()
    if w.ndim != 2 or w.shape[0] == 0:
        raise MindscopeError(f"a dictionary must be [n, d] with n >= 1, got {tuple(w.shape)}")
    return w / w.norm(dim=1, keepdim=True).clamp_min(1e-12)


def match_features(true: Tensor, learned: Tensor) -> Matching:
    """Hungarian matching maximising the summed cosine between ``true [N, d]`` and
    ``learned [m, d]`` directions (``min(N, m)`` pairs; MCC is their mean cosine)."""
    from scipy.optimize import linear_sum_assignment

    t, w = _unit(true), _unit(learned)
    if t.shape[1] != w.shape[1]:
        raise MindscopeError(f"true features have width {t.shape[1]}, latents {w.shape[1]}")
    cos = (t @ w.T).numpy()  # [N, m]
    r, c = linear_sum_assignment(cos, maximize=True)
    vals = cos[r, c]
    return Matching(r, c, vals, float(vals.mean()))


def mcc(true: Tensor, learned: Tensor) -> float:
    """Mean matched cosine between true ``[N, d]`` and learned ``[m, d]`` directions."""
    return match_features(true, learned).mcc


def null_mcc(true: Tensor, n_latents: int, *, reps: int = 3, seed: int = 0) -> float:
    """MCC of random Gaussian dictionaries of ``n_latents`` directions against ``true``: the
    value a dictionary that learned nothing reaches (mean over ``reps``)."""
    t = torch.as_tensor(true)
    # a stream of its own: a generator seeded like the planted one would redraw the truth
    g = torch.Generator().manual_seed(seed * 2_654_435_761 + 97_531)
    return float(
        np.mean(
            [
                mcc(t, torch.randn(n_latents, t.shape[1], generator=g, dtype=torch.float64))
                for _ in range(reps)
            ]
        )
    )


def firing_scores(codes: Tensor, latents: Tensor, m: Matching) -> dict[str, float]:
    """Precision, recall and F1 of each matched latent's firing (``> 0``) against its true
    feature's (``codes > 0``), averaged over the pairs whose feature fires at least once.

    Args:
        codes: ``[n, N]`` true coefficients. latents: ``[n, n_latents]`` the SAE's latents.
    """
    t = torch.as_tensor(codes)[:, torch.as_tensor(m.true_idx)] > 0  # [n, m]
    z = torch.as_tensor(latents)[:, torch.as_tensor(m.latent_idx)] > 0  # [n, m]
    tp = (t & z).sum(0).double()
    fires = t.sum(0) > 0
    prec = tp / z.sum(0).double().clamp_min(1)
    rec = tp / t.sum(0).double().clamp_min(1)
    f1 = 2 * prec * rec / (prec + rec).clamp_min(1e-12)
    if not bool(fires.any()):
        raise MindscopeError("no matched true feature fires in these samples")
    return {
        "precision": float(prec[fires].mean()),
        "recall": float(rec[fires].mean()),
        "f1": float(f1[fires].mean()),
    }


def uniqueness(true: Tensor, learned: Tensor, alive: Tensor | None = None) -> float:
    """Distinct true features among the (alive) latents' nearest true features, divided by the
    number of (alive) latents: 1 when no two latents chase the same feature."""
    w = _unit(learned)
    if alive is not None:
        w = w[torch.as_tensor(alive, dtype=torch.bool)]
    if len(w) == 0:
        return 0.0
    best = (_unit(true) @ w.T).argmax(0)  # [m]
    return float(len(torch.unique(best)) / len(w))


def reconstruction_metrics(
    x: Tensor, x_hat: Tensor, latents: Tensor, *, dense_threshold: float = 0.1
) -> dict[str, float]:
    """Reconstruction and sparsity of an SAE on ``x [n, d]``.

    Returns:
        ``l0`` (mean active latents), ``fve`` (1 - SSE / total variance), ``mse`` (mean squared
        error per input), ``dead_frac`` (latents never active here), ``dense_frac`` (active on
        more than ``dense_threshold`` of inputs), ``shrinkage`` (``sum <x_hat, x> / sum <x, x>``:
        below 1 when the SAE shrinks, as L1 does), ``norm_ratio`` (``sum ||x_hat|| /
        sum ||x||``).
    """
    x, x_hat, z = (torch.as_tensor(v).double() for v in (x, x_hat, latents))
    active = z > 0
    freq = active.double().mean(0)  # [n_latents]
    resid = (x - x_hat).pow(2).sum()
    total = (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)
    xx = (x * x).sum().clamp_min(1e-12)
    return {
        "l0": float(active.sum(-1).double().mean()),
        "fve": float(1 - resid / total),
        "mse": float((x - x_hat).pow(2).sum(-1).mean()),
        "dead_frac": float((freq == 0).double().mean()),
        "dense_frac": float((freq > dense_threshold).double().mean()),
        "shrinkage": float((x_hat * x).sum() / xx),
        "norm_ratio": float(x_hat.norm(dim=-1).sum() / x.norm(dim=-1).sum().clamp_min(1e-12)),
    }
