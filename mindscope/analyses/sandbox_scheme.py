"""The sandbox's alignment-scheme comparison as a stage (no model): ``sandbox_scheme``.

    run_stage("sandbox_scheme", None, {"scheme": "mona", "seeds": 10})

Calls :func:`mindscope.sandbox.schemes.compare_scheme`; rows as it returns them (one per arm
and metric with 95% CIs over seeds, ``effect_*`` rows with the permutation p-value).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register

__all__ = ["SandboxSchemeConfig", "sandbox_scheme_stage"]


class SandboxSchemeConfig(StageConfig):
    """An alignment scheme against its baseline on a world with the scheme's channel."""

    scheme: str = Field(
        default="decoupled_approval",
        description="decoupled_approval, current_rf or mona (mindscope.sandbox.schemes.SCHEMES).",
    )
    world: str | None = Field(
        default=None,
        description="A sandbox world with the scheme's channel (or open_world); null: its own.",
    )
    seeds: int = Field(default=10, description="Seeds per arm (at least 2).")
    steps: int | None = Field(default=None, description="Env steps per seed; null: the scheme's.")
    eval_episodes: int = Field(default=200, description="Evaluation episodes per seed.")
    variants: bool = Field(default=True, description="Also train the scheme's failure variants.")
    backend: str = Field(default="inprocess", description="``inprocess`` or ``ray`` (seeds).")

    def check(self, ctx: CheckContext, where: str) -> SandboxSchemeConfig:
        from mindscope.extras import require

        require("sandbox", what="the sandbox_scheme stage")
        from mindscope.sandbox.errors import SandboxError
        from mindscope.sandbox.schemes import check_scheme_world

        try:
            check_scheme_world(self.scheme, self.world)
        except SandboxError as exc:
            raise self.fail(ctx, where, str(exc)) from None
        if self.seeds < 2:
            raise self.fail(ctx, where, f"seeds must be at least 2, got {self.seeds}")
        if self.steps is not None and self.steps < 1:
            raise self.fail(ctx, where, f"steps must be at least 1, got {self.steps}")
        if self.eval_episodes < 1:
            raise self.fail(
                ctx, where, f"eval_episodes must be at least 1, got {self.eval_episodes}"
            )
        return self.model_copy(deep=True)


@register(
    "sandbox_scheme",
    SandboxSchemeConfig,
    help="an alignment scheme vs the baseline it fixes on a sandbox world (95% CIs over seeds)",
    needs_model=False,
    order=90,
)
def sandbox_scheme_stage(
    h: Any,
    cfg: SandboxSchemeConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Train the scheme, its baseline (and variants) over ``cfg.seeds`` seeds (offset by
    ``seed``); rows and the summary in ``info``, nothing written."""
    from mindscope.results import to_frame
    from mindscope.sandbox.schemes import compare_scheme

    res = compare_scheme(
        cfg.scheme,
        cfg.world,
        seeds=range(seed, seed + cfg.seeds),
        steps=cfg.steps,
        eval_episodes=cfg.eval_episodes,
        variants=cfg.variants,
        backend=cfg.backend,
    )
    return StageOutput(to_frame(res.rows), info={"summary": res.summary})
