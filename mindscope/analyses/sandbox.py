"""The sandbox stage: train an agent on a world over seeds and measure its behaviour (tamper
rates, intended and observed return, ...). It reads no language model, so it runs in ``mindscope
run`` configs (``sandbox:``) and ``mindscope sandbox train``, not in sweeps::

    ms.analyses.run_stage("sandbox", None, {"world": "tomato_watering", "agent": "q_learning"})

The science lives in :mod:`mindscope.sandbox.experiments` (``study``); this module builds its
inputs from a config and returns its rows, with the trained agents as artefacts.
"""

from __future__ import annotations

import difflib
import functools
from typing import Any

from pydantic import Field

from mindscope.analyses.base import Artefact, CheckContext, StageConfig, StageOutput, register

__all__ = ["SandboxConfig", "sandbox_stage"]


class SandboxConfig(StageConfig):
    """An agent trained on a sandbox world over seeds."""

    world: str = Field(default="tomato_watering", description="World name (``sandbox list``).")
    agent: str = Field(default="q_learning", description="Agent kind (``sandbox list``).")
    seeds: int = Field(default=10, description="Seeds 0..N-1, one agent each.")
    steps: int | None = Field(default=None, description="Training steps (null: the agent's).")
    envs: int | None = Field(default=None, description="Parallel envs (null: the agent's).")
    episodes: int = Field(default=200, description="Evaluation episodes per seed.")
    world_params: dict[str, Any] = Field(
        default_factory=dict, description="World parameters (e.g. ``tamper_delay``)."
    )
    agent_params: dict[str, Any] = Field(
        default_factory=dict, description="Agent hyper-parameters (e.g. ``ent_coef``)."
    )
    backend: str = Field(
        default="inprocess", description="Where the seeds run: ``inprocess`` or ``ray``."
    )

    def check(self, ctx: CheckContext, where: str) -> SandboxConfig:
        """Known world, agent and backend; positive counts."""
        from mindscope.extras import require

        require("sandbox", what="the sandbox stage")
        from mindscope.errors import MindscopeError
        from mindscope.parallel import BACKENDS
        from mindscope.sandbox.experiments import agent_class, check_agent_params
        from mindscope.sandbox.worlds import world_class

        c = self.model_copy(deep=True)
        for key, fn in (("world", world_class), ("agent", agent_class)):
            try:
                fn(getattr(c, key))
            except MindscopeError as exc:
                raise c.fail(ctx, f"{where}.{key}", str(exc)) from None
        try:
            check_agent_params(c.agent, dict(c.agent_params))
        except MindscopeError as exc:
            raise c.fail(ctx, f"{where}.agent_params", str(exc)) from None
        if c.backend not in BACKENDS:
            close = difflib.get_close_matches(c.backend, BACKENDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise c.fail(
                ctx, f"{where}.backend", f"unknown {c.backend!r} (known: inprocess, ray){hint}"
            )
        for key in ("seeds", "steps", "envs", "episodes"):
            value = getattr(c, key)
            if value is not None and value < 1:
                raise c.fail(ctx, f"{where}.{key}", f"must be >= 1, got {value}")
        return c


@register(
    "sandbox",
    SandboxConfig,
    help="an agent trained on a sandbox world over seeds: tamper rates and returns with CIs",
    order=70,
    needs_model=False,
)
def sandbox_stage(h: Any, cfg: SandboxConfig, **_: Any) -> StageOutput:
    """Train ``cfg.agent`` on ``cfg.world`` once per seed and aggregate its behaviour rows over
    seeds (:func:`mindscope.sandbox.experiments.study`); artefacts ``seed<k>/`` hold the agents."""
    from mindscope.results import to_frame
    from mindscope.sandbox.experiments import split_label, study

    res = study(
        cfg.world,
        cfg.agent,
        seeds=range(cfg.seeds),
        steps=cfg.steps,
        num_envs=cfg.envs,
        eval_episodes=cfg.episodes,
        world_kwargs=dict(cfg.world_params),
        split=split_label(dict(cfg.world_params)),
        agent_params=dict(cfg.agent_params),
        backend=cfg.backend,
    )
    artefacts: dict[str, Artefact] = {}
    for s, agent in enumerate(res.agents):
        artefacts[f"seed{s}"] = functools.partial(agent.save, overwrite=True)
    secs = sorted(res.seconds_per_seed)
    info = {"seconds_per_seed": list(res.seconds_per_seed), "median_seconds": secs[len(secs) // 2]}
    return StageOutput(to_frame(res.rows), artefacts, info=info)
