"""The pipeline behind ``mindscope run`` and ``mindscope demo``.

One run: load the model, run the lens analysis (tuned lens fit + KL by layer + prediction
trajectories) and the reporter analysis (reporters by layer, quirky transfer matrix and fraction
of gap recovered), writing the results table after each stage, then the report, then the final
manifest. Instruments are reached only through their public APIs; this module sits on top and
may import everything (the report does not).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from mindscope.runs.config import REPORTER_METHODS, RunConfig, to_dict, validate
from mindscope.runs.folder import LOGGER_NAME, RunFolder

__all__ = ["run_pipeline", "demo_config", "REPORTERS", "QUIRKY_DISTRIBUTIONS"]

log = logging.getLogger(f"{LOGGER_NAME}.runs")

REPORTERS = {
    "lr": "LogisticReporter",
    "diffmean": "DiffMeanReporter",
    "lda": "LdaReporter",
    "ccs": "CcsReporter",
    "crc": "CrcReporter",
    "random": "RandomReporter",
}
"""Config key -> reporter class name in :mod:`mindscope.probes`."""
assert set(REPORTERS) == set(REPORTER_METHODS)

QUIRKY_DISTRIBUTIONS = ("alice-easy", "alice-hard", "bob-easy", "bob-hard")
"""Persona x difficulty cells of the quirky transfer matrix."""


def demo_config(
    output_dir: str = "runs", device: str = "auto", seed: int = 0, quick: bool = False
) -> RunConfig:
    """The config of ``mindscope demo`` (``quick``: fewer steps and examples, for tests/CI)."""
    cfg = RunConfig(name="demo", output_dir=output_dir, seed=seed)
    cfg.model.device = device
    cfg.elicit.methods = ["lr", "diffmean", "lda", "ccs", "crc", "random"]
    if quick:
        cfg.lens.steps, cfg.lens.max_texts = 20, 64
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
    """The organisms' pocket corpus (``train``/``val``/``test``), via the public API."""
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
        held = _corpus("val")
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

        n_test = max(64, e.n // 4)
        train = quirky_arith(e.n, seed=cfg.seed, split="train")
        test = quirky_arith(n_test, seed=cfg.seed + 1, split="test")
        return train, test, "quirky-arith", True
    from mindscope import data

    reader = getattr(data, "load_pairs", None) or getattr(data, "read_pairs", None)
    if reader is not None:
        pairs = list(reader(e.dataset))
    else:
        from mindscope.data import ContrastPair

        pairs = []
        for i, line in enumerate(Path(e.dataset).read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    d = json.loads(line)
                    pairs.append(
                        ContrastPair(
                            **{**d, "completions": tuple(d.get("completions", (" False", " True")))}
                        )
                    )
                except (json.JSONDecodeError, TypeError, ValueError) as exc:
                    raise MindscopeError(f"{e.dataset}:{i}: not a contrast pair ({exc})") from None
    if len(pairs) < 8:
        raise MindscopeError(f"{e.dataset}: need at least 8 contrast pairs, got {len(pairs)}")
    split = [str(p.meta.get("split", "")) for p in pairs]
    if "train" in split and "test" in split:
        train = [p for p, s in zip(pairs, split) if s == "train"]
        test = [p for p, s in zip(pairs, split) if s == "test"]
    else:
        order = np.random.default_rng(cfg.seed).permutation(len(pairs))
        cut = int(0.75 * len(pairs))
        train = [pairs[i] for i in order[:cut]]
        test = [pairs[i] for i in order[cut:]]
    quirky = all("persona" in p.meta and "alice_label" in p.meta for p in pairs)
    return train, test, Path(e.dataset).stem, quirky


def _reporter(method: str, seed: int) -> Any:
    from mindscope import probes

    cls = getattr(probes, REPORTERS[method])
    params = getattr(cls, "_params", ())
    return cls(seed=seed) if "seed" in params else cls()


def _auroc_rows(
    p: Any, y: Any, *, method: str, layers: Sequence[int], seed: int, **fields: Any
) -> list[Row]:
    """AUROC per layer of credences ``p [L, m]`` against ``y [m]``, with a 95% bootstrap CI."""
    import torch

    from mindscope.probes.metrics import roc_auc

    p_t = torch.as_tensor(p).double()  # [L, m]
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.float64)  # [m]
    auc = roc_auc(p_t, y_t.expand_as(p_t))  # [L]
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, y_t.shape[0], (300, y_t.shape[0]), generator=gen)  # [B, m]
    boot = roc_auc(p_t[:, idx], y_t[idx].expand(p_t.shape[0], -1, -1))  # [L, B]
    lo = torch.nanquantile(boot, 0.025, dim=-1)
    hi = torch.nanquantile(boot, 0.975, dim=-1)
    extra = fields.pop("extra", "")
    return [
        Row(
            "auroc",
            float(auc[i]),
            method,
            int(k),
            ci_low=float(lo[i]),
            ci_high=float(hi[i]),
            n=len(y_t),
            extra=extra,
            **fields,
        )
        for i, k in enumerate(layers)
    ]


def _cell(pairs: Sequence[Any], dist: str) -> list[int]:
    persona, difficulty = dist.split("-")
    return [
        i
        for i, p in enumerate(pairs)
        if p.meta.get("persona") == persona and p.meta.get("difficulty") == difficulty
    ]


def _elicit_stage(h: Any, cfg: RunConfig, folder: RunFolder, progress: bool) -> pd.DataFrame:
    import torch
    from tqdm.auto import tqdm

    import mindscope as ms
    from mindscope.data import dataset_hash

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
    # Reporters are scored against the truth when it is known (quirky: Alice's labels).
    truth_key = "alice_label" if quirky else None
    y_tr = torch.tensor([p.meta[truth_key] if truth_key else p.label for p in train])
    y_te = np.array([p.meta[truth_key] if truth_key else p.label for p in test])
    base = {"model": h.name, "revision": h.revision or "", "dataset": data_name}
    rows: list[Row] = []
    fit_idx = list(range(len(train)))
    if quirky:  # fit on Alice (truthful persona), as in Mallen et al.
        fit_idx = [i for i, p in enumerate(train) if p.meta.get("persona") == "alice"]
    for method in tqdm(e.methods, desc="reporters", disable=not progress, unit="method"):
        rep = _reporter(method, cfg.seed).fit(x_tr[:, fit_idx], y_tr[fit_idx])
        rep.save(folder.artefacts / f"reporter-{method}", meta={"model": h.name})
        p = rep.predict_proba(x_te)  # [L, m]
        rows += _auroc_rows(
            p, y_te, method=method, layers=layers, seed=cfg.seed, split="test", **base
        )
    if quirky and e.transfer:
        rows += _transfer_rows(x_tr, y_tr, x_te, y_te, train, test, layers, cfg, base, progress)
    return to_frame(rows)


def _transfer_rows(
    x_tr: Any,
    y_tr: Any,
    x_te: Any,
    y_te: Any,
    train: Sequence[Any],
    test: Sequence[Any],
    layers: Sequence[int],
    cfg: RunConfig,
    base: dict[str, Any],
    progress: bool,
) -> list[Row]:
    """Quirky transfer matrix (train cell x eval cell, AUROC vs truth) and gap recovered."""
    import torch
    from tqdm.auto import tqdm

    from mindscope.probes.metrics import roc_auc

    rows: list[Row] = []
    methods = [m for m in cfg.elicit.methods if m != "random"][:2] or cfg.elicit.methods[:1]
    cells_tr = {d: _cell(train, d) for d in QUIRKY_DISTRIBUTIONS}
    cells_te = {d: _cell(test, d) for d in QUIRKY_DISTRIBUTIONS}
    usable = [d for d in QUIRKY_DISTRIBUTIONS if len(cells_tr[d]) >= 8 and len(cells_te[d]) >= 8]
    if len(usable) < 2:
        log.warning("quirky transfer: too few examples per persona x difficulty cell; skipped")
        return rows
    y_te_t = torch.as_tensor(y_te, dtype=torch.float64)
    work = [(m, d) for m in methods for d in usable]
    for method, src in tqdm(work, desc="transfer matrix", disable=not progress, unit="fit"):
        idx = cells_tr[src]
        # Each cell's reporter learns from that persona's own labels (what the model "says").
        persona = src.split("-")[0]
        y_src = torch.tensor([train[i].meta[f"{persona}_label"] for i in idx])
        if y_src.unique().numel() < 2:
            continue
        rep = _reporter(method, cfg.seed).fit(x_tr[:, idx], y_src)
        p = rep.predict_proba(x_te)  # [L, m]
        for dst in usable:
            j = cells_te[dst]
            if y_te_t[j].unique().numel() < 2:
                continue
            auc = roc_auc(p[:, j].double(), y_te_t[j].expand(p.shape[0], -1))  # [L]
            for i, k in enumerate(layers):
                rows.append(
                    Row(
                        "transfer_auroc",
                        float(auc[i]),
                        method,
                        int(k),
                        split="test",
                        n=len(j),
                        _extra={"train": src, "eval": dst, "labels": "truth"},
                        **base,
                    )
                )
    # Fraction of gap recovered: Alice-easy -> Bob-hard transfer against a Bob-hard ceiling.
    df = to_frame(rows)
    if df.empty:
        return rows
    from mindscope.report.conventions import transfer_rows

    t = transfer_rows(df)
    for (method, k), g in t.groupby(["method", "layer"]):
        cell = g.set_index(["train", "eval"])["value"]
        src = "alice-easy"
        if (src, "bob-hard") in cell and ("bob-hard", "bob-hard") in cell:
            ceiling = cell[("bob-hard", "bob-hard")]
            if abs(ceiling - 0.5) > 1e-6:
                pgr = (cell[(src, "bob-hard")] - 0.5) / (ceiling - 0.5)
                rows.append(
                    Row(
                        "pgr",
                        float(pgr),
                        str(method),
                        int(k),
                        split=f"{src}->bob-hard",
                        n=int(g["n"].max()),
                        **base,
                    )
                )
    return rows


# ----------------------------------------------------------------------------- the pipeline


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
    stages = ["load model"] + (["lens"] if cfg.lens.enabled else [])
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
            with _stage("load model", bar):
                if load_model is None:
                    import mindscope as ms

                    load_model = ms.load_model
                m = cfg.model
                h = load_model(
                    m.name,
                    revision=m.revision,
                    device=m.device,
                    dtype=None if m.dtype == "auto" else m.dtype,
                )
                folder.manifest.models.append(
                    {"name": h.name, "revision": h.revision, "weights_hash": h.weights_hash}
                )
                folder.manifest.environment.update(_environment(h))
                folder.write_manifest()
            if cfg.lens.enabled:
                with _stage("lens", bar):
                    frames.append(_lens_stage(h, cfg, folder, progress))
                    folder.write_results(pd.concat(frames, ignore_index=True))
            if cfg.elicit.enabled:
                with _stage("reporters", bar):
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
