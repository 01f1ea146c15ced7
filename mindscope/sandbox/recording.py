"""Record episodes: observations, actions, per-step truth and the agent's network activations.

Gridworld agents and open-world agents (``agent.world == "open_world"``) alike: the episode's
``boards`` are what the agent observed (``[T + 1, H, W]`` boards, or the open world's ``[T + 1,
81]`` symbolic observations), ``facts`` every boolean fact the world reports in ``info``.

Activations are read with :func:`mindscope.sandbox.hooks.capture` on the forward pass the agent
makes to choose each action, so ``activations[site][t]`` is the agent's state of mind *before*
action ``t`` (``[T, width]``). Episodes save as ``episodes.json`` + ``episodes.safetensors``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mindscope.sandbox.agents.base import OPEN_WORLD
from mindscope.sandbox.agents.nets import SITES
from mindscope.sandbox.envs import SandboxVectorEnv
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.hooks import capture

__all__ = ["Episode", "record_episodes", "save_episodes", "vector_env"]


@dataclass
class Episode:
    """One recorded episode of ``T`` steps."""

    world: str
    boards: np.ndarray
    """``[T + 1, ...]`` observations: ``[T + 1, H, W]`` boards of a gridworld, ``[T + 1, 81]``
    in the open world (the first one is the reset observation)."""
    actions: np.ndarray
    """``[T]`` actions chosen (``actual_actions`` holds the executed ones)."""
    actual_actions: np.ndarray
    observed_reward: np.ndarray
    """``[T]``"""
    true_reward: np.ndarray
    """``[T]``"""
    tamper: np.ndarray
    """``[T]`` bool: the channel acted on step ``t + 1`` (after action ``t``)."""
    facts: dict[str, np.ndarray] = field(default_factory=dict)
    """World facts per step, ``[T + 1]`` (before each action, and at the end); boolean
    ``tamper_<kind>`` flags of the steps (the open world's kinds) are kept here too, entry
    ``t + 1`` for action ``t`` (entry 0 is False)."""
    activations: dict[str, np.ndarray] = field(default_factory=dict)
    """``{site: [T, width]}`` before each action; empty for tabular agents."""

    @property
    def first_tamper(self) -> int:
        """Index ``t`` of the first action whose step tampered, -1 if none."""
        idx = np.flatnonzero(self.tamper)
        return int(idx[0]) if len(idx) else -1


def vector_env(world: str, num_envs: int, **world_kwargs: Any) -> Any:
    """A vector env of ``world``: the open world's (:data:`OPEN_WORLD`) or a gridworld's."""
    if world == OPEN_WORLD:
        from mindscope.sandbox.openworld.envs import OpenWorldVectorEnv
        from mindscope.sandbox.openworld.features import check_world_kwargs

        return OpenWorldVectorEnv(num_envs, **check_world_kwargs(world_kwargs))
    return SandboxVectorEnv(world, num_envs, **world_kwargs)


def record_episodes(
    agent: Any,
    episodes: int,
    seed: int = 0,
    sites: Sequence[str] = SITES,
    greedy: bool = False,
    world_kwargs: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> list[Episode]:
    """Play ``episodes`` episodes (one per env of a batch) and record everything."""
    if episodes < 1:
        raise SandboxError(f"episodes must be at least 1, got {episodes}")
    venv = vector_env(agent.world, episodes, **dict(world_kwargs or {}))
    obs, info = venv.reset(seed=seed, options=dict(options or {}) or None)
    n = episodes
    boards, acts, actual, obs_r, true_r, tam = [obs.copy()], [], [], [], [], []
    fact_keys = [k for k, v in info.items() if np.asarray(v).dtype == bool]
    facts: dict[str, list[np.ndarray]] = {k: [np.asarray(info[k]).copy()] for k in fact_keys}
    acts_rec: dict[str, list[np.ndarray]] = {s: [] for s in sites}
    net = getattr(agent, "net", None)
    done = np.zeros(n, dtype=bool)
    lengths = np.zeros(n, dtype=np.int64)
    while not done.all():
        if net is not None and sites:
            with capture(net, sites) as got:
                a = agent.act(obs, greedy=greedy)
            for s in sites:
                acts_rec[s].append(got[s][-1].numpy())
        else:
            a = agent.act(obs, greedy=greedy)
        obs, r, term, trunc, info = venv.step(a)
        fin = info["final_obs"] if "final_obs" in info else obs
        ended = (term | trunc).reshape((n,) + (1,) * (obs.ndim - 1))
        boards.append(np.where(ended, fin, obs))
        acts.append(a)
        actual.append(info.get("actual_action", a))
        obs_r.append(r)
        true_r.append(info["true_reward"])
        tam.append(info["tamper"])
        if len(acts) == 1:  # per-kind tamper flags of the step (the open world's), as facts
            for k, v in info.items():
                if k.startswith("tamper_") and k not in facts and np.asarray(v).dtype == bool:
                    fact_keys.append(k)
                    facts[k] = [np.zeros(n, dtype=bool)]
        for k in fact_keys:
            facts[k].append(np.asarray(info[k]).copy())
        lengths += ~done
        done |= term | trunc
    out = []
    for i in range(n):
        T = int(lengths[i])
        out.append(
            Episode(
                world=agent.world,
                boards=np.stack([b[i] for b in boards[: T + 1]]),
                actions=np.array([x[i] for x in acts[:T]]),
                actual_actions=np.array([x[i] for x in actual[:T]]),
                observed_reward=np.array([x[i] for x in obs_r[:T]]),
                true_reward=np.array([x[i] for x in true_r[:T]]),
                tamper=np.array([x[i] for x in tam[:T]], dtype=bool),
                facts={k: np.array([x[i] for x in v[: T + 1]]) for k, v in facts.items()},
                activations={s: np.stack([x[i] for x in v[:T]]) for s, v in acts_rec.items() if v},
            )
        )
    return out


def save_episodes(
    episodes: Sequence[Episode], directory: str | Path, overwrite: bool = False
) -> Path:
    """Write ``episodes.json`` (metadata) + ``episodes.safetensors`` (arrays) in ``directory``."""
    import torch
    from safetensors.torch import save_file

    d = Path(directory)
    if (d / "episodes.json").exists() and not overwrite:
        raise SandboxError(f"{d} already holds recorded episodes (pass overwrite)")
    d.mkdir(parents=True, exist_ok=True)
    tensors = {}
    meta = []
    for i, ep in enumerate(episodes):
        arrays = {
            "boards": ep.boards,
            "actions": ep.actions,
            "actual_actions": ep.actual_actions,
            "observed_reward": ep.observed_reward,
            "true_reward": ep.true_reward,
            "tamper": ep.tamper.astype(np.uint8),
        }
        arrays.update({f"fact.{k}": v.astype(np.uint8) for k, v in ep.facts.items()})
        arrays.update({f"act.{k}": v for k, v in ep.activations.items()})
        for k, v in arrays.items():
            tensors[f"{i}.{k}"] = torch.as_tensor(np.ascontiguousarray(v))
        meta.append({"world": ep.world, "length": len(ep.actions), "first_tamper": ep.first_tamper})
    save_file(tensors, str(d / "episodes.safetensors"))
    (d / "episodes.json").write_text(json.dumps({"episodes": meta}, indent=2))
    return d
