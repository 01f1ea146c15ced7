"""Train agents over seeds, evaluate them, record and probe them: the science behind
``mindscope sandbox train``, ``eval`` and ``record``.

    res = study("tomato_watering", "ppo", seeds=range(4), backend="ray")  # agents + rows
    rec = record_study(agent_dirs("runs/tw"), episodes=20, probe=True)    # episodes + AUROCs

Each seed (:func:`study`) or saved agent (:func:`record_study`) is one task of
:func:`mindscope.parallel.run_tasks`, seeded by itself, so ``backend="ray"`` trains and records
them in parallel and returns the same agents and rows (timing metrics aside).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
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
    "RecordResult",
    "StudyResult",
    "agent_class",
    "agent_dirs",
    "save_world_kwargs",
    "saved_world_kwargs",
    "check_agent_params",
    "evaluate",
    "method_label",
    "record_study",
    "split_label",
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
    "mona": 200_000,
    "current_rf": 200_000,
    "coupled_approval_q": 100_000,
    "decoupled_approval_q": 100_000,
}
DEFAULT_ENVS = {
    "q_learning": 32,
    "sarsa": 32,
    "ppo": 16,
    "a2c": 16,
    "dqn": 16,
    "decoupled_approval": 16,
    "coupled_approval": 16,
    "mona": 32,
    "current_rf": 32,
    "coupled_approval_q": 32,
    "decoupled_approval_q": 32,
}


def agent_class(kind: str) -> type[Agent]:
    """The agent class called ``kind``; SandboxError listing the known ones otherwise."""
    import mindscope.sandbox.agents  # noqa: F401  (registers every kind)
    import mindscope.sandbox.agents.approval  # noqa: F401
    import mindscope.sandbox.agents.dqn  # noqa: F401
    import mindscope.sandbox.agents.ppo  # noqa: F401  (ppo, a2c)
    import mindscope.sandbox.agents.schemes  # noqa: F401  (mona, current_rf)
    import mindscope.sandbox.openworld_agents  # noqa: F401  (open_world_ppo)

    if kind not in AGENT_KINDS:
        import difflib

        close = difflib.get_close_matches(str(kind), sorted(AGENT_KINDS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SandboxError(
            f"unknown agent {kind!r} ({hint}known: {', '.join(sorted(AGENT_KINDS))})"
        )
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


def split_label(world_kwargs: Mapping[str, Any] | None = None) -> str:
    """The rows' ``split``: ``tamper_on``/``tamper_off``, other world parameters in brackets."""
    kw = dict(world_kwargs or {})
    base = "tamper_off" if kw.get("tamper") is False else "tamper_on"
    rest = {k: v for k, v in kw.items() if k != "tamper"}
    return base + ("[" + ",".join(f"{k}={rest[k]}" for k in sorted(rest)) + "]" if rest else "")


@dataclass
class StudyResult:
    """Agents trained on one world over seeds, their rows, and the wall time per seed."""

    agents: list[Agent]
    rows: list[Row]
    seconds_per_seed: list[float] = field(default_factory=list)
    per_seed: list[dict[str, float]] = field(default_factory=list)
    """Each seed's evaluation metrics (what the rows aggregate), in seed order."""


def _train_seed(
    seed: int,
    *,
    kind: str,
    world: str,
    steps: int,
    num_envs: int,
    eval_episodes: int,
    world_kwargs: dict[str, Any],
    curve_bins: int,
    params: dict[str, Any],
) -> tuple[Agent, dict[str, float], TrainingCurve]:
    """Train and evaluate one seed: ``(agent, metrics, training curve)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    venv = SandboxVectorEnv(world, num_envs, **world_kwargs)
    curve = TrainingCurve(max(num_envs, steps // curve_bins), num_envs)
    agent = agent_class(kind)(world, seed=int(seed), **params)
    agent.learn(venv, steps, log=curve.log)  # type: ignore[attr-defined]
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    ev = SandboxVectorEnv(world, min(eval_episodes, 256), **world_kwargs)
    recs = rollout(agent, ev, eval_episodes, seed=10_000 + int(seed))
    m = episode_metrics(recs, world)
    m["wall_seconds_per_seed"] = wall  # training wall time of this seed (not eval)
    m["cpu_seconds_per_seed"] = cpu  # CPU time of the process while training it
    return agent, m, curve


def study(
    world: str | type,
    kind: str,
    seeds: Sequence[int] = tuple(range(10)),
    steps: int | None = None,
    num_envs: int | None = None,
    eval_episodes: int = 200,
    world_kwargs: dict[str, Any] | None = None,
    split: str = "",
    curve_bins: int = 10,
    agent_params: dict[str, Any] | None = None,
    backend: str = "inprocess",
) -> StudyResult:
    """Train ``kind`` on ``world`` once per seed, evaluate each, aggregate rows over seeds.

    ``agent_params`` are hyper-parameters passed to the agent's constructor (the rows' method
    becomes e.g. ``ppo[ent_coef=0.05]``, see :func:`method_label`). ``backend="ray"`` trains
    the seeds in parallel (:func:`mindscope.parallel.run_tasks`); agents and rows are the same
    as in-process except the ``*_seconds_per_seed`` timings.
    """
    from mindscope.parallel import run_tasks

    agent_class(kind)
    params = check_agent_params(kind, dict(agent_params or {}))
    name = world_class(world).name
    steps = int(steps or DEFAULT_STEPS.get(kind, 100_000))
    if num_envs is not None and num_envs < 1:
        raise SandboxError(f"num_envs must be at least 1, got {num_envs}")
    n = int(num_envs or DEFAULT_ENVS.get(kind, 16))
    kw = dict(world_kwargs or {})
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise SandboxError("study needs at least one seed")
    shared = dict(
        kind=kind,
        world=world if isinstance(world, type) else name,  # a class travels to Ray workers
        steps=steps,
        num_envs=n,
        eval_episodes=eval_episodes,
        world_kwargs=kw,
        curve_bins=curve_bins,
        params=params,
    )
    outs = run_tasks(_train_seed, seeds, backend=backend, shared=shared)
    agents = [a for a, _, _ in outs]
    per_seed = [m for _, m, _ in outs]
    curves = [c for _, _, c in outs]
    secs = [m["wall_seconds_per_seed"] for m in per_seed]
    extra = {
        "steps": steps,
        "num_envs": n,
        "world_kwargs": kw,
        "seeds": seeds,
        "agent": kind,
        "agent_params": params,
    }
    method = method_label(kind, params)
    rows = rows_over_seeds(
        per_seed, method=method, world=name, split=split, step=steps, extra=extra
    )
    rows += curve_rows(curves, method=method, world=name, split=split)
    return StudyResult(agents, rows, secs, per_seed)


def evaluate(
    agent: Agent,
    episodes: int = 200,
    *,
    seed: int = 0,
    world_kwargs: Mapping[str, Any] | None = None,
) -> tuple[dict[str, float], list[Row]]:
    """Roll ``agent`` out for ``episodes`` episodes: its metrics and their rows (one seed,
    ``split`` from :func:`split_label`)."""
    kw = dict(world_kwargs or {})
    venv = SandboxVectorEnv(agent.world, min(episodes, 256), **kw)
    m = episode_metrics(rollout(agent, venv, episodes, seed=seed), agent.world)
    return m, rows_over_seeds([m], method=agent.kind, world=agent.world, split=split_label(kw))


def agent_dirs(path: str | Path) -> list[Path]:
    """``path`` itself if it holds a saved agent, else its ``seed<k>/`` agents (a train run),
    in seed order; SandboxError when there is none."""
    path = Path(path)
    if (path / "config.json").is_file():
        return [path]
    seeds = sorted(
        (d for d in path.glob("seed*") if (d / "config.json").is_file()),
        key=lambda d: int(d.name[4:]) if d.name[4:].isdigit() else 0,
    )
    if not seeds:
        raise SandboxError(f"no saved agent in {path} (config.json or seed*/config.json missing)")
    return seeds


WORLD_FILE = "world.json"
"""Beside saved agents: the world parameters they were trained with (``{"length": 500}``)."""


def save_world_kwargs(directory: str | Path, world_kwargs: Mapping[str, Any], overwrite=False):
    """Write ``world_kwargs`` to ``directory/world.json`` (refused if there and not
    ``overwrite``); :func:`saved_world_kwargs` reads it back for ``record``."""
    from mindscope.io import atomic_write_json

    path = Path(directory) / WORLD_FILE
    if path.exists() and not overwrite:
        raise SandboxError(f"{path} exists (pass overwrite)")
    atomic_write_json(path, dict(world_kwargs))
    return path


def saved_world_kwargs(path: str | Path) -> dict[str, Any]:
    """The world parameters saved beside the agent(s) in ``path`` (``path/world.json`` or, for
    one ``seed<k>/`` agent, its parent's); ``{}`` when none was saved."""
    import json

    for d in (Path(path), Path(path).parent):
        f = d / WORLD_FILE
        if f.is_file():
            kw = json.loads(f.read_text())
            if not isinstance(kw, dict):
                raise SandboxError(f"{f} is not a JSON object of world parameters")
            return kw
    return {}


@dataclass
class RecordResult:
    """Saved agents played again: the agents, their recorded episodes (one list per agent) and
    the probe rows (averaged over the agents, with 95% CIs, when there are several)."""

    agents: list[Agent]
    episodes: list[list[Any]]
    rows: list[Row] = field(default_factory=list)


def _record_one(
    path: str,
    *,
    world: str | None,
    episodes: int,
    seed: int,
    world_kwargs: dict[str, Any],
    probe: bool,
    probe_kwargs: dict[str, Any] | None = None,
) -> tuple[Agent, list[Any], list[Row]]:
    from mindscope.sandbox.agents import load_agent
    from mindscope.sandbox.probing import probe_protocol
    from mindscope.sandbox.recording import record_episodes

    agent_class("ppo")  # registers every agent kind
    agent = load_agent(path, world=world)
    eps = record_episodes(agent, episodes, seed=seed, world_kwargs=world_kwargs)
    rows = (
        probe_protocol(agent, eps, seed=seed, world_kwargs=world_kwargs, **(probe_kwargs or {}))
        if probe
        else []
    )
    return agent, eps, rows


def record_study(
    dirs: Sequence[str | Path],
    *,
    episodes: int = 20,
    seed: int = 0,
    world: str | None = None,
    world_kwargs: Mapping[str, Any] | None = None,
    probe: bool = False,
    backend: str = "inprocess",
    probe_kwargs: Mapping[str, Any] | None = None,
) -> RecordResult:
    """Load each saved agent in ``dirs``, record ``episodes`` episodes (environment ``seed``)
    and, with ``probe``, run :func:`mindscope.sandbox.probing.probe_protocol` on them.

    ``world`` refuses agents saved for another world; ``probe_kwargs`` go to the protocol
    (``ks``, ``max_states``). One agent gives its probe rows as they are; several give the
    mean over agents with a 95% CI (:func:`mindscope.sandbox.probing.aggregate_probe_rows`).
    """
    from mindscope.parallel import run_tasks
    from mindscope.sandbox.probing import aggregate_probe_rows

    if not dirs:
        raise SandboxError("record_study needs at least one saved agent")
    if probe and episodes < 2:
        raise SandboxError(f"probing needs at least 2 episodes, got {episodes}")
    shared = dict(
        world=world,
        episodes=episodes,
        seed=seed,
        world_kwargs=dict(world_kwargs or {}),
        probe=probe,
        probe_kwargs=dict(probe_kwargs or {}),
    )
    outs = run_tasks(_record_one, [str(d) for d in dirs], backend=backend, shared=shared)
    per_agent = [rows for _, _, rows in outs]
    rows = per_agent[0] if len(per_agent) == 1 else aggregate_probe_rows(per_agent)
    return RecordResult([a for a, _, _ in outs], [e for _, e, _ in outs], rows if probe else [])
