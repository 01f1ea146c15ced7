"""The patch stage: exact activation patching and attribution patching between clean and
corrupted prompts, with both corruptions (Zhang & Nanda 2023 advise reporting both).

On quirky data the clean prompt is Alice's and the corrupted one Bob's (symmetric token
replacement of the persona), kept where their labels differ, grouped by token length (patching
aligns positions, so each length is patched separately and the largest group is reported); the
answer is Alice's label token, the wrong one Bob's. ``corruption: noise`` instead adds Gaussian
noise (3 x the embedding std) to the embeddings of the tokens where the two prompts differ.
Rows: the mean normalized effect per (site, layer, position) with CIs over prompts (and per
(layer, head), ``site: head``, with ``heads``), and per site
the attribution estimate's error against the exact effect (``atp_mae``, ``atp_corr``).

    ms.analyses.run_stage("patch", h, {"kinds": ["resid_pre", "attn_out"]}, seed=0)
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import torch
from pydantic import Field

from mindscope.analyses._interventions import choice_ids, frame, pairs_of, swap_persona
from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register
from mindscope.errors import MindscopeError

__all__ = ["PatchConfig", "patch_stage", "quirky_patch_inputs"]


class PatchConfig(StageConfig):
    """Activation and attribution patching."""

    dataset: str = Field(default="quirky-arith", description="Quirky contrast pairs.")
    kinds: list[Literal["resid_pre", "resid_post", "attn_out", "mlp_out"]] = Field(
        default=["resid_pre", "attn_out", "mlp_out"], description="Site kinds patched."
    )
    metric: Literal["logit_diff", "prob"] = Field(
        default="logit_diff", description="Answer metric at the last position."
    )
    corruption: list[Literal["str", "noise"]] = Field(
        default=["str", "noise"],
        description="str: the persona swapped; noise: Gaussian noise on the differing tokens.",
    )
    heads: bool = Field(
        default=True, description="Also patch each attention head (all positions at once)."
    )
    n: int = Field(default=64, description="Prompts patched (after filtering).")
    batch_size: int = Field(default=256, description="Forward rows per exact-patching pass.")

    def check(self, ctx: CheckContext, where: str) -> PatchConfig:
        """Positive counts, at least one kind and corruption."""
        c = self.model_copy(deep=True)
        if c.n < 2 or c.batch_size < 1:
            raise c.fail(ctx, where, "n must be >= 2 and batch_size >= 1")
        if not c.kinds or not c.corruption:
            raise c.fail(ctx, where, "kinds and corruption must not be empty")
        return c


def quirky_patch_inputs(
    h: Any, pairs: list[Any], n: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(clean ids, corrupted ids, answer, wrong)`` from quirky pairs: Alice vs Bob prompts of
    one token length (the most common), where the two labels differ; at most ``n``."""
    keep = [p for p in pairs if p.meta.get("alice_label") != p.meta.get("bob_label")]
    if not keep:
        raise MindscopeError("patch: no pairs where Alice's and Bob's labels differ")
    clean = h.encode([swap_persona(p.prompt, "alice") for p in keep])
    corr = h.encode([swap_persona(p.prompt, "bob") for p in keep])
    length = Counter(len(c) for c in clean).most_common(1)[0][0]
    idx = [
        i for i, (c, x) in enumerate(zip(clean, corr, strict=True)) if len(c) == length == len(x)
    ][:n]
    c0, c1 = choice_ids(h, tuple(keep[0].completions))
    tok = (c0, c1)
    ans = torch.tensor([tok[int(keep[i].meta["alice_label"])] for i in idx])
    wrong = torch.tensor([tok[int(keep[i].meta["bob_label"])] for i in idx])
    return (torch.tensor([clean[i] for i in idx]), torch.tensor([corr[i] for i in idx]), ans, wrong)


@register(
    "patch",
    PatchConfig,
    help="activation and attribution patching over layers x positions, with the AtP error",
    order=82,
)
def patch_stage(
    h: Any,
    cfg: PatchConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Exact and attribution patching for each corruption; rows only."""
    from mindscope import patching

    split = pairs_of(cfg.dataset, max(cfg.n * 4, 64), max(cfg.n * 4, 64), seed)
    clean, corr, ans, wrong = quirky_patch_inputs(h, list(split.test), cfg.n)
    rows: list[dict[str, Any]] = []
    for corruption in cfg.corruption:
        if corruption == "str":
            x_corr: torch.Tensor = corr
        else:
            with torch.no_grad():
                emb = h.embed(clean)
            x_corr = patching.gaussian_noise(
                h.embedding_matrix, emb, (clean != corr), scale=3.0, seed=seed
            )
        kw: dict[str, Any] = {"kinds": cfg.kinds, "metric": cfg.metric}
        exact = patching.activation_patching(
            h, clean, x_corr, ans, wrong, batch_size=cfg.batch_size, **kw
        )
        atp = patching.attribution_patching(h, clean, x_corr, ans, wrong, **kw)
        extra: dict[str, object] = {"corruption": corruption}
        rows += exact.to_rows(dataset=cfg.dataset, extra=extra)
        rows += atp.to_rows(dataset=cfg.dataset, extra=extra)
        if cfg.heads:
            heads = patching.head_patching(
                h, clean, x_corr, ans, wrong, metric=cfg.metric, batch_size=cfg.batch_size
            )
            rows += heads.to_rows(dataset=cfg.dataset, extra=extra)
        for kind, err in patching.atp_error(exact, atp).items():
            for name in ("mae", "corr"):
                rows.append(
                    {
                        "metric": f"atp_{name}",
                        "value": err[name],
                        "n": len(ans),
                        "method": "attribution",
                        "dataset": cfg.dataset,
                        "extra": {"site": kind, **extra},
                    }
                )
        rows.append(
            {
                "metric": f"gap_{cfg.metric}",
                "value": exact.gap,
                "n": len(ans),
                "method": "activation",
                "dataset": cfg.dataset,
                "extra": extra,
            }
        )
    for r in rows:
        r["split"] = "test"
    return StageOutput(frame(rows), {}, {}, None, {"n_prompts": len(ans), "length": clean.shape[1]})
