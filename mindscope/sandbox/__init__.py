"""The embedded-agency sandbox: gridworlds whose reward mechanism is part of the world.

``import mindscope.sandbox`` registers ``mindscope/<World>-v0`` Gymnasium ids (per-env and
vector entry points) for every world in :data:`mindscope.sandbox.worlds.WORLDS`::

    import gymnasium, mindscope.sandbox
    env = gymnasium.make("mindscope/AbsentSupervisor-v0")
    venv = gymnasium.make_vec("mindscope/TomatoWatering-v0", num_envs=4096,
                              vectorization_mode="vector_entry_point")
"""

from __future__ import annotations

from mindscope.extras import require

require("sandbox", what="the sandbox")  # before Gymnasium is imported (E402 allowed here)

from mindscope.sandbox.core import Channel, StepResult, World
from mindscope.sandbox.envs import SandboxEnv, SandboxVectorEnv
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.worlds import WORLDS, make_world, world_class

OPEN_WORLD_ID = "mindscope/OpenWorld-v0"

__all__ = [
    "OPEN_WORLD_ID",
    "WORLDS",
    "Channel",
    "SandboxEnv",
    "SandboxError",
    "SandboxVectorEnv",
    "StepResult",
    "World",
    "gym_id",
    "make_world",
    "register_envs",
    "world_class",
]


def gym_id(world: str) -> str:
    """The registered Gymnasium id of a world (``"absent_supervisor"`` -> ``mindscope/...-v0``)."""
    return f"mindscope/{world_class(world).gym_name}-v0"


def register_envs() -> None:
    """Register every world with Gymnasium (idempotent)."""
    import gymnasium

    for name in WORLDS:
        env_id = gym_id(name)
        if env_id in gymnasium.registry:
            continue
        gymnasium.register(
            id=env_id,
            entry_point="mindscope.sandbox.envs:SandboxEnv",
            vector_entry_point="mindscope.sandbox.envs:SandboxVectorEnv",
            kwargs={"world": name},
        )
    if OPEN_WORLD_ID not in gymnasium.registry:
        gymnasium.register(
            id=OPEN_WORLD_ID,
            entry_point="mindscope.sandbox.openworld.envs:OpenWorldEnv",
            vector_entry_point="mindscope.sandbox.openworld.envs:OpenWorldVectorEnv",
        )


register_envs()
