"""The steer stage: read steering vectors per layer, sweep their dose-response against a known
truth, and pick the layer and multiplier within a side-effect budget.

``contrast: persona`` (quirky data): the Bob-minus-Alice vector (the same statements, persona
swapped), added to Alice's prompts; flips are scored against Bob's labels where Alice and Bob
differ, damage where they agree. ``contrast: completion`` (any contrast pairs): the vector of
``prompt + completions[1]`` minus ``prompt + completions[0]``, which should turn every answer to
completion 1; flips are the pairs labelled 0, damage the pairs labelled 1.

    ms.analyses.run_stage("steer", h, {"dataset": "quirky-arith"}, seed=0)
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
import torch
from pydantic import Field

from mindscope.analyses._interventions import (
    choice_ids,
    frame,
    neutral_texts,
    pairs_of,
    resolve_layers,
    swap_persona,
)
from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register
from mindscope.errors import MindscopeError

__all__ = ["SteerConfig", "steer_stage"]


class SteerConfig(StageConfig):
    """Steering vectors and their dose-response."""

    dataset: str = Field(default="quirky-arith", description="Contrast pairs (as elicit reads).")
    contrast: Literal["persona", "completion"] = Field(
        default="persona",
        description="persona: Bob-minus-Alice on quirky prompts; completion: completion 1 minus "
        "completion 0 of any pairs.",
    )
    method: Literal["caa", "pca"] = Field(
        default="caa", description="caa: mean difference; pca: first PC of the differences."
    )
    site: Literal["resid_pre", "resid_post", "attn_out", "mlp_out"] = Field(
        default="resid_post", description="Site kind the vectors are read at and added to."
    )
    layers: Literal["all"] | list[int] = Field(default="all", description="Layers to sweep.")
    multipliers: list[float] = Field(
        default=[0.0, 0.5, 1.0, 2.0, 4.0], description="Multipliers of the dose-response sweep."
    )
    kl_budget: float = Field(
        default=0.1,
        description="Side-effect budget (KL nats/token on neutral text) for picking the dose.",
    )
    n: int = Field(default=400, description="Pairs the vectors are read from.")
    n_test: int = Field(default=400, description="Pairs the dose-response is scored on.")
    n_boot: int = Field(default=300, description="Bootstrap resamples of the intervals.")

    def check(self, ctx: CheckContext, where: str) -> SteerConfig:
        """Finite multipliers, positive counts."""
        c = self.model_copy(deep=True)
        import math

        if not c.multipliers or not all(math.isfinite(m) for m in c.multipliers):
            raise c.fail(
                ctx, f"{where}.multipliers", f"must be finite numbers, got {c.multipliers}"
            )
        for name in ("n", "n_test"):
            if getattr(c, name) < 2:
                raise c.fail(ctx, f"{where}.{name}", f"must be >= 2, got {getattr(c, name)}")
        if not c.kl_budget > 0:
            raise c.fail(ctx, f"{where}.kl_budget", f"must be > 0, got {c.kl_budget}")
        return c


def _texts(cfg: SteerConfig, pairs: list[Any]) -> tuple[list[str], list[str]]:
    if cfg.contrast == "persona":
        return [swap_persona(p.prompt, "bob") for p in pairs], [
            swap_persona(p.prompt, "alice") for p in pairs
        ]
    return [p.prompt + p.completions[1] for p in pairs], [
        p.prompt + p.completions[0] for p in pairs
    ]


@register(
    "steer",
    SteerConfig,
    help="steering vectors per layer: dose-response (flip, damage, KL, slope) and chosen dose",
    order=80,
)
def steer_stage(
    h: Any,
    cfg: SteerConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Read one vector per layer, sweep the multipliers, pick the dose; artefacts: the chosen
    vector (``steering_vector/``)."""
    from mindscope import steering
    from mindscope.analyses.base import json_artefact

    split = pairs_of(cfg.dataset, cfg.n, cfg.n_test, seed)
    train, test = list(split.train), list(split.test)
    pos, neg = _texts(cfg, train)
    read = steering.mean_difference if cfg.method == "caa" else steering.pca_difference
    vecs = [read(h, pos, neg, f"{cfg.site}.{layer}") for layer in resolve_layers(h, cfg.layers)]
    c0, c1 = choice_ids(h, tuple(test[0].completions))
    if cfg.contrast == "persona":
        test = [p for p in test if p.meta.get("persona") == "alice"] or [p for p in test]
        prompts = [swap_persona(p.prompt, "alice") for p in test]
        src = torch.tensor([int(p.meta["alice_label"]) for p in test])
        tgt = torch.tensor([int(p.meta["bob_label"]) for p in test])
    else:
        prompts = [p.prompt for p in test]
        src = torch.tensor([int(p.label) for p in test])
        tgt = torch.ones(len(test), dtype=torch.long)
    if not test:
        raise MindscopeError("steer: no test pairs")
    task = steering.SteerTask(prompts, (c0, c1), src, tgt)
    rows = steering.dose_response(
        h, vecs, task, cfg.multipliers, neutral_texts(test), n_boot=cfg.n_boot, seed=seed
    )
    for r in rows:
        r["dataset"], r["split"] = cfg.dataset, "test"
    best = steering.select_dose(rows, cfg.kl_budget)
    artefacts: dict[str, Any] = {
        "dose.json": json_artefact({"chosen": best, "kl_budget": cfg.kl_budget})
    }
    if best is not None:
        chosen = next(v for v in vecs if v.site == f"{cfg.site}.{int(best['layer'])}")
        artefacts["steering_vector"] = chosen.save
        for name in ("flip_rate", "damage_rate", "kl_neutral", "multiplier"):
            rows.append(
                {
                    "metric": f"chosen_{name}",
                    "value": float(best[name]),
                    "layer": int(best["layer"]),
                    "method": cfg.method,
                    "dataset": cfg.dataset,
                    "split": "test",
                    "extra": {"kl_budget": cfg.kl_budget},
                }
            )
    info = {"chosen": best, "n_train": len(train), "n_test": len(prompts)}
    return StageOutput(frame(rows) if rows else pd.DataFrame(), artefacts, {}, None, info)
