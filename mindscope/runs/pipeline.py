"""The pipeline behind ``mindscope run`` and ``mindscope demo``.

One run: load the model, run the lens analysis (tuned lens fit + KL by layer + prediction
trajectories) and the reporter analysis (reporters by layer, quirky transfer matrix and fraction
of gap recovered), writing the results table after each stage, then the report, then the final
manifest. Instruments are reached only through their public APIs; this module sits on top and
may import everything (the report does not).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.results import Row, to_frame
from mindscope.runs.config import RunConfig, to_dict, validate
from mindscope.runs.folder import LOGGER_NAME, RunFolder

__all__ = ["run_pipeline", "demo_config", "QUIRKY_DISTRIBUTIONS"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")


def torch_no_grad(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``torch.no_grad`` as a decorator that imports torch only when called."""

    @functools.wraps(fn)
    def inner(*args: Any, **kwargs: Any) -> Any:
        import torch

        with torch.no_grad():
            return fn(*args, **kwargs)

    return inner


QUIRKY_DISTRIBUTIONS = ("alice-easy", "alice-hard", "bob-easy", "bob-hard")
"""Persona x difficulty cells of the quirky transfer matrix."""


def demo_config(
    output_dir: str = "runs", device: str = "auto", seed: int = 0, quick: bool = False
) -> RunConfig:
    """The config of ``mindscope demo`` (``quick``: fewer steps and examples, for tests/CI)."""
    cfg = RunConfig(name="demo", output_dir=output_dir, seed=seed)
    cfg.model.name = "organism:pocket-lm"  # lens analysis: a >= 6-layer LM of docstrings
    cfg.elicit.model = "organism:quirky-arith"  # reporters: Alice/Bob quirky addition checker
    cfg.model.device = device
    cfg.elicit.methods = ["lr", "diffmean", "lda", "ccs", "crc", "random"]
    # Sized for a CPU: ~0.4 M lens-training tokens on the 6-layer pocket-lm.
    cfg.lens.steps, cfg.lens.tokens_per_step = 100, 4096
    cfg.lens.trajectory_prompt = "Return the number of items in the"
    if quick:
        cfg.lens.steps, cfg.lens.tokens_per_step, cfg.lens.max_texts = 20, 2048, 64
        cfg.elicit.n = 256
    return validate(cfg, Path.cwd())


# ----------------------------------------------------------------------------- helpers


@contextmanager
def _stage(name: str, bar: Any) -> Iterator[None]:
    bar.set_postfix_str(name)
    log.info("stage %s: start", name)
    t0 = time.perf_counter()
    yield
    log.info("stage %s: done in %.1f s", name, time.perf_counter() - t0)
    bar.update(1)


def _seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _texts_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()[:16]


def _environment(h: Any) -> dict[str, str]:
    import torch
    import transformers

    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": str(h.device),
        "dtype": str(h.dtype).removeprefix("torch."),
    }


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


# ----------------------------------------------------------------------------- lens stage


def _lens_stage(h: Any, cfg: RunConfig, folder: RunFolder, progress: bool) -> pd.DataFrame:
    from mindscope import lenses

    train, held, data_name = _lens_texts(cfg)
    folder.manifest.data[f"lens-train:{data_name}"] = _texts_hash(train)
    folder.manifest.data[f"lens-eval:{data_name}"] = _texts_hash(held)
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


# ----------------------------------------------------------------------------- elicit stage


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
    quirky = all(k in p.meta for p in pairs for k in ("persona", "difficulty", "truth"))
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


@torch_no_grad
def _lm_logodds(h: Any, pairs: Sequence[Any], batch_size: int = 32) -> Any:
    """``[n]`` the model's own log-odds of side 1 over side 0 (first token of each completion)
    after each pair's prompt: what the model *says*, to compare reporters with."""
    import torch

    tok = h.tokenizer
    first = [
        [tok(c, add_special_tokens=False)["input_ids"][0] for c in p.completions] for p in pairs
    ]
    encoded = [tok(p.prompt, add_special_tokens=False)["input_ids"] for p in pairs]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    out = torch.empty(len(pairs), dtype=torch.float64)
    for s in range(0, len(pairs), batch_size):
        chunk = encoded[s : s + batch_size]
        width = max(len(c) for c in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)  # [b, T], right-padded
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, c in enumerate(chunk):
            ids[i, : len(c)] = torch.tensor(c)
            mask[i, : len(c)] = 1
        logits = h.model(input_ids=ids.to(h.device), attention_mask=mask.to(h.device)).logits
        last = logits[torch.arange(len(chunk)), mask.sum(1).to(h.device) - 1].float()  # [b, V]
        logp = last.log_softmax(-1)
        pair_ids = torch.tensor(first[s : s + batch_size], device=logp.device)  # [b, 2]
        lp = logp.gather(1, pair_ids)  # [b, 2]
        out[s : s + len(chunk)] = (lp[:, 1] - lp[:, 0]).double().cpu()
    return out


def _elicit_stage(h: Any, cfg: RunConfig, folder: RunFolder, progress: bool) -> pd.DataFrame:
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
    x_tr = ms.extract(h, train, layers=layers, progress=progress).stack()  # [L, n, 2, d]
    x_te = ms.extract(h, test, layers=layers, progress=progress).stack()  # [L, m, 2, d]
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


# ----------------------------------------------------------------------------- the pipeline


def _load_models(
    cfg: RunConfig, folder: RunFolder, load_model: Callable[..., Any] | None
) -> dict[str, Any]:
    """Load every model the enabled analyses read (once each); records them in the manifest."""
    if load_model is None:
        import mindscope as ms

        load_model = ms.load_model
    m = cfg.model
    names = [m.name] if cfg.lens.enabled else []
    if cfg.elicit.enabled:
        names.append(cfg.elicit.model or m.name)
    models: dict[str, Any] = {}
    for name in dict.fromkeys(names):
        log.info("loading %s", name)
        h = load_model(
            name,
            revision=m.revision if name == m.name else None,
            device=m.device,
            dtype=None if m.dtype == "auto" else m.dtype,
        )
        models[name] = h
        folder.manifest.models.append(
            {"name": h.name, "revision": h.revision, "weights_hash": h.weights_hash}
        )
        folder.manifest.environment.update(_environment(h))
    folder.write_manifest()
    return models


def run_pipeline(
    cfg: RunConfig, *, progress: bool = True, load_model: Callable[..., Any] | None = None
) -> RunFolder:
    """Run every analysis ``cfg`` enables and write a complete run folder.

    The config is checked again first (nothing is loaded before it passes). Results are written
    atomically after each stage; the manifest turns ``complete`` only after the report is in
    place. On any error the manifest says ``failed`` (with the message) and the error propagates.

    Args:
        cfg: a run config (typically from :func:`mindscope.runs.load_config`).
        progress: show progress bars.
        load_model: replaces :func:`mindscope.load_model` (tests pass a tiny model).

    Returns:
        The finished :class:`RunFolder`.
    """
    from tqdm.auto import tqdm

    cfg = validate(cfg, Path.cwd())
    folder = RunFolder.create(cfg.output_dir, cfg.name, seed=cfg.seed)
    folder.write_config(to_dict(cfg))
    stages = ["load models"] + (["lens"] if cfg.lens.enabled else [])
    stages += (["reporters"] if cfg.elicit.enabled else []) + ["report"]
    frames: list[pd.DataFrame] = []
    with (
        folder.logging(),
        tqdm(
            total=len(stages),
            desc=f"run {cfg.name}",
            unit="stage",
            disable=not progress,
            position=0,
        ) as bar,
    ):
        try:
            log.info(
                "run %s in %s; config %s",
                cfg.name,
                folder.path,
                json.dumps(dataclasses.asdict(cfg)),
            )
            _seed_everything(cfg.seed)
            with _stage("load models", bar):
                models = _load_models(cfg, folder, load_model)
            if cfg.lens.enabled:
                with _stage("lens", bar):
                    frames.append(_lens_stage(models[cfg.model.name], cfg, folder, progress))
                    folder.write_results(pd.concat(frames, ignore_index=True))
            if cfg.elicit.enabled:
                with _stage("reporters", bar):
                    h = models[cfg.elicit.model or cfg.model.name]
                    frames.append(_elicit_stage(h, cfg, folder, progress))
                    folder.write_results(pd.concat(frames, ignore_index=True))
            with _stage("report", bar):
                table = pd.concat(frames, ignore_index=True)
                folder.write_results(table)
                folder.write_report(table)
            folder.finish("complete")
        except BaseException as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            log.exception("run failed: %s", msg)
            folder.finish("failed", error=f"{type(exc).__name__}: {msg}")
            raise
    return folder
