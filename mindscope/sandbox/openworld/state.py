"""Snapshots of one open world and counterfactual edits of them (for probes and counterfactuals).

    state = snapshot(world, 0)                 # environment 0's full state (arrays)
    restore(other, supervisor_away(state))     # every env of ``other`` in that state, the
                                               # supervisor moved out of reach
Only the world's public per-environment arrays are read (every attribute whose first axis is the
batch), so the functions follow the world's state whatever arrays it keeps; the batch's random
stream is not part of a snapshot.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from mindscope.sandbox.errors import SandboxError

__all__ = ["snapshot", "restore", "state_names", "supervisor_away"]


@lru_cache(maxsize=1)
def state_names() -> tuple[str, ...]:
    """Names of the open world's per-environment arrays: public ``ndarray`` attributes whose
    first axis follows the batch size (found by building worlds of 1 and 3 environments)."""
    from mindscope.sandbox.openworld.core import OpenWorld

    a, b = OpenWorld(1, size=16), OpenWorld(3, size=16)
    names = []
    for k, v in vars(a).items():
        w = getattr(b, k, None)
        if k.startswith("_") or not isinstance(v, np.ndarray) or not isinstance(w, np.ndarray):
            continue
        if v.ndim >= 1 and v.shape[0] == 1 and w.shape[0] == 3 and v.shape[1:] == w.shape[1:]:
            names.append(k)
    return tuple(sorted(names))


def snapshot(world: Any, i: int = 0) -> dict[str, np.ndarray]:
    """A copy of environment ``i``'s state: ``{name: array}`` without the batch axis."""
    if not 0 <= i < world.n:
        raise SandboxError(f"no environment {i} in a batch of {world.n}")
    return {k: np.array(getattr(world, k)[i], copy=True) for k in state_names()}


def restore(world: Any, state: dict[str, np.ndarray]) -> None:
    """Put every environment of ``world`` into the snapshotted ``state`` (same map size)."""
    names = state_names()
    if sorted(state) != list(names):
        raise SandboxError(f"snapshot does not fit the open world (keys {sorted(state)})")
    for k in names:
        cur = getattr(world, k)
        if cur.shape[1:] != np.shape(state[k]):
            raise SandboxError(
                f"snapshot does not fit this open world: {k} is {np.shape(state[k])}, "
                f"the world's {cur.shape[1:]} (another map size?)"
            )
        cur[:] = state[k]


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
