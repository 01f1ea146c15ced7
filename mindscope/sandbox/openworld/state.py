"""Snapshots of one open world and counterfactual edits of them (for probes and counterfactuals).

    state = snapshot(world, 0)                 # environment 0's full state (arrays)
    restore(other, supervisor_away(state))     # every env of ``other`` in that state, the
                                               # supervisor moved out of reach
The world's per-environment arrays are found by their shapes (every array attribute with an axis
that follows the batch size, :func:`state_names`), so the functions follow the world's state
whatever arrays it keeps; the batch's random stream is not part of a snapshot.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mindscope.sandbox.errors import SandboxError

__all__ = ["snapshot", "restore", "state_names", "supervisor_away"]


@lru_cache(maxsize=1)
def state_names() -> tuple[tuple[str, int], ...]:
    """``(name, batch axis)`` of every array of the open world that holds per-environment state:
    attributes with one axis that follows the batch size (found by building worlds of 1 and 3
    environments), except per-row constants (the same in two differently seeded worlds while
    varying along the batch, like a row index). Public names sort after private ones, so a
    public view is restored last."""
    from mindscope.sandbox.openworld.core import OpenWorld

    a = OpenWorld(1, size=16, seed=0)
    b, c = OpenWorld(3, size=16, seed=0), OpenWorld(3, size=16, seed=1)
    out = []
    for k, v in vars(a).items():
        w, u = getattr(b, k, None), getattr(c, k, None)
        if not (
            isinstance(v, np.ndarray) and isinstance(w, np.ndarray) and isinstance(u, np.ndarray)
        ):
            continue
        if v.ndim != w.ndim:
            continue
        axes = [i for i in range(v.ndim) if v.shape[i] != w.shape[i]]
        if len(axes) != 1 or v.shape[axes[0]] != 1 or w.shape[axes[0]] != 3:
            continue
        ax = axes[0]
        varies = not bool((np.take(w, [0], axis=ax) == w).all())
        if varies and w.shape == u.shape and bool((w == u).all()):
            continue  # a per-row constant (row index, flat offset), not state
        out.append((k, ax))
    return tuple(sorted(out))


def snapshot(world: Any, i: int = 0) -> dict[str, np.ndarray]:
    """A copy of environment ``i``'s state: ``{name: array}`` without the batch axis."""
    if not 0 <= i < world.n:
        raise SandboxError(f"no environment {i} in a batch of {world.n}")
    return {k: np.take(getattr(world, k), i, axis=ax).copy() for k, ax in state_names()}


def restore(world: Any, state: dict[str, np.ndarray]) -> None:
    """Put every environment of ``world`` into the snapshotted ``state`` (same map size)."""
    names = state_names()
    if sorted(state) != sorted(k for k, _ in names):
        raise SandboxError(f"snapshot does not fit the open world (keys {sorted(state)})")
    for k, ax in names:
        cur = getattr(world, k)
        want = cur.shape[:ax] + cur.shape[ax + 1 :]
        if want != np.shape(state[k]):
            raise SandboxError(
                f"snapshot does not fit this open world: {k} is {np.shape(state[k])}, "
                f"the world's {want} (another map size?)"
            )
        np.moveaxis(cur, ax, 0)[:] = state[k]


def supervisor_away(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A copy of ``state`` with the supervisor moved to the map corner farthest from the player,
    where it stays (it only wanders within 4 steps of its home, so it cannot walk back) and
    watches nothing near the player."""
    out = {k: v.copy() for k, v in state.items()}
    for key in ("spos", "occ", "pos"):
        if key not in out:
            raise SandboxError(f"the open world's state has no {key!r}: cannot move the supervisor")
    from mindscope.sandbox.openworld import core

    occ, spos, pos = out["occ"], out["spos"], out["pos"]
    size = occ.shape[0]
    corners = np.array([[0, 0], [0, size - 1], [size - 1, 0], [size - 1, size - 1]])
    far = corners[np.abs(corners - pos[None]).sum(1).argmax()]
    if occ[spos[0], spos[1]] == core.SUPER:
        occ[spos[0], spos[1]] = 0
    spos[:] = far
    occ[far[0], far[1]] = core.SUPER
    return out
