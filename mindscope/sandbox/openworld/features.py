"""What a network reads of the open world's observations, and the check of its parameters.

Kept apart from the agents (:mod:`mindscope.sandbox.openworld_agents`) so that the agents,
recording and probing can all read the open world without the world reading them.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import numpy as np

from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.openworld.core import N_CODES, OpenWorld

__all__ = ["N_FEATURES", "N_VIEW", "OPEN_WORLD", "check_world_kwargs", "encode"]

OPEN_WORLD = "open_world"
"""The name that agents and recorded episodes give the open world."""

N_VIEW = 63
"""Cells of the 9x7 local view at the start of an observation."""
N_FEATURES = N_VIEW * N_CODES + 18
"""Width of :func:`encode`'s output."""


def encode(obs: np.ndarray) -> np.ndarray:
    """``[n, 81]`` symbolic observations -> ``[n, 63 * 25 + 18]`` float32 (one-hot view codes,
    inventory / 9, daylight, sleeping)."""
    view = obs[:, :N_VIEW].astype(np.int64)  # [n, 63]
    onehot = np.zeros((len(obs), N_VIEW, N_CODES), dtype=np.float32)
    np.put_along_axis(onehot, view[..., None], 1.0, axis=2)
    rest = obs[:, N_VIEW:].astype(np.float32)
    rest[:, :16] /= 9.0
    return np.concatenate([onehot.reshape(len(obs), -1), rest], axis=1)


def check_world_kwargs(world_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``world_kwargs`` if every key is a parameter of :class:`OpenWorld`; SandboxError naming
    the first unknown one and the known ones otherwise."""
    known = set(inspect.signature(OpenWorld.__init__).parameters) - {"self", "num_envs"}
    bad = sorted(set(world_kwargs) - known)
    if bad:
        raise SandboxError(
            f"unknown open-world parameter {bad[0]!r} (known: {', '.join(sorted(known))})"
        )
    return dict(world_kwargs)
