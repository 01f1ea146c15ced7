"""The lens stage: fit a tuned lens, compare it with the logit lens layer by layer, and decode
the prediction trajectory of one prompt (interpreting across depth).

One function serves ``mindscope run`` (``lens:``), ``mindscope sweep`` (``stages: {lens:}``,
where each checkpoint's lens starts from the previous checkpoint's) and the Python API::

    ms.analyses.run_stage("lens", h, {"steps": 50}, seed=0)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import Field

from mindscope.analyses.base import (
    Artefact,
    CheckContext,
    StageConfig,
    StageOutput,
    json_artefact,
    register,
)
from mindscope.analyses.checks import check_file
from mindscope.errors import MindscopeError

__all__ = ["LensConfig", "lens_stage", "texts_hash", "lens_texts", "warm_start_lens"]

log = logging.getLogger("mindscope.analyses")


class LensConfig(StageConfig):
    """Interpreting across depth: logit lens and tuned lens."""

    train_text: str | None = Field(
        default=None,
        description='Texts to fit the tuned lens on (JSONL with "text", or blank-line separated '
        "documents); null: the organism's corpus.",
    )
    eval_text: str | None = Field(
        default=None,
        description="Texts to evaluate the lenses on (same format); null: held-out text (the "
        "corpus's held-out split, or the last tenth of ``train_text``).",
    )
    steps: int | None = Field(
        default=None,
        description="Optimiser steps for fitting the tuned lens; null: stop by itself when the "
        "KL on held-out training text stops improving (at most ``max_steps``).",
    )
    max_steps: int = Field(
        default=250, description="Most optimiser steps when ``steps`` is null (early stopping)."
    )
    tokens_per_step: int = Field(
        default=8192,
        description="Training tokens per optimiser step (the paper uses 2**18; small models "
        "need fewer).",
    )
    seq_len: int | None = Field(
        default=None, description="Tokens per training/evaluation window; null: the model's."
    )
    max_texts: int = Field(
        default=512,
        description="At most this many texts are used for fitting and for evaluation each.",
    )
    trajectory_prompt: str | None = Field(
        default="The cat sat on the",
        description="Prompt whose prediction trajectory (top token per layer and position) the "
        "report shows; null: none.",
    )
    warm_start: bool = Field(
        default=True,
        description="In a sweep, start each checkpoint's lens from the previous checkpoint's.",
    )
    n_boot: int = Field(default=500, description="Bootstrap resamples of the KL/CE intervals.")

    def check(self, ctx: CheckContext, where: str) -> LensConfig:
        """Files exist, counts are positive, a non-organism model has training text."""
        c = self.model_copy(deep=True)
        c.train_text = check_file(c.train_text, f"{where}.train_text", ctx.base, ctx.prefix)
        c.eval_text = check_file(c.eval_text, f"{where}.eval_text", ctx.base, ctx.prefix)
        for name in ("steps", "max_steps", "tokens_per_step", "max_texts"):
            value = getattr(c, name)
            if value is not None and value < 1:
                raise c.fail(ctx, f"{where}.{name}", f"must be >= 1, got {value}")
        if c.seq_len is not None and c.seq_len < 2:
            raise c.fail(ctx, f"{where}.seq_len", f"must be >= 2, got {c.seq_len}")
        if c.n_boot < 0:
            raise c.fail(ctx, f"{where}.n_boot", f"must be >= 0, got {c.n_boot}")
        model = c.model or ctx.model
        if c.enabled and c.train_text is None and model and not model.startswith("organism:"):
            raise c.fail(
                ctx,
                f"{where}.train_text",
                f"required for {model!r} (only organisms come with a built-in corpus)",
            )
        return c


def texts_hash(texts: Sequence[str]) -> str:
    """Hex digest (16 chars) of a list of documents, order included."""
    from mindscope.io import hash_bytes

    return hash_bytes(b"".join(t.encode("utf-8") + b"\0" for t in texts))[:16]


def lens_texts(cfg: LensConfig) -> tuple[list[str], list[str], str]:
    """``(train, held-out, dataset name)`` texts of a lens config (each at most
    ``cfg.max_texts``)."""
    from mindscope.lenses import read_texts

    if cfg.train_text:
        train = read_texts(cfg.train_text)
        if cfg.eval_text:
            held = read_texts(cfg.eval_text)
        else:
            cut = max(1, len(train) // 10)  # hold out the last tenth of the given file
            train, held = train[:-cut] or train, train[-cut:]
        name = Path(cfg.eval_text or cfg.train_text).stem
    else:
        from mindscope import organisms

        train = list(organisms.pocket_corpus("train"))
        held = (
            read_texts(cfg.eval_text) if cfg.eval_text else list(organisms.pocket_corpus("heldout"))
        )
        name = Path(cfg.eval_text).stem if cfg.eval_text else "pocket-corpus"
    if not train or not held:
        raise MindscopeError("lens: no training or evaluation texts")
    return train[: cfg.max_texts], held[: cfg.max_texts], name


def warm_start_lens(h: Any, state: dict[str, Any] | None) -> Any:
    """A fresh :class:`~mindscope.lenses.TunedLens` for ``h``, starting from ``state``'s
    translators (``weight [n_layers, d, d]``, ``bias [n_layers, d]``) when their shapes fit,
    else from zero (the logit lens)."""
    import torch

    from mindscope.lenses import TunedLens

    lens = TunedLens(h)
    if state is not None:
        w, b = state.get("weight"), state.get("bias")
        if w is not None and tuple(w.shape) == tuple(lens.weight.shape):
            with torch.no_grad():
                lens.weight.copy_(torch.as_tensor(w))
                lens.bias.copy_(torch.as_tensor(b))
    return lens


@register(
    "lens",
    LensConfig,
    help="tuned lens vs logit lens by layer (KL, CE, entropy) and a prediction trajectory",
    in_run=True,
    order=10,
    chained=lambda cfg: bool(cfg.warm_start),
)
def lens_stage(
    h: Any,
    cfg: LensConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Fit and evaluate a tuned lens for ``h``; returns rows, artefacts (``tuned_lens/`` and
    ``trajectory-{logit_lens,tuned_lens}.json``) and the lens as ``state`` (nothing written)."""
    from mindscope import lenses
    from mindscope.lenses.train import TrainConfig, train
    from mindscope.results import to_frame, with_extra

    docs, held, data_name = lens_texts(cfg)
    data = {
        f"lens-train:{data_name}": texts_hash(docs),
        f"lens-eval:{data_name}": texts_hash(held),
    }
    warm = bool(cfg.warm_start and state is not None)
    lens = warm_start_lens(h, state if warm else None)
    log.info(
        "tuned lens: %d train texts, %d eval texts, %s steps%s",
        len(docs),
        len(held),
        cfg.steps if cfg.steps is not None else f"early stopping (<= {cfg.max_steps})",
        ", warm start" if warm else "",
    )
    tc = TrainConfig(
        num_steps=cfg.steps,
        max_steps=cfg.max_steps,
        tokens_per_step=cfg.tokens_per_step,
        seq_len=cfg.seq_len,
        seed=seed,
        progress=progress,
    )
    train(lens, docs, tc)
    if cfg.steps is None and "heldout_kl" in lens.info:
        log.info(
            "tuned lens stopped after %d steps, held-out KL %.4f nats",
            lens.info["steps_used"],
            lens.info["heldout_kl"],
        )
    df = lenses.evaluate(
        h,
        lens,
        held,
        seq_len=cfg.seq_len,
        n_boot=cfg.n_boot,
        seed=seed,
        dataset=data_name,
        split="heldout",
        progress=progress,
    )
    frames = [df]
    artefacts: dict[str, Artefact] = {"tuned_lens": lens.save}
    if cfg.trajectory_prompt:
        for ln in (None, lens):
            traj = lenses.trajectory(h, ln, cfg.trajectory_prompt)
            frames.append(to_frame(traj.to_rows(dataset="prompt")))
            artefacts[f"trajectory-{traj.method}.json"] = json_artefact(traj.to_dict())
    new_state = {
        "weight": lens.weight.detach().cpu().clone(),
        "bias": lens.bias.detach().cpu().clone(),
    }
    rows = with_extra(pd.concat(frames, ignore_index=True), warm_start=warm)
    return StageOutput(rows, artefacts, data, new_state)
