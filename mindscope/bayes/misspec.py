"""Misspecification: task vectors the training prior cannot produce (or assigns no mass to).

:func:`shift_tasks` draws evaluation task vectors by one named rule, each a single config key of
the ``bayes`` stage (``tasks``):

* ``pool`` -- from the training pool (realizable: dMMSE is Bayes-optimal);
* ``gaussian`` -- ``N(0, I)`` (realizable for the Gaussian prior, off the pool for finite M);
* ``scaled`` -- a pool task times ``scale`` (off the support unless ``scale = 1``);
* ``rotated`` -- a pool task rotated by ``angle`` radians in a random plane;
* ``cap`` -- uniform on the sphere of radius ``sqrt(d)`` within ``angle`` of a random pole (a
  spherical cap: a region of task space, all of it off the pool).

Noise level, heavy-tailed noise and context length are keys of their own
(:func:`mindscope.bayes.regression.sample_contexts`).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = ["TASK_SHIFTS", "shift_tasks", "rotation_in_plane", "spherical_cap"]

TASK_SHIFTS = ("pool", "gaussian", "scaled", "rotated", "cap")


def rotation_in_plane(d: int, angle: float, gen: torch.Generator) -> Tensor:
    """``[d, d]`` rotation by ``angle`` in a random 2-plane (identity elsewhere)."""
    if d < 2:
        raise MindscopeError("a rotation needs d >= 2")
    q, _ = torch.linalg.qr(torch.randn(d, 2, generator=gen, dtype=torch.float64))
    u, v = q[:, 0], q[:, 1]
    c, s = math.cos(angle), math.sin(angle)
    eye = torch.eye(d, dtype=torch.float64)
    r = (
        eye
        + (c - 1) * (torch.outer(u, u) + torch.outer(v, v))
        + s * (torch.outer(v, u) - torch.outer(u, v))
    )
    return r.float()


def spherical_cap(n: int, d: int, angle: float, gen: torch.Generator, radius: float) -> Tensor:
    """``n`` points uniform on the cap of half-angle ``angle`` of the radius-``radius`` sphere
    around a random pole: ``[n, d]`` (inverse-CDF of the polar angle, density ``sin^{d-2}``)."""
    if not 0 < angle <= math.pi:
        raise MindscopeError(f"cap angle must be in (0, pi], got {angle!r}")
    pole = torch.randn(d, generator=gen, dtype=torch.float64)
    pole /= pole.norm()
    grid = np.linspace(0.0, angle, 4097)
    dens = np.sin(grid) ** max(0, d - 2)
    cdf = np.concatenate([[0.0], np.cumsum((dens[1:] + dens[:-1]) / 2)])
    cdf /= cdf[-1]
    u = torch.rand(n, generator=gen, dtype=torch.float64).numpy()
    theta = torch.from_numpy(np.interp(u, cdf, grid))  # [n]
    z = torch.randn(n, d, generator=gen, dtype=torch.float64)
    z -= (z @ pole)[:, None] * pole  # [n, d] orthogonal to the pole
    z /= z.norm(dim=1, keepdim=True).clamp_min(1e-12)
    pts = torch.cos(theta)[:, None] * pole + torch.sin(theta)[:, None] * z
    return (radius * pts).float()


def shift_tasks(
    kind: str,
    pool: Tensor,
    n: int,
    gen: torch.Generator,
    *,
    scale: float = 2.0,
    angle: float = math.pi / 4,
) -> Tensor:
    """``n`` evaluation task vectors ``[n, d]`` by rule ``kind`` (see the module docstring).

    Args:
        pool: ``[M, d]`` the training tasks.
        scale: factor of ``scaled``; angle: radians of ``rotated`` and half-angle of ``cap``.
    """
    if kind not in TASK_SHIFTS:
        raise MindscopeError(f"unknown task shift {kind!r}; choose from {', '.join(TASK_SHIFTS)}")
    m, d = pool.shape
    if kind == "gaussian":
        return torch.randn(n, d, generator=gen)
    if kind == "cap":
        return spherical_cap(n, d, angle, gen, math.sqrt(d))
    picked = pool[torch.randint(0, m, (n,), generator=gen)].float()  # [n, d]
    if kind == "scaled":
        return scale * picked
    if kind == "rotated":
        return picked @ rotation_in_plane(d, angle, gen).T
    return picked
