"""The channel interface: what a world must expose for an alignment scheme to run on it.

A scheme never looks inside a world; it reads the world's reward mechanism through one of three
channels, each a small set of batched methods (``n`` = the world's batch size):

- **approval channel** (decoupled approval, MONA): ``approval_state()`` returns whatever the
  supervisor judges an action from (taken *before* the step), ``approval(actions [n], state)``
  returns the supervisor's approval ``[n]`` float of those actions from that state, read through
  the world *as it is now* (after the step), so a corrupted channel corrupts the reading;
- **rule channel** (current-reward-function optimisation): ``rule_params()`` the current
  parameters of the observed reward function ``[n, k]`` int64, ``rule_options()`` every
  parameter vector the rules can take ``[m, k]`` int64, ``reward_under(rules [n, k])`` the
  observed reward ``[n]`` the last step would have paid under ``rules``;
- **sensor** (tamper bookkeeping of sensor worlds): ``sensor_covered()`` ``[n]`` bool, the
  sensor that reward or approval is read from is covered or blocked.

:func:`require_channel` refuses a world lacking a channel in one line; any world, in the
repository or not, that implements the methods works with every scheme that needs them.
:func:`rule_index` and :func:`rule_rewards` read the rule channel for a whole batch: the index
of each environment's rules among the options, and the last step's reward under every option
(the vector envs put the latter in ``info["rule_rewards"]`` when ``venv.rule_rewards = True``,
read before finished environments are reset).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from mindscope.sandbox.errors import SandboxError

__all__ = [
    "CHANNELS",
    "ApprovalChannel",
    "RuleChannel",
    "SensorChannel",
    "has_channel",
    "require_channel",
    "rule_index",
    "rule_rewards",
    "world_channels",
]


@runtime_checkable
class ApprovalChannel(Protocol):
    """A supervisor's per-step approval, read through the world."""

    def approval_state(self) -> Any: ...

    def approval(self, actions: np.ndarray, state: Any) -> np.ndarray: ...


@runtime_checkable
class RuleChannel(Protocol):
    """The parameters of the observed reward function, which the agent may be able to edit."""

    def rule_params(self) -> np.ndarray: ...

    def rule_options(self) -> np.ndarray: ...

    def reward_under(self, rules: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class SensorChannel(Protocol):
    """A sensor in the world that the agent can cover."""

    def sensor_covered(self) -> np.ndarray: ...


CHANNELS: dict[str, tuple[type, tuple[str, ...]]] = {
    "approval": (ApprovalChannel, ("approval_state()", "approval(actions, state)")),
    "rule": (RuleChannel, ("rule_params()", "rule_options()", "reward_under(rules)")),
    "sensor": (SensorChannel, ("sensor_covered()",)),
}


def _unwrap(world: Any) -> Any:
    """The core world behind a vector env / env (``.world``) or the world itself."""
    return getattr(world, "world", world)


def has_channel(world: Any, channel: str) -> bool:
    """Whether ``world`` (a World, or an env wrapping one) exposes ``channel``."""
    if channel not in CHANNELS:
        raise SandboxError(f"unknown channel {channel!r} (known: {', '.join(CHANNELS)})")
    proto, _ = CHANNELS[channel]
    return isinstance(_unwrap(world), proto)


def world_channels(world: Any) -> list[str]:
    """The channels ``world`` exposes, in :data:`CHANNELS` order."""
    return [c for c in CHANNELS if has_channel(world, c)]


def require_channel(world: Any, channel: str, scheme: str) -> Any:
    """The core world if it exposes ``channel``; a one-line SandboxError naming what is missing."""
    w = _unwrap(world)
    if not has_channel(w, channel):
        _, methods = CHANNELS[channel]
        name = getattr(w, "name", type(w).__name__)
        raise SandboxError(
            f"{scheme} needs {'an' if channel[0] in 'aeiou' else 'a'} {channel} channel; "
            f"world {name!r} has none "
            f"(it must define {', '.join(methods)})"
        )
    return w


def rule_index(world: Any) -> np.ndarray:
    """``[n]`` int64: the row of ``world.rule_options()`` equal to each env's ``rule_params()``
    (SandboxError if some env's rules are not among the options)."""
    w = _unwrap(world)
    cur = np.asarray(w.rule_params())  # [n, k]
    opts = np.asarray(w.rule_options())  # [m, k]
    match = (cur[:, None, :] == opts[None]).all(axis=2)  # [n, m]
    if not match.any(axis=1).all():
        raise SandboxError("rule_params() holds a setting that rule_options() does not list")
    return match.argmax(axis=1).astype(np.int64)


def rule_rewards(world: Any) -> np.ndarray:
    """``[n, m]`` float: the observed reward of the last step under each of the ``m`` rule
    settings of ``world.rule_options()`` (``reward_under`` once per setting)."""
    w = _unwrap(world)
    opts = np.asarray(w.rule_options())
    n = len(np.asarray(w.rule_params()))
    cols = [
        np.asarray(w.reward_under(np.broadcast_to(o, (n, opts.shape[1]))), dtype=np.float64)
        for o in opts
    ]
    return np.stack(cols, axis=1)
