"""The lens stage of a run: fit a tuned lens, compare it with the logit lens layer by layer,
and decode the prediction trajectory of one prompt (results rows + artefacts)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.results import to_frame
from mindscope.runs.config import RunConfig
from mindscope.runs.folder import LOGGER_NAME, RunFolder

__all__ = ["lens_stage", "texts_hash"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")


def texts_hash(texts: Sequence[str]) -> str:
    """Hex digest (16 chars) of a list of documents, order included."""
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


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


def _lens_texts(cfg: RunConfig) -> tuple[list[str], list[str], str]:
    from mindscope.lenses import read_texts

    n = cfg.lens.max_texts
    train = read_texts(cfg.lens.train_text) if cfg.lens.train_text else _corpus("train")
    if cfg.lens.eval_text:
        held = read_texts(cfg.lens.eval_text)
    elif cfg.lens.train_text:
        cut = max(1, len(train) // 10)  # hold out the last tenth of the given file
        train, held = train[:-cut] or train, train[-cut:]
    else:
        held = _corpus("heldout")
    name = Path(cfg.lens.eval_text).stem if cfg.lens.eval_text else "pocket-corpus"
    if cfg.lens.train_text and not cfg.lens.eval_text:
        name = Path(cfg.lens.train_text).stem
    return train[:n], held[:n], name


def lens_stage(h: Any, cfg: RunConfig, folder: RunFolder, progress: bool) -> pd.DataFrame:
    """Fit, save and evaluate a tuned lens for ``h``; returns the stage's results rows."""
    from mindscope import lenses

    train, held, data_name = _lens_texts(cfg)
    folder.manifest.data[f"lens-train:{data_name}"] = texts_hash(train)
    folder.manifest.data[f"lens-eval:{data_name}"] = texts_hash(held)
    log.info(
        "tuned lens: %d train texts, %d eval texts, %d steps", len(train), len(held), cfg.lens.steps
    )
    lens = lenses.TunedLens.fit(
        h,
        train,
        num_steps=cfg.lens.steps,
        seed=cfg.seed,
        progress=progress,
        tokens_per_step=cfg.lens.tokens_per_step,
    )
    lens.save(folder.artefacts / "tuned_lens")
    df = lenses.evaluate(
        h,
        lens,
        held,
        seed=cfg.seed,
        dataset=data_name,
        split="eval",
        progress=progress,
        n_boot=500,
    )
    frames = [df]
    for ln in (None, lens):
        traj = lenses.trajectory(h, ln, cfg.lens.trajectory_prompt)
        frames.append(to_frame(traj.to_rows(dataset="prompt")))
        name = f"trajectory-{traj.method}.json"
        (folder.artefacts / name).write_text(json.dumps(traj.to_dict()), encoding="utf-8")
    return pd.concat(frames, ignore_index=True)
