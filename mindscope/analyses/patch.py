"""The patch stage: exact activation patching and attribution patching between clean and
corrupted prompts, with both corruptions (Zhang & Nanda 2023 advise reporting both).

Where the clean/corrupted pairs come from (``pairing``):

* ``persona`` (quirky datasets; ``auto`` picks it for ``quirky-arith``): the clean prompt is
  Alice's and the corrupted one Bob's (symmetric token replacement of the persona), kept where
  their labels differ; the answer is Alice's label token, the wrong one Bob's;
* ``meta`` (every other dataset under ``auto``): each contrast pair's prompt is the clean
  prompt and ``meta.corrupted`` the corrupted one (a JSONL line ``{"prompt": ..., "completions":
  [..., ...], "label": 1, "meta": {"corrupted": ...}}``); the answer is the labelled
  completion's token, the wrong one the other completion's (``meta.corrupted_label``, when
  given, names the corrupted prompt's answer instead).

Patching aligns positions, so pairs whose clean and corrupted prompts tokenize to different
lengths are left out, pairs are grouped by length and the largest group is patched (``info``
says how many pairs were used and left out). ``corruption: noise`` instead adds Gaussian noise
(3 x the embedding std) to the embeddings of the tokens where the two prompts differ.
Rows: the mean normalized effect per (site, layer, position) with CIs over prompts (and per
(layer, head), ``site: head``, with ``heads``, for exact and attribution patching), and per
site the attribution estimate's error against the exact effect (``atp_mae``, ``atp_corr``).

    ms.analyses.run_stage("patch", h, {"kinds": ["resid_pre", "attn_out"]}, seed=0)
    ms.analyses.run_stage("patch", h, {"dataset": "ioi.jsonl", "corruption": ["str"]})
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

import torch
from pydantic import Field

from mindscope.analyses._interventions import choice_ids, frame, pairs_of, swap_persona
from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register
from mindscope.data.datasets import dataset_name
from mindscope.errors import MindscopeError

__all__ = ["PatchConfig", "patch_stage", "quirky_patch_inputs"]


class PatchConfig(StageConfig):
    """Activation and attribution patching."""

    dataset: str = Field(
        default="quirky-arith",
        description="Contrast pairs: quirky-arith, facts, a .jsonl/.json/.csv file or hf:NAME.",
    )
    pairing: Literal["auto", "persona", "meta"] = Field(
        default="auto",
        description="persona: Alice clean, Bob corrupted (quirky); meta: meta.corrupted of "
        "each pair; auto: persona for quirky-arith, else meta.",
    )
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
    return _aligned(h, _persona_items(h, pairs), n, "quirky")[:4]


def _persona_items(h: Any, pairs: list[Any]) -> list[tuple[str, str, int, int]]:
    if not all("alice_label" in p.meta and "bob_label" in p.meta for p in pairs):
        raise MindscopeError(
            "patch: pairing 'persona' needs quirky pairs (meta.alice_label/bob_label); "
            "use pairing 'meta' with meta.corrupted prompts"
        )
    keep = [p for p in pairs if p.meta["alice_label"] != p.meta["bob_label"]]
    if not keep:
        raise MindscopeError("patch: no pairs where Alice's and Bob's labels differ")
    items = []
    ids: dict[tuple[str, ...], tuple[int, int]] = {}
    for p in keep:
        comps = tuple(p.completions)
        tok = ids[comps] if comps in ids else ids.setdefault(comps, choice_ids(h, comps))
        items.append(
            (
                swap_persona(p.prompt, "alice"),
                swap_persona(p.prompt, "bob"),
                tok[int(p.meta["alice_label"])],
                tok[int(p.meta["bob_label"])],
            )
        )
    return items


def _meta_items(h: Any, pairs: list[Any], name: str) -> list[tuple[str, str, int, int]]:
    items = []
    ids: dict[tuple[str, ...], tuple[int, int]] = {}
    for i, p in enumerate(pairs):
        corr = p.meta.get("corrupted")
        if corr is None:
            continue
        if not isinstance(corr, str):
            raise MindscopeError(f"patch: {name} pair {i + 1}: meta.corrupted must be a string")
        if p.label not in (0, 1):
            raise MindscopeError(f"patch: {name} pair {i + 1} needs a 0/1 label (the answer)")
        wrong_side = int(p.meta.get("corrupted_label", 1 - p.label))
        if wrong_side not in (0, 1):
            raise MindscopeError(f"patch: {name} pair {i + 1}: corrupted_label must be 0 or 1")
        if wrong_side == p.label:
            continue  # the corruption does not change the answer: nothing to restore
        comps = tuple(p.completions)
        tok = ids[comps] if comps in ids else ids.setdefault(comps, choice_ids(h, comps))
        items.append((p.prompt, corr, tok[p.label], tok[wrong_side]))
    if not items:
        raise MindscopeError(
            f"patch: no pair of {name} has a corrupted prompt (meta.corrupted) whose answer "
            "differs from the clean one; give one per pair, or use a quirky dataset with "
            "pairing 'persona'"
        )
    return items


def _aligned(
    h: Any, items: list[tuple[str, str, int, int]], n: int, name: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, dict[str, int]]:
    """Token ids of the largest group of position-aligned pairs (equal lengths), at most ``n``,
    and counts of what was used and left out."""
    clean = h.encode([c for c, _, _, _ in items])
    corr = h.encode([x for _, x, _, _ in items])
    same = [i for i, (c, x) in enumerate(zip(clean, corr, strict=True)) if len(c) == len(x)]
    if not same:
        raise MindscopeError(
            f"patch: in none of the {len(items)} pairs of {name} do the clean and corrupted "
            "prompts have the same token length; patching writes position p into position p, "
            "so corrupted prompts must align with the clean ones token by token"
        )
    length = Counter(len(clean[i]) for i in same).most_common(1)[0][0]
    idx = [i for i in same if len(clean[i]) == length][:n]
    if len(idx) < 2:
        raise MindscopeError(f"patch: {name} has fewer than 2 aligned pairs of one length")
    counts = {
        "n_pairs": len(items),
        "n_used": len(idx),
        "n_unequal_length": len(items) - len(same),
        "length": length,
    }
    return (
        torch.tensor([clean[i] for i in idx]),
        torch.tensor([corr[i] for i in idx]),
        torch.tensor([items[i][2] for i in idx]),
        torch.tensor([items[i][3] for i in idx]),
        counts,
    )


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

    pairing = cfg.pairing
    if pairing == "auto":
        pairing = "persona" if cfg.dataset == "quirky-arith" else "meta"
    if cfg.dataset == "quirky-arith":
        split = pairs_of(cfg.dataset, max(cfg.n * 4, 64), max(cfg.n * 4, 64), seed)
        pairs = list(split.test)
    else:  # nothing is trained here: every pair of the dataset may be patched
        split = pairs_of(cfg.dataset, None, None, seed)
        pairs = list(split.train) + list(split.test)
    items = (
        _persona_items(h, pairs)
        if pairing == "persona"
        else _meta_items(h, pairs, dataset_name(cfg.dataset))
    )
    clean, corr, ans, wrong, counts = _aligned(h, items, cfg.n, dataset_name(cfg.dataset))
    dataset = dataset_name(cfg.dataset)
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
        atp = patching.attribution_patching(h, clean, x_corr, ans, wrong, heads=cfg.heads, **kw)
        extra: dict[str, object] = {"corruption": corruption}
        rows += exact.to_rows(dataset=dataset, extra=extra)
        rows += atp.to_rows(dataset=dataset, extra=extra)
        errors = patching.atp_error(exact, atp)
        if cfg.heads:
            heads = patching.head_patching(
                h, clean, x_corr, ans, wrong, metric=cfg.metric, batch_size=cfg.batch_size
            )
            rows += heads.to_rows(dataset=dataset, extra=extra)
            errors.update(patching.atp_error(heads, atp))
        for kind, err in errors.items():
            for name in ("mae", "corr"):
                rows.append(
                    {
                        "metric": f"atp_{name}",
                        "value": err[name],
                        "n": len(ans),
                        "method": "attribution",
                        "dataset": dataset,
                        "extra": {"site": kind, **extra},
                    }
                )
        rows.append(
            {
                "metric": f"gap_{cfg.metric}",
                "value": exact.gap,
                "n": len(ans),
                "method": "activation",
                "dataset": dataset,
                "extra": extra,
            }
        )
    for r in rows:
        r["split"] = "test"
    info = {"n_prompts": len(ans), "pairing": pairing, **counts}
    return StageOutput(frame(rows), {}, {}, None, info)
