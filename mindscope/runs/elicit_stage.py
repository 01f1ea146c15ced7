"""The reporter stage of a run: fit reporters on contrast pairs at every layer, score them
against the truth, and for quirky data the transfer matrix and the gap recovered."""

from __future__ import annotations

import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.results import Row, to_frame
from mindscope.runs.config import RunConfig
from mindscope.runs.folder import LOGGER_NAME, RunFolder

__all__ = ["elicit_stage", "QUIRKY_DISTRIBUTIONS"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")


def _torch_no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.no_grad`` as a decorator that imports torch only when called."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return inner


QUIRKY_DISTRIBUTIONS = ("alice-easy", "alice-hard", "bob-easy", "bob-hard")
"""Persona x difficulty cells of the quirky transfer matrix."""


def _load_pairs(cfg: RunConfig) -> tuple[list[Any], list[Any], str, bool]:
    """``(train, test, dataset name, is_quirky)`` contrast pairs for the reporter stage."""
    e = cfg.elicit
    if e.dataset == "quirky-arith":
        from mindscope.data import quirky_arith

        train = quirky_arith(e.n, seed=cfg.seed, split="train")
        test = quirky_arith(max(64, e.n // 4), seed=cfg.seed + 1, split="test")
        return train, test, "quirky-arith", True
    from mindscope.data.loaders import load_pairs

    pairs = load_pairs(e.dataset)
    if len(pairs) < 8:
        raise MindscopeError(f"{e.dataset}: need at least 8 contrast pairs, got {len(pairs)}")
    if any(p.label not in (0, 1) for p in pairs):
        raise MindscopeError(f"{e.dataset}: every pair needs a 0/1 label to score reporters")
    split = [str(p.meta.get("split", "")) for p in pairs]
    if "train" in split and "test" in split:
        train = [p for p, s in zip(pairs, split) if s == "train"]
        test = [p for p, s in zip(pairs, split) if s == "test"]
    else:
        from mindscope.data.loaders import train_test_split

        train, test = train_test_split(pairs, 0.25, seed=cfg.seed)
    keys = ("persona", "difficulty", "truth", "alice_label", "bob_label")
    quirky = all(k in p.meta for p in pairs for k in keys)
    return train, test, Path(e.dataset).stem, quirky


def _cell(pairs: Sequence[Any], dist: str) -> list[int]:
    """Indices of the pairs in a persona x difficulty cell such as ``"bob-hard"``."""
    persona, difficulty = dist.split("-")
    return [
        i
        for i, p in enumerate(pairs)
        if p.meta.get("persona") == persona and p.meta.get("difficulty") == difficulty
    ]


def _probes() -> Any:
    """The reporters' evaluation API (:mod:`mindscope.probes.evaluate`)."""
    return importlib.import_module("mindscope.probes.evaluate")


def _lm_logodds(h: Any, pairs: Sequence[Any], batch_size: int = 32) -> Any:
    """``[n]`` the model's own log-odds of side 1 over side 0 after each pair's prompt: what the
    model *says* (:func:`mindscope.activations.lm_logodds`, the one implementation)."""
    from mindscope.activations import lm_logodds

    return lm_logodds(h, list(pairs), batch_size=batch_size)


def elicit_stage(h: Any, cfg: RunConfig, folder: RunFolder, progress: bool) -> pd.DataFrame:
    """Fit, save and score the configured reporters on ``h``; returns the stage's rows."""
    import torch
    from tqdm.auto import tqdm

    import mindscope as ms
    from mindscope.data import dataset_hash

    pe = _probes()
    e = cfg.elicit
    train, test, data_name, quirky = _load_pairs(cfg)
    folder.manifest.data[f"elicit-train:{data_name}"] = dataset_hash(train)
    folder.manifest.data[f"elicit-test:{data_name}"] = dataset_hash(test)
    layers: list[int] = (
        list(range(h.n_layers + 1)) if isinstance(e.layers, str) else [int(k) for k in e.layers]
    )
    if max(layers) > h.n_layers:
        raise MindscopeError(
            f"elicit.layers: layer {max(layers)} does not exist; {h.name} has layers "
            f"0..{h.n_layers}"
        )
    # read=prompt: the prompt's last token, before any answer -> [L, n, d];
    # read=completion: the last token of each side of the pair -> [L, n, 2, d]
    inputs = (lambda ps: [p.prompt for p in ps]) if e.read == "prompt" else list
    x_tr = ms.extract(h, inputs(train), layers=layers, progress=progress).stack()
    x_te = ms.extract(h, inputs(test), layers=layers, progress=progress).stack()
    # Reporters are scored against the truth (quirky: the sum is right), fitted on what the
    # training examples' persona says; for quirky data only Alice (truthful) trains the main fit.
    truth_tr = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in train])
    truth_te = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in test])
    fit = [i for i, p in enumerate(train) if not quirky or p.meta["persona"] == "alice"]
    common = {"model": h.name, "dataset": data_name, "n_boot": 300, "seed": cfg.seed}
    reps = {}
    for method in tqdm(e.methods, desc="reporters", disable=not progress, unit="method"):
        reps.update(pe.fit_reporters(x_tr[:, fit], truth_tr[fit], [method], baselines=False))
        reps[method].save(folder.artefacts / f"reporter-{method}", meta={"model": h.name})
    rows = pe.score_rows(reps, x_te, truth_te, layers=layers, split="test", **common)
    if quirky and e.transfer:
        rows += _quirky_rows(h, pe, x_tr, x_te, train, test, layers, cfg, common, progress)
    return to_frame(rows).assign(revision=h.revision or "")


def _quirky_rows(
    h: Any,
    pe: Any,
    x_tr: Any,
    x_te: Any,
    train: Sequence[Any],
    test: Sequence[Any],
    layers: Sequence[int],
    cfg: RunConfig,
    common: dict[str, Any],
    progress: bool,
) -> list[Row]:
    """Transfer matrix over persona x difficulty cells (fit on each cell's persona labels,
    score every cell against the truth) and Mallen et al.'s report with gap recovered."""
    import torch
    from tqdm.auto import tqdm

    methods = [m for m in cfg.elicit.methods if m != "random"][:2] or ["lr"]
    cells_tr = {d: _cell(train, d) for d in QUIRKY_DISTRIBUTIONS}
    cells_te = {d: _cell(test, d) for d in QUIRKY_DISTRIBUTIONS}
    usable = [d for d in QUIRKY_DISTRIBUTIONS if len(cells_tr[d]) >= 8 and len(cells_te[d]) >= 8]
    rows: list[Row] = []
    truth_te = torch.tensor([int(p.meta["truth"]) for p in test])
    for src in tqdm(usable, desc="transfer matrix", disable=not progress, unit="cell"):
        idx = cells_tr[src]
        persona = src.split("-")[0]
        y_src = torch.tensor([int(train[i].meta[f"{persona}_label"]) for i in idx])
        if y_src.unique().numel() < 2:
            continue
        reps = pe.fit_reporters(x_tr[:, idx], y_src, methods, baselines=False)
        for dst in usable:
            j = cells_te[dst]
            if truth_te[j].unique().numel() < 2:
                continue
            rows += pe.score_rows(
                reps,
                x_te[:, j],
                truth_te[j],
                layers=layers,
                split=dst,
                extra={"train": src, "eval": dst, "labels": "truth"},
                **{**common, "n_boot": 100},
            )
    if len(usable) < len(QUIRKY_DISTRIBUTIONS):
        log.warning("quirky transfer: too few examples in some cells; used %s", usable)
    everything = list(train) + list(test)
    x_all = torch.cat([x_tr, x_te], dim=1)  # [L, n + m, 2, d]
    meta = [dict(p.meta) for p in everything]
    try:
        rows += pe.quirky_report(
            x_all,
            meta,
            lm_logodds=_lm_logodds(h, everything),
            methods=methods,
            layers=layers,
            model=h.name,
            dataset=common["dataset"],
            n_boot=200,
            seed=cfg.seed,
        )
    except MindscopeError as exc:  # e.g. too few Bob-hard examples for a small n
        log.warning("quirky report skipped: %s", exc)
    return rows
