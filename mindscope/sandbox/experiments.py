"""Train agents over seeds and measure them: the science runs behind ``mindscope sandbox train``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mindscope.results import Row
from mindscope.sandbox.agents.base import AGENT_KINDS, Agent
from mindscope.sandbox.envs import SandboxVectorEnv
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.metrics import (
    TrainingCurve,
    curve_rows,
    episode_metrics,
    rollout,
    rows_over_seeds,
)
from mindscope.sandbox.worlds import world_class

__all__ = ["StudyResult", "agent_class", "study", "DEFAULT_STEPS", "DEFAULT_ENVS"]

DEFAULT_STEPS = {
    "q_learning": 200_000,
    "sarsa": 200_000,
    "ppo": 300_000,
    "dqn": 100_000,
    "decoupled_approval": 100_000,
    "coupled_approval": 100_000,
}
DEFAULT_ENVS = {
    "q_learning": 32,
    "sarsa": 32,
    "ppo": 16,
    "dqn": 16,
    "decoupled_approval": 16,
    "coupled_approval": 16,
}


def agent_class(kind: str) -> type[Agent]:
    """The agent class called ``kind``; SandboxError listing the known ones otherwise."""
    import mindscope.sandbox.agents  # noqa: F401  (registers every kind)
    import mindscope.sandbox.agents.approval  # noqa: F401
    import mindscope.sandbox.agents.dqn  # noqa: F401
    import mindscope.sandbox.agents.ppo  # noqa: F401

    if kind not in AGENT_KINDS:
        raise SandboxError(f"unknown agent {kind!r} (known: {', '.join(sorted(AGENT_KINDS))})")
    return AGENT_KINDS[kind]


@dataclass
class StudyResult:
    """Agents trained on one world over seeds, their rows, and the wall time per seed."""

    agents: list[Agent]
    rows: list[Row]
    seconds_per_seed: list[float] = field(default_factory=list)


def study(
    world: str,
    kind: str,
    seeds: Sequence[int] = tuple(range(10)),
    steps: int | None = None,
    num_envs: int | None = None,
    eval_episodes: int = 200,
    world_kwargs: dict[str, Any] | None = None,
    split: str = "",
    curve_bins: int = 10,
) -> StudyResult:
    """Train ``kind`` on ``world`` once per seed, evaluate each, aggregate rows over seeds."""
    cls = agent_class(kind)
    name = world_class(world).name
    steps = int(steps or DEFAULT_STEPS.get(kind, 100_000))
    n = int(num_envs or DEFAULT_ENVS.get(kind, 16))
    kw = dict(world_kwargs or {})
    agents, per_seed, curves, secs = [], [], [], []
    for s in seeds:
        t0 = time.perf_counter()
        venv = SandboxVectorEnv(name, n, **kw)
        curve = TrainingCurve(max(n, steps // curve_bins), n)
        agent = cls(name, seed=int(s))
        agent.learn(venv, steps, log=curve.log)  # type: ignore[attr-defined]
        secs.append(time.perf_counter() - t0)
        ev = SandboxVectorEnv(name, min(eval_episodes, 256), **kw)
        recs = rollout(agent, ev, eval_episodes, seed=10_000 + int(s))
        per_seed.append(episode_metrics(recs, name))
        agents.append(agent)
        curves.append(curve)
    extra = {"steps": steps, "num_envs": n, "world_kwargs": kw, "seeds": list(seeds)}
    rows = rows_over_seeds(per_seed, method=kind, world=name, split=split, step=steps, extra=extra)
    rows += curve_rows(curves, method=kind, world=name, split=split)
    return StudyResult(agents, rows, secs)
