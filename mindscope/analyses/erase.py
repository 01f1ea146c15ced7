"""The erase stage: fit LEACE for a concept at each layer, audit it, and measure what erasing it
inside the model does to the answers.

The concept is a field of the pairs' ``meta`` (``persona``, ``truth``, ...) or ``label``. The
audit (:func:`mindscope.erasure.erasure_audit`) gives the linear probe's AUROC after erasure (it
should be 0.5, its CI covering it), a one-hidden-layer MLP probe's (it may not be), and the
distortion against oracle LEACE. Then the eraser runs inside the forward pass on the test
prompts: ``answer_follows`` rows give the share of answers equal to each reference label
(for quirky data: the persona's, Alice's = the truth, Bob's) with and without erasure.

    ms.analyses.run_stage("erase", h, {"concept": "persona", "layers": [3]}, seed=0)
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field

from mindscope.analyses._interventions import choice_ids, frame, pairs_of, resolve_layers
from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register
from mindscope.errors import MindscopeError

__all__ = ["EraseConfig", "erase_stage"]


class EraseConfig(StageConfig):
    """Concept erasure (LEACE) and its audit."""

    dataset: str = Field(default="quirky-arith", description="Contrast pairs (as elicit reads).")
    concept: str = Field(
        default="persona", description="The concept: 'label' or a meta field of the pairs."
    )
    site: Literal["resid_pre", "resid_post", "attn_out", "mlp_out"] = Field(
        default="resid_post", description="Site kind erased."
    )
    layers: Literal["all"] | list[int] = Field(default="all", description="Layers to erase at.")
    positions: Literal["last", "all"] = Field(
        default="last",
        description="Fit on and erase at every prompt position ('all') or the last one only.",
    )
    n: int = Field(default=800, description="Training pairs (the eraser and probes fit on them).")
    n_test: int = Field(default=400, description="Test pairs (audit and behaviour).")
    n_boot: int = Field(default=300, description="Bootstrap resamples of the intervals.")

    def check(self, ctx: CheckContext, where: str) -> EraseConfig:
        """Positive counts."""
        c = self.model_copy(deep=True)
        for name in ("n", "n_test"):
            if getattr(c, name) < 4:
                raise c.fail(ctx, f"{where}.{name}", f"must be >= 4, got {getattr(c, name)}")
        return c


def _concept(pairs: list[Any], concept: str) -> tuple[torch.Tensor, list[Any]]:
    vals = [p.label if concept == "label" else p.meta.get(concept) for p in pairs]
    if any(v is None for v in vals):
        raise MindscopeError(f"erase: concept {concept!r} is missing from some pairs' meta")
    classes = sorted({str(v) for v in vals})
    if len(classes) < 2:
        raise MindscopeError(
            f"erase: concept {concept!r} has one class ({classes[0]}): nothing to erase"
        )
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[str(v)] for v in vals]), classes


def _acts(
    h: Any, prompts: list[str], site: str, positions: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Activations ``[rows, d]`` and each row's prompt index ``[rows]``."""
    from mindscope.steering import pad_batch

    xs, owner = [], []
    for s in range(0, len(prompts), 256):
        x, am = pad_batch(h, h.encode(prompts[s : s + 256]))
        with h.capture([site]) as cache:
            h.forward(x, attention_mask=am)
        a = cache[site].float().cpu()  # [b, pos, d]
        if positions == "last":
            last = am.sum(1) - 1
            xs.append(a[torch.arange(len(x)), last])
            owner.append(torch.arange(s, s + len(x)))
        else:
            keep = am.bool()
            xs.append(a[keep])
            owner.append(torch.arange(s, s + len(x))[:, None].expand_as(keep)[keep])
    return torch.cat(xs), torch.cat(owner)


def _answers(h: Any, prompts: list[str], choices: tuple[int, int], ctx: Any) -> torch.Tensor:
    from mindscope.steering import pad_batch

    out = []
    for s in range(0, len(prompts), 256):
        x, am = pad_batch(h, h.encode(prompts[s : s + 256]))
        last = am.sum(1) - 1
        with ctx(last):
            logits = h.forward(x, attention_mask=am)
        lg = logits[torch.arange(len(x)), last.to(logits.device)].float().cpu()
        out.append((lg[:, choices[1]] > lg[:, choices[0]]).long())
    return torch.cat(out)


@register(
    "erase",
    EraseConfig,
    help="LEACE concept erasure per layer: probe AUROC after erasure, distortion, answers",
    order=81,
)
def erase_stage(
    h: Any,
    cfg: EraseConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Fit, audit and apply a LEACE eraser at each layer; rows only."""
    import contextlib

    from mindscope import erasure
    from mindscope.steering import wilson

    split = pairs_of(cfg.dataset, cfg.n, cfg.n_test, seed)
    train, test = list(split.train), list(split.test)
    y_tr, classes = _concept(train, cfg.concept)
    y_te, _ = _concept(test, cfg.concept)
    p_tr, p_te = [p.prompt for p in train], [p.prompt for p in test]
    choices = choice_ids(h, tuple(test[0].completions))
    refs = {"label": torch.tensor([p.label for p in test])}
    for key in ("alice_label", "bob_label"):
        if all(key in p.meta for p in test):
            refs[key.removesuffix("_label")] = torch.tensor([int(p.meta[key]) for p in test])
    rows: list[dict[str, Any]] = []

    # where Alice's and Bob's labels differ an answer follows one of them (or neither); split
    # by the prompt's persona when the pairs have one
    ones = torch.ones(len(test), dtype=torch.bool)
    differ = refs["alice"] != refs["bob"] if "bob" in refs else ones
    groups = {"all": ones}
    if all("persona" in p.meta for p in test):
        for who in sorted({str(p.meta["persona"]) for p in test}):
            groups[who] = torch.tensor([str(p.meta["persona"]) == who for p in test])

    def follows(pred: torch.Tensor, layer: int, method: str) -> None:
        for name, ref in refs.items():
            for group, in_group in groups.items():
                sel = in_group & (differ if name in ("alice", "bob") else ones)
                k, n = float((pred == ref)[sel].sum()), int(sel.sum())
                if n == 0:
                    continue
                lo, hi = wilson(k, n)
                rows.append(
                    {
                        "metric": "answer_follows",
                        "value": k / n,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": n,
                        "layer": layer,
                        "method": method,
                        "extra": {
                            "reference": name,
                            "prompts": group,
                            "concept": cfg.concept,
                            "rows": "labels differ" if name != "label" else "all",
                        },
                    }
                )

    follows(_answers(h, p_te, choices, lambda last: contextlib.nullcontext()), -1, "none")
    for layer in resolve_layers(h, cfg.layers):
        site = f"{cfg.site}.{layer}"
        x_tr, o_tr = _acts(h, p_tr, site, cfg.positions)
        x_te, o_te = _acts(h, p_te, site, cfg.positions)
        audit = erasure.erasure_audit(
            x_tr, y_tr[o_tr], x_te, y_te[o_te], n_boot=cfg.n_boot, seed=seed
        )
        for name, (v, lo, hi) in audit.items():
            rows.append(
                {
                    "metric": name,
                    "value": v,
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": len(x_te),
                    "layer": layer,
                    "method": "leace",
                    "extra": {
                        "concept": cfg.concept,
                        "site": site,
                        "positions": cfg.positions,
                        "classes": classes,
                    },
                }
            )
        eraser = erasure.LeaceFitter().fit(x_tr, y_tr[o_tr]).eraser_

        def ctx(last: torch.Tensor, site: str = site, eraser: Any = eraser) -> Any:
            return erasure.erasing(h, site, eraser, positions=cfg.positions, last_index=last)

        follows(_answers(h, p_te, choices, ctx), layer, "leace")
    for r in rows:
        r["dataset"], r["split"] = cfg.dataset, "test"
    return StageOutput(frame(rows), {}, {}, None, {"classes": classes, "n_test": len(test)})
