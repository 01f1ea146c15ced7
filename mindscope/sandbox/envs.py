"""Gymnasium front ends of the vectorised core: a per-env ``Env`` and a native ``VectorEnv``.

Both wrap a :class:`mindscope.sandbox.core.World`; :class:`SandboxEnv` is that core with batch
size 1, so ``SandboxEnv(w).reset(seed=s)`` follows exactly environment 0 of
``SandboxVectorEnv(w, n).reset(seed=s)``. Every step's ``info`` carries ``observed_reward``,
``true_reward`` (the hidden performance), ``tamper`` (bool), ``tamper_channel`` (the channel's
name where ``tamper`` else ``""``), ``first_tamper_step`` (-1 until the episode's first tamper),
``actual_action`` (the action the world executed: an interruption or the whisky can replace the
agent's) and world-specific facts (``supervisor``, ``interrupted``, ...).

The vector env resets finished environments in the same step (``AutoresetMode.SAME_STEP``): the
observation returned for them is the first of the new episode and the last one of the finished
episode is in ``info["final_obs"]`` (rows valid where ``info["_final_obs"]``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from mindscope.sandbox import channels, rng
from mindscope.sandbox.core import N_ACTIONS, StepResult, World
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.worlds import make_world

__all__ = ["SandboxEnv", "SandboxVectorEnv", "step_info"]


def _check_actions(actions: Any, n: int) -> np.ndarray:
    a = np.asarray(actions)
    if a.shape == () and n == 1:
        a = a.reshape(1)
    if a.shape != (n,) or a.dtype.kind not in "iu":
        if a.shape == (n,) and a.dtype.kind == "f" and np.all(a == np.round(a)):
            a = a.astype(np.int64)
        else:
            raise SandboxError(
                f"actions must be {n} integer(s) in [0, {N_ACTIONS}), got {actions!r}"
            )
    if n and (a.min() < 0 or a.max() >= N_ACTIONS):
        raise SandboxError(f"action outside the action space [0, {N_ACTIONS}): {actions!r}")
    return a.astype(np.int64, copy=False)


def step_info(world: World, res: StepResult) -> dict[str, Any]:
    """The per-step truth of a batched step as a dict of ``[n]`` arrays."""
    info: dict[str, Any] = {
        "observed_reward": res.observed_reward,
        "true_reward": res.true_reward,
        "tamper": res.tamper,
        "tamper_channel": np.where(res.tamper, world.channel.name, ""),
        "first_tamper_step": world.first_tamper.copy(),
        "step": world.t.copy(),
        "actual_action": np.asarray(world.actual_actions, dtype=np.int64),
    }
    info.update(world.extra_info())
    return info


def _observation_space(world: World) -> spaces.Box:
    return spaces.Box(0.0, world.max_code, shape=(world.H, world.W), dtype=np.float32)


class SandboxEnv(gymnasium.Env):
    """One environment of a sandbox world (``gymnasium.make("mindscope/<World>-v0")``).

    Observations are ``[H, W]`` float32 boards (the original's codes), actions ``Discrete(4)``
    (up, down, left, right). Keyword arguments go to the world (``tamper``, ``tamper_delay``,
    world-specific ones such as ``supervisor_probability``).
    """

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, world: str, render_mode: str | None = None, **kwargs: Any) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise SandboxError(f"unknown render_mode {render_mode!r}")
        self.world = make_world(world, 1, **kwargs)
        self.render_mode = render_mode
        self.observation_space = _observation_space(self.world)
        self.action_space = spaces.Discrete(N_ACTIONS)
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = rng.check_seed(seed)
        super().reset(seed=seed)
        if seed is not None or not self._seeded:
            self.world.seed(seed)
            self._seeded = True
        self.world.reset(None, options)
        info = {k: v[0] for k, v in self.world.extra_info().items()}
        return self.world.observe()[0], info

    def step(self, action: Any):
        a = _check_actions(action, 1)
        res = self.world.step(a)
        info = {
            k: (v[0].item() if hasattr(v[0], "item") else v[0])
            for k, v in step_info(self.world, res).items()
        }
        return (
            self.world.observe()[0],
            float(res.observed_reward[0]),
            bool(res.terminated[0]),
            bool(res.truncated[0]),
            info,
        )

    def render(self):
        from mindscope.sandbox.render import board_rgb, board_text

        if self.render_mode == "ansi":
            return board_text(self.world, 0)
        if self.render_mode == "rgb_array":
            return board_rgb(self.world, self.world.observe()[0])
        return None


class SandboxVectorEnv(VectorEnv):
    """``num_envs`` environments of one world stepped together by the NumPy core.

    ``reset(seed=s)`` seeds environment ``i`` from ``(s, i)`` only, so any batch size gives the
    same trajectories for the same actions. Autoreset: ``AutoresetMode.SAME_STEP``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": ["ansi"]}
    rule_rewards = False
    """When True (a world with a rule channel), every step's ``info["rule_rewards"]`` ``[n, m]``
    holds the step's observed reward under each of the world's rule options, read before the
    finished environments are reset (:func:`mindscope.sandbox.channels.rule_rewards`)."""

    def __init__(
        self, world: str, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any
    ) -> None:
        self.world = make_world(world, num_envs, **kwargs)
        self.num_envs = self.world.n
        self.render_mode = render_mode
        self.single_observation_space = _observation_space(self.world)
        self.single_action_space = spaces.Discrete(N_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        seed = rng.check_seed(seed)
        if seed is not None or not self._seeded:
            self.world.seed(seed)
            self._seeded = True
        self.world.reset(None, options)
        return self.world.observe(), self.world.extra_info()

    def step(self, actions: Any):
        a = _check_actions(actions, self.num_envs)
        w = self.world
        res = w.step(a)
        obs = w.observe()
        info = step_info(w, res)
        if self.rule_rewards:  # the rule channel's rewards, read before any reset
            info["rule_rewards"] = channels.rule_rewards(w)
        done = res.terminated | res.truncated
        if done.any():
            info["final_obs"] = obs.copy()
            info["_final_obs"] = done
            w.reset(done)
            obs[done] = w.observe()[done]
        return obs, res.observed_reward, res.terminated, res.truncated, info

    def render(self):
        from mindscope.sandbox.render import board_text

        return "\n\n".join(board_text(self.world, i) for i in range(self.num_envs))
