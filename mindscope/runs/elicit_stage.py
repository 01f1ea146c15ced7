"""The reporter stage of a run: fit reporters on contrast pairs at every layer, score them
against the truth, and for quirky data the transfer matrix and the gap recovered. A pure
function of the model handle, the stage config and the seed (see :mod:`mindscope.runs.stage`);
the data come from :func:`mindscope.data.load_split`, as for ``mindscope elicit``."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from mindscope.errors import MindscopeError
from mindscope.results import Row, to_frame
from mindscope.runs.config import ElicitConfig
from mindscope.runs.folder import LOGGER_NAME
from mindscope.runs.predictions import PREDICTIONS_FILE, disagree_rows, prediction_frame
from mindscope.runs.stage import Artefact, StageOutput, isolated

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


def _is_quirky(pairs: Sequence[Any]) -> bool:
    keys = ("persona", "difficulty", "truth", "alice_label", "bob_label")
    return all(k in p.meta for p in pairs for k in keys)


def load_pairs(e: ElicitConfig, seed: int) -> tuple[list[Any], list[Any], str, bool]:
    """``(train, test, dataset name, is_quirky)`` contrast pairs for the reporter stage; the
    split's warnings (twins across train/test) go to the run's log."""
    from mindscope.data.datasets import dataset_name, load_dataset_split
    from mindscope.runs.config import data_fields

    ds = load_dataset_split(
        e.dataset,
        n=e.n,
        seed=seed,
        test_fraction=e.test_fraction,
        template=e.template,
        fields=data_fields(e),
    )
    log.info(
        "reporter data: %d train, %d test pairs (%s split)", len(ds.train), len(ds.test), ds.method
    )
    for msg in ds.warnings:
        log.warning("%s", msg)
    train, test = ds.train, ds.test
    return train, test, dataset_name(e.dataset), _is_quirky(train) and _is_quirky(test)


def _cell(pairs: Sequence[Any], dist: str) -> list[int]:
    """Indices of the pairs in a persona x difficulty cell such as ``"bob-hard"``."""
    persona, difficulty = dist.split("-")
    return [
        i
        for i, p in enumerate(pairs)
        if p.meta.get("persona") == persona and p.meta.get("difficulty") == difficulty
    ]


def _probes() -> Any:
    """The reporters' evaluation API (:mod:`mindscope.probes.evaluation`)."""
    return importlib.import_module("mindscope.probes.evaluation")


def _lm_logodds(h: Any, pairs: Sequence[Any], batch_size: int = 32) -> Any:
    """``[n]`` the model's own log-odds of side 1 over side 0 after each pair's prompt: what the
    model *says* (:func:`mindscope.activations.lm_logodds`, the one implementation); ``None``
    (with a warning) when it is undefined for this model's tokenizer."""
    from mindscope.activations import lm_logodds_or_none

    return lm_logodds_or_none(h, list(pairs), batch_size=batch_size)


def _write_parquet(df: Any, path: Any) -> None:
    from mindscope.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def elicit_stage(
    h: Any,
    cfg: ElicitConfig,
    *,
    seed: int = 0,
    threads: int | None = None,
    progress: bool = False,
) -> StageOutput:
    """Fit and score the configured reporters on ``h``; returns rows and artefacts
    (``reporter-<method>/``), nothing written."""
    with isolated(seed, threads):
        return _elicit(h, cfg, seed, progress)


def _elicit(h: Any, e: ElicitConfig, seed: int, progress: bool) -> StageOutput:
    import torch
    from tqdm.auto import tqdm

    from mindscope.activations import extract
    from mindscope.data import dataset_hash

    pe = _probes()
    train, test, data_name, quirky = load_pairs(e, seed)
    data = {
        f"elicit-train:{data_name}": dataset_hash(train),
        f"elicit-test:{data_name}": dataset_hash(test),
    }
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
    acts_tr = extract(h, inputs(train), layers=layers, position=e.position, progress=progress)
    acts_te = extract(h, inputs(test), layers=layers, position=e.position, progress=progress)
    x_tr, x_te = acts_tr.stack(), acts_te.stack()
    # Reporters are scored against the truth (quirky: the sum is right), fitted on what the
    # training examples' persona says; for quirky data only Alice (truthful) trains the main fit.
    truth_tr = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in train])
    truth_te = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in test])
    fit = [i for i, p in enumerate(train) if not quirky or p.meta["persona"] == "alice"]
    common = {"dataset": data_name, "n_boot": 300, "seed": seed}
    reps = {}
    artefacts: dict[str, Artefact] = {}
    for method in tqdm(e.methods, desc="reporters", disable=not progress, unit="method"):
        reps.update(pe.fit_reporters(x_tr[:, fit], truth_tr[fit], [method], baselines=False))
        artefacts[f"reporter-{method}"] = functools.partial(
            reps[method].save, meta={"model": h.name}
        )
    rows = pe.score_rows(reps, x_te, truth_te, layers=layers, split="test", **common)
    rows += disagree_rows(pe, reps, x_te, test, truth_te, layers, **common)
    preds = prediction_frame(reps, x_te, test, truth_te, layers)
    artefacts[PREDICTIONS_FILE] = functools.partial(_write_parquet, preds)
    if quirky and e.transfer:
        rows += _quirky_rows(h, pe, x_tr, x_te, train, test, layers, e, seed, common, progress)
    return StageOutput(to_frame(rows), artefacts, data)


def _quirky_rows(
    h: Any,
    pe: Any,
    x_tr: Any,
    x_te: Any,
    train: Sequence[Any],
    test: Sequence[Any],
    layers: Sequence[int],
    e: ElicitConfig,
    seed: int,
    common: dict[str, Any],
    progress: bool,
) -> list[Row]:
    """Transfer matrix over persona x difficulty cells (fit on each cell's persona labels,
    score every cell against the truth) and Mallen et al.'s report with gap recovered."""
    import torch
    from tqdm.auto import tqdm

    methods = ([m for m in e.methods if m != "random"][:2] or ["lr"]) + ["random"]
    cells_tr = {d: _cell(train, d) for d in QUIRKY_DISTRIBUTIONS}
    cells_te = {d: _cell(test, d) for d in QUIRKY_DISTRIBUTIONS}
    usable = [d for d in QUIRKY_DISTRIBUTIONS if len(cells_tr[d]) >= 10 and len(cells_te[d]) >= 8]
    rows: list[Row] = []
    truth_te = torch.tensor([int(p.meta["truth"]) for p in test])
    gen = torch.Generator().manual_seed(seed)
    for src in tqdm(usable, desc="transfer matrix", disable=not progress, unit="cell"):
        # 20% of the training cell is held out as the validation split on which the report
        # picks each method's layer (never on the test cells it shows)
        perm = [cells_tr[src][int(k)] for k in torch.randperm(len(cells_tr[src]), generator=gen)]
        n_val = max(2, len(perm) // 5)
        idx, val = perm[n_val:], perm[:n_val]
        persona = src.split("-")[0]
        y_src = torch.tensor([int(train[i].meta[f"{persona}_label"]) for i in idx])
        y_val = torch.tensor([int(train[i].meta[f"{persona}_label"]) for i in val])
        if y_src.unique().numel() < 2:
            continue
        reps = pe.fit_reporters(x_tr[:, idx], y_src, methods, baselines=False)
        if y_val.unique().numel() == 2:
            for r in pe.score_rows(
                reps,
                x_tr[:, val],
                y_val,
                layers=layers,
                split="validation",
                extra={"train": src, "selection": "validation", "labels": persona},
                **{**common, "n_boot": 0},
            ):
                if r.metric == "auroc":
                    rows.append(dataclasses.replace(r, metric="val_auroc"))
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
            dataset=common["dataset"],
            n_boot=200,
            seed=seed,
        )
    except MindscopeError as exc:  # e.g. too few Bob-hard examples for a small n
        log.warning("quirky report skipped: %s", exc)
    return rows
