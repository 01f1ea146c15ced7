"""A Crafter-like open world, vectorised in NumPy, whose reward mechanism is part of the world.

    import gymnasium, mindscope.sandbox
    env = gymnasium.make("mindscope/OpenWorld-v0")
    venv = gymnasium.make_vec("mindscope/OpenWorld-v0", num_envs=4096,
                              vectorization_mode="vector_entry_point")

See :mod:`mindscope.sandbox.openworld.core` for the rules and the tamperable objects.
"""

from __future__ import annotations

from mindscope.sandbox.openworld.core import (
    ACHIEVEMENTS,
    ACTIONS,
    ITEMS,
    TAMPER_KINDS,
    OpenStep,
    OpenWorld,
    daylight,
)
from mindscope.sandbox.openworld.envs import OpenWorldEnv, OpenWorldVectorEnv, open_info

__all__ = [
    "ACHIEVEMENTS",
    "ACTIONS",
    "ITEMS",
    "TAMPER_KINDS",
    "OpenStep",
    "OpenWorld",
    "OpenWorldEnv",
    "OpenWorldVectorEnv",
    "daylight",
    "open_info",
]
