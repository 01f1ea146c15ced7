"""The lens stage of a run: fit a tuned lens, compare it with the logit lens layer by layer,
and decode the prediction trajectory of one prompt. A pure function of the model handle, the
stage config and the seed (see :mod:`mindscope.runs.stage`)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.results import to_frame
from mindscope.runs.config import LensConfig
from mindscope.runs.folder import LOGGER_NAME
from mindscope.runs.stage import Artefact, StageOutput, isolated, json_artefact

__all__ = ["lens_stage", "texts_hash"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")


def texts_hash(texts: Sequence[str]) -> str:
    """Hex digest (16 chars) of a list of documents, order included."""
    from mindscope.io import hash_bytes

    return hash_bytes(b"".join(t.encode("utf-8") + b"\0" for t in texts))[:16]


def _corpus(split: str) -> list[str]:
    """The organisms' pocket corpus (``train``/``heldout``), via the public API."""
    from mindscope import organisms

    fn = getattr(organisms, "pocket_corpus", None)
    if fn is None:
        raise MindscopeError(
            "mindscope.organisms.pocket_corpus is not available; give lens.train_text and "
            "lens.eval_text in the config"
        )
    return list(fn(split))


def _lens_texts(cfg: LensConfig) -> tuple[list[str], list[str], str]:
    from mindscope.lenses import read_texts

    n = cfg.max_texts
    train = read_texts(cfg.train_text) if cfg.train_text else _corpus("train")
    if cfg.eval_text:
        held = read_texts(cfg.eval_text)
    elif cfg.train_text:
        cut = max(1, len(train) // 10)  # hold out the last tenth of the given file
        train, held = train[:-cut] or train, train[-cut:]
    else:
        held = _corpus("heldout")
    name = Path(cfg.eval_text).stem if cfg.eval_text else "pocket-corpus"
    if cfg.train_text and not cfg.eval_text:
        name = Path(cfg.train_text).stem
    return train[:n], held[:n], name


def lens_stage(
    h: Any,
    cfg: LensConfig,
    *,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = False,
) -> StageOutput:
    """Fit and evaluate a tuned lens for ``h``; returns rows and artefacts (nothing written).

    Artefacts: ``tuned_lens/`` and ``trajectory-{logit_lens,tuned_lens}.json``.
    """
    from mindscope import lenses

    with isolated(seed, threads):
        train, held, data_name = _lens_texts(cfg)
        data = {
            f"lens-train:{data_name}": texts_hash(train),
            f"lens-eval:{data_name}": texts_hash(held),
        }
        log.info(
            "tuned lens: %d train texts, %d eval texts, %s steps",
            len(train),
            len(held),
            cfg.steps if cfg.steps is not None else f"early stopping (<= {cfg.max_steps})",
        )
        lens = lenses.TunedLens.fit(
            h,
            train,
            num_steps=cfg.steps,
            max_steps=cfg.max_steps,
            seed=seed,
            progress=progress,
            tokens_per_step=cfg.tokens_per_step,
        )
        if cfg.steps is None:
            log.info(
                "tuned lens stopped after %d steps, held-out KL %.4f nats",
                lens.info["steps_used"],
                lens.info["heldout_kl"],
            )
        frames = [
            lenses.evaluate(
                h,
                lens,
                held,
                seed=seed,
                dataset=data_name,
                split="eval",
                progress=progress,
                n_boot=500,
            )
        ]
        artefacts: dict[str, Artefact] = {"tuned_lens": lens.save}
        for ln in (None, lens):
            traj = lenses.trajectory(h, ln, cfg.trajectory_prompt)
            frames.append(to_frame(traj.to_rows(dataset="prompt")))
            artefacts[f"trajectory-{traj.method}.json"] = json_artefact(traj.to_dict())
    return StageOutput(pd.concat(frames, ignore_index=True), artefacts, data)
