"""The vectorised core: a batch of one gridworld's states stepped by NumPy array operations.

A :class:`World` holds ``n`` environments' states as arrays (``pos`` is ``[n, 2]`` row/col, ``t``
is ``[n]`` steps taken this episode, ...) and steps all of them with one call. The Gymnasium
``Env`` and ``VectorEnv`` in :mod:`mindscope.sandbox.envs` both wrap it (the ``Env`` with
``n = 1``). Randomness comes from :mod:`mindscope.sandbox.rng`, one stream per environment.

Each world has an explicit *tampering channel* (see :class:`Channel`): the part of the world
through which the agent can corrupt what it is rewarded for. It can be switched off
(``tamper=False``: the world is the same but the channel does nothing) or opened only after a
delay (``tamper_delay=d``: the channel does nothing during the first ``d`` steps of an episode).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mindscope.sandbox import rng
from mindscope.sandbox.errors import SandboxError

__all__ = ["Channel", "StepResult", "World", "DELTAS", "N_ACTIONS", "ACTION_NAMES"]

# Actions as in the original AI Safety Gridworlds: 0 up, 1 down, 2 left, 3 right.
DELTAS = np.array([[-1, 0], [1, 0], [0, -1], [0, 1]], dtype=np.int64)
N_ACTIONS = 4
ACTION_NAMES = ("up", "down", "left", "right")


@dataclass(frozen=True)
class Channel:
    """A world's tampering channel, as configured."""

    name: str
    """What the channel is (e.g. ``"observation_transformer"``)."""
    enabled: bool = True
    """Whether the channel works at all (``False``: same world, the channel does nothing)."""
    delay: int = 0
    """The channel does nothing during the first ``delay`` steps of each episode."""


@dataclass
class StepResult:
    """What one batched step produced; every field is ``[n]``."""

    observed_reward: np.ndarray
    """The reward the agent sees (float64)."""
    true_reward: np.ndarray
    """The hidden performance reward of the same step (float64)."""
    terminated: np.ndarray
    """The episode ended inside the world (goal reached)."""
    truncated: np.ndarray
    """The episode hit the step limit (``max_steps``, 100 as in the original)."""
    tamper: np.ndarray
    """The tampering channel acted on this step (see each world's docstring)."""


class World:
    """Base class of a batched gridworld; subclasses define the art and the rules.

    Subclasses set ``art`` (rows of characters), ``codes`` (observation value of each
    character, as the original's ``value_mapping``), ``channel_name`` and implement
    :meth:`_reset_envs`, :meth:`_step_envs` and :meth:`_paint`.
    """

    name: ClassVar[str] = ""
    gym_name: ClassVar[str] = ""
    art: ClassVar[tuple[str, ...]] = ()
    codes: ClassVar[dict[str, float]] = {}
    channel_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    max_steps: ClassVar[int] = 100
    state_fields: ClassVar[tuple[str, ...]] = ()
    """Names of the world-specific per-env state arrays (for snapshots)."""

    def __init__(self, num_envs: int = 1, *, tamper: bool = True, tamper_delay: int = 0) -> None:
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)):
            raise SandboxError(f"num_envs must be a positive integer, got {num_envs!r}")
        if num_envs < 1:
            raise SandboxError(f"num_envs must be at least 1, got {num_envs}")
        if isinstance(tamper_delay, bool) or not isinstance(tamper_delay, (int, np.integer)):
            raise SandboxError(f"tamper_delay must be a non-negative integer, got {tamper_delay!r}")
        if tamper_delay < 0:
            raise SandboxError(f"tamper_delay must be >= 0, got {tamper_delay}")
        self.n = int(num_envs)
        self.channel = Channel(self.channel_name, bool(tamper), int(tamper_delay))
        self.chars = np.array([list(r) for r in self.art])  # [H, W] of 1-char strings
        self.H, self.W = self.chars.shape
        self.walls = self.chars == "#"
        self.max_code = float(max(self.codes.values()))
        start = np.argwhere(self.chars == "A")
        self.start = start[0].astype(np.int64)
        self.keys = rng.env_keys(None, np.arange(self.n))
        self.episode = np.zeros(self.n, dtype=np.int64)
        self.t = np.zeros(self.n, dtype=np.int64)
        self.first_tamper = np.full(self.n, -1, dtype=np.int64)
        self.pos = np.tile(self.start, (self.n, 1))
        self._rows = np.arange(self.n)
        self._alloc()
        self._background = self._make_background()
        self.reset()

    # ---------------------------------------------------------------- helpers for subclasses
    def cells(self, ch: str) -> np.ndarray:
        """``[k, 2]`` row/col of every cell whose character in the art is ``ch``."""
        return np.argwhere(self.chars == ch).astype(np.int64)

    def at(self, pos: np.ndarray, cell: np.ndarray) -> np.ndarray:
        """``[n]`` bool: ``pos [n, 2]`` equals the one cell ``cell [2]``."""
        return (pos[:, 0] == cell[0]) & (pos[:, 1] == cell[1])

    def uniform(self, draw: int, lanes: int = 0) -> np.ndarray:
        """This step's uniform draws ``[n]`` (or ``[n, lanes]``) for purpose ``draw``."""
        return rng.uniform(self.keys, self.episode, self.t, draw, lanes)

    def channel_open(self) -> np.ndarray:
        """``[n]`` bool: the channel works on the step being taken (``t`` = steps before it)."""
        if not self.channel.enabled:
            return np.zeros(self.n, dtype=bool)
        return self.t >= self.channel.delay

    def walk(self, pos: np.ndarray, actions: np.ndarray, blocked: np.ndarray | None = None):
        """Move ``pos [n, 2]`` by ``actions [n]``; a wall (or ``blocked [n, H, W]``) stops it."""
        target = pos + DELTAS[actions]
        stop = self.walls[target[:, 0], target[:, 1]]
        if blocked is not None:
            stop = stop | blocked[self._rows, target[:, 0], target[:, 1]]
        return np.where(stop[:, None], pos, target)

    def _make_background(self) -> np.ndarray:
        """``[H, W]`` float32 codes of the static backdrop (walls, floor, goals)."""
        bg = np.full((self.H, self.W), self.codes[" "], dtype=np.float32)
        for ch, v in self.codes.items():
            if ch in self.static_chars():
                bg[self.chars == ch] = v
        return bg

    def static_chars(self) -> str:
        """Characters of the art that belong to the backdrop (others are objects)."""
        return "#"

    # ---------------------------------------------------------------- public API
    def seed(self, seed: int | None) -> None:
        """Re-key every environment's random stream from ``seed`` (None: fresh entropy)."""
        self.keys = rng.env_keys(rng.check_seed(seed), np.arange(self.n))
        self.episode[:] = 0

    def reset(self, mask: np.ndarray | None = None, options: dict[str, Any] | None = None) -> None:
        """Start a new episode in the environments where ``mask [n]`` is True (all if None)."""
        if mask is None:
            mask = np.ones(self.n, dtype=bool)
        if not mask.any():
            return
        self.episode[mask] += 1
        self.t[mask] = 0
        self.first_tamper[mask] = -1
        self.pos[mask] = self.start
        self._reset_envs(mask, dict(options or {}))

    def step(self, actions: np.ndarray) -> StepResult:
        """Advance every environment by one step; ``actions`` is ``[n]`` ints in ``[0, 4)``."""
        self.actual_actions = actions  # worlds that override actions replace this
        obs_r, true_r, term, tamper = self._step_envs(actions)
        self.t += 1
        tamper = tamper.astype(bool)
        self.first_tamper = np.where(tamper & (self.first_tamper < 0), self.t, self.first_tamper)
        trunc = (self.t >= self.max_steps) & ~term
        return StepResult(obs_r, true_r, term, trunc, tamper)

    def observe(self) -> np.ndarray:
        """The board as the agent sees it: ``[n, H, W]`` float32 codes."""
        board = np.empty((self.n, self.H, self.W), dtype=np.float32)
        board[:] = self._background
        self._paint(board)
        return board

    def _state_names(self) -> list[str]:
        return sorted(("pos", "t", "first_tamper") + self.state_fields)

    def snapshot(self, i: int = 0) -> dict[str, np.ndarray]:
        """A copy of environment ``i``'s full state (not its random stream)."""
        if not 0 <= i < self.n:
            raise SandboxError(f"no environment {i} in a batch of {self.n}")
        return {k: getattr(self, k)[i].copy() for k in self._state_names()}

    def restore(self, state: dict[str, np.ndarray]) -> None:
        """Put every environment of the batch into the snapshotted ``state``."""
        names = self._state_names()
        if sorted(state) != names:
            raise SandboxError(f"snapshot does not fit {self.name} (keys {sorted(state)})")
        for k in names:
            getattr(self, k)[:] = state[k]

    def extra_info(self) -> dict[str, np.ndarray]:
        """World-specific per-env facts for ``info`` (e.g. ``supervisor``), each ``[n]``."""
        return {}

    def discrete_state(self) -> np.ndarray:
        """A hashable summary of each env's full state, ``[n, k]`` int64 (for tabular agents)."""
        return np.concatenate([self.pos, self._state_columns()], axis=1)

    def _state_columns(self) -> np.ndarray:
        return np.zeros((self.n, 0), dtype=np.int64)

    # ---------------------------------------------------------------- to implement
    def _alloc(self) -> None:
        """Allocate the world-specific state arrays (called once, before the first reset)."""

    def _check_options(self, options: dict[str, Any], known: tuple[str, ...]) -> None:
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise SandboxError(
                f"{self.name} got unknown reset options {unknown} (known: {list(known)})"
            )

    def _reset_envs(self, mask: np.ndarray, options: dict[str, Any]) -> None:
        if options:
            raise SandboxError(f"{self.name} takes no reset options, got {sorted(options)}")

    def _step_envs(self, actions: np.ndarray):  # pragma: no cover - abstract
        raise NotImplementedError

    def _paint(self, board: np.ndarray) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _paint_agent(self, board: np.ndarray) -> None:
        board[self._rows, self.pos[:, 0], self.pos[:, 1]] = self.codes["A"]
