"""Gymnasium front ends of the open world: ``Env`` (one world) and a native ``VectorEnv``.

``gymnasium.make("mindscope/OpenWorld-v0")`` and ``gymnasium.make_vec("mindscope/OpenWorld-v0",
num_envs=4096, vectorization_mode="vector_entry_point")``. Observations are the symbolic view
``[81]`` float32 (:meth:`OpenWorld.observe`), actions ``Discrete(17)`` (Crafter's). Every step's
``info`` has ``observed_reward``, ``true_reward``, ``tamper``, one ``tamper_<kind>`` flag per
mechanism object (:data:`TAMPER_KINDS`), ``interrupted`` (the off-switch was pressed) and the
world's facts (``sensor_covered``, ``supervisor_watching``, ...). ``render_mode="rgb_array"``
draws the local view as pixels.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mindscope.sandbox import rng as srng
from mindscope.sandbox.channels import rule_rewards
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.openworld.core import ACTIONS, N_CODES, TAMPER_KINDS, OpenStep, OpenWorld

__all__ = ["OpenWorldEnv", "OpenWorldVectorEnv", "open_info", "view_rgb"]

N_OBS = 9 * 7 + 16 + 2


def _space() -> spaces.Box:
    return spaces.Box(0.0, float(N_CODES - 1), shape=(N_OBS,), dtype=np.float32)


def _actions(actions: Any, n: int) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape == () and n == 1:
        a = a.reshape(1)
    if a.shape != (n,) or a.dtype.kind not in "iu":
        raise SandboxError(
            f"actions must be {n} integer(s) in [0, {len(ACTIONS)}), got {actions!r}"
        )
    if a.min() < 0 or a.max() >= len(ACTIONS):
        raise SandboxError(f"action outside the action space [0, {len(ACTIONS)}): {actions!r}")
    return a.astype(np.int64)


def open_info(world: OpenWorld, res: OpenStep) -> dict[str, Any]:
    """The per-step truth of a batched step as a dict of ``[n]`` arrays."""
    info: dict[str, Any] = {
        "observed_reward": res.observed_reward,
        "true_reward": res.true_reward,
        "tamper": res.tamper,
        "interrupted": res.interrupted,
    }
    for j, k in enumerate(TAMPER_KINDS):
        info[f"tamper_{k}"] = res.tamper_kinds[:, j]
    info.update(world.facts())
    return info


_PALETTE = np.array(
    [
        [0, 0, 0],
        [50, 90, 200],
        [90, 180, 60],
        [120, 120, 120],
        [190, 170, 130],
        [220, 200, 130],
        [30, 110, 30],
        [230, 80, 20],
        [40, 40, 40],
        [200, 150, 110],
        [240, 240, 255],
        [140, 90, 40],
        [90, 60, 60],
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [0, 120, 120],
        [255, 0, 0],
        [120, 0, 0],
        [0, 180, 255],
        [250, 250, 250],
        [0, 100, 0],
        [255, 140, 0],
        [120, 200, 80],
        [200, 40, 90],
    ],
    dtype=np.uint8,
)


def view_rgb(world: OpenWorld, i: int = 0, unit: int = 8) -> np.ndarray:
    """Environment ``i``'s local view as pixels ``[7 * unit, 9 * unit, 3]`` uint8."""
    codes = world.local_view()[i].T  # [7, 9]: rows = y
    img = _PALETTE[codes]
    return np.repeat(np.repeat(img, unit, axis=0), unit, axis=1)


class OpenWorldEnv(gymnasium.Env):
    """One open world (``gymnasium.make("mindscope/OpenWorld-v0", **world_kwargs)``)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise SandboxError(f"unknown render_mode {render_mode!r}")
        self.world = OpenWorld(1, **kwargs)
        self.render_mode = render_mode
        self.observation_space = _space()
        self.action_space = spaces.Discrete(len(ACTIONS))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = srng.check_seed(seed)
        super().reset(seed=seed)
        if seed is not None:
            self.world.seed(seed)
        self.world.reset(None, options)
        return self.world.observe()[0], {k: v[0] for k, v in self.world.facts().items()}

    def step(self, action: Any):
        res = self.world.step(_actions(action, 1))
        info = {
            k: (v[0].item() if hasattr(v[0], "item") else v[0])
            for k, v in open_info(self.world, res).items()
        }
        return (
            self.world.observe()[0],
            float(res.observed_reward[0]),
            bool(res.terminated[0]),
            bool(res.truncated[0]),
            info,
        )

    def render(self):
        if self.render_mode == "rgb_array":
            return view_rgb(self.world, 0)
        return None


class OpenWorldVectorEnv(VectorEnv):
    """``num_envs`` open worlds stepped together; autoreset ``SAME_STEP`` (final observation in
    ``info["final_obs"]`` where ``info["_final_obs"]``)."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    rule_rewards = False
    """When True (a world with a rule channel), every step's ``info["rule_rewards"]`` ``[n, m]``
    holds the step's observed reward under each of the world's rule options, read before the
    finished environments are reset (:func:`mindscope.sandbox.channels.rule_rewards`)."""

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        self.world = OpenWorld(num_envs, **kwargs)
        self.num_envs = self.world.n
        self.render_mode = render_mode
        self.single_observation_space = _space()
        self.single_action_space = spaces.Discrete(len(ACTIONS))
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = srng.check_seed(seed)
        if seed is not None:
            self.world.seed(seed)
        self.world.reset(None, options)
        return self.world.observe(), self.world.facts()

    def step(self, actions: Any):
        w = self.world
        res = w.step(_actions(actions, self.num_envs))
        info = open_info(w, res)
        if self.rule_rewards:  # the rule channel's rewards, read before any reset
            info["rule_rewards"] = rule_rewards(w)
        obs = w.observe()
        done = res.terminated | res.truncated
        if done.any():
            info["final_obs"] = obs.copy()
            info["_final_obs"] = done
            w.reset(done)
            rows = np.flatnonzero(done)
            obs[rows] = w.observe(rows)
        return obs, res.observed_reward, res.terminated, res.truncated, info
