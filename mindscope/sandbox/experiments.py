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

__all__ = [
    "StudyResult",
    "agent_class",
    "check_agent_params",
    "method_label",
    "study",
    "DEFAULT_STEPS",
    "DEFAULT_ENVS",
]

DEFAULT_STEPS = {
    "q_learning": 200_000,
    "sarsa": 200_000,
    "ppo": 300_000,
    "a2c": 300_000,
    "dqn": 100_000,
    "decoupled_approval": 100_000,
    "coupled_approval": 100_000,
}
DEFAULT_ENVS = {
    "q_learning": 32,
    "sarsa": 32,
    "ppo": 16,
    "a2c": 16,
    "dqn": 16,
    "decoupled_approval": 16,
    "coupled_approval": 16,
}


def agent_class(kind: str) -> type[Agent]:
    """The agent class called ``kind``; SandboxError listing the known ones otherwise."""
    import mindscope.sandbox.agents  # noqa: F401  (registers every kind)
    import mindscope.sandbox.agents.approval  # noqa: F401
    import mindscope.sandbox.agents.dqn  # noqa: F401
    import mindscope.sandbox.agents.ppo  # noqa: F401  (ppo, a2c)

    if kind not in AGENT_KINDS:
        raise SandboxError(f"unknown agent {kind!r} (known: {', '.join(sorted(AGENT_KINDS))})")
    return AGENT_KINDS[kind]


def check_agent_params(kind: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` if every key is a hyper-parameter of ``kind``; SandboxError otherwise."""
    import inspect

    known = set(inspect.signature(agent_class(kind).__init__).parameters) - {"self", "world"}
    known.discard("seed")
    bad = sorted(set(params) - known)
    if bad:
        raise SandboxError(
            f"unknown parameter {bad[0]!r} for agent {kind} (known: {', '.join(sorted(known))})"
        )
    return dict(params)


def method_label(kind: str, params: dict[str, Any] | None = None) -> str:
    """The rows' ``method``: the agent kind, with non-default hyper-parameters in brackets."""
    if not params:
        return kind
    return kind + "[" + ",".join(f"{k}={params[k]}" for k in sorted(params)) + "]"


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
    agent_params: dict[str, Any] | None = None,
) -> StudyResult:
    """Train ``kind`` on ``world`` once per seed, evaluate each, aggregate rows over seeds.

    ``agent_params`` are hyper-parameters passed to the agent's constructor (the rows' method
    becomes e.g. ``ppo[ent_coef=0.05]``, see :func:`method_label`).
    """
    cls = agent_class(kind)
    params = check_agent_params(kind, dict(agent_params or {}))
    name = world_class(world).name
    steps = int(steps or DEFAULT_STEPS.get(kind, 100_000))
    n = int(num_envs or DEFAULT_ENVS.get(kind, 16))
    kw = dict(world_kwargs or {})
    agents, per_seed, curves, secs = [], [], [], []
    for s in seeds:
        t0, c0 = time.perf_counter(), time.process_time()
        venv = SandboxVectorEnv(name, n, **kw)
        curve = TrainingCurve(max(n, steps // curve_bins), n)
        agent = cls(name, seed=int(s), **params)
        agent.learn(venv, steps, log=curve.log)  # type: ignore[attr-defined]
        secs.append(time.perf_counter() - t0)
        cpu = time.process_time() - c0
        ev = SandboxVectorEnv(name, min(eval_episodes, 256), **kw)
        recs = rollout(agent, ev, eval_episodes, seed=10_000 + int(s))
        m = episode_metrics(recs, name)
        m["wall_seconds_per_seed"] = secs[-1]  # training wall time of this seed (not eval)
        m["cpu_seconds_per_seed"] = cpu  # CPU time of this process while training it
        per_seed.append(m)
        agents.append(agent)
        curves.append(curve)
    extra = {
        "steps": steps,
        "num_envs": n,
        "world_kwargs": kw,
        "seeds": list(seeds),
        "agent": kind,
        "agent_params": params,
    }
    method = method_label(kind, params)
    rows = rows_over_seeds(
        per_seed, method=method, world=name, split=split, step=steps, extra=extra
    )
    rows += curve_rows(curves, method=method, world=name, split=split)
    return StudyResult(agents, rows, secs)
