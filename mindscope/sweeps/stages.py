"""Sweep stages: one analysis run on one checkpoint.

A stage is a name, a pydantic config and a function::

    fn(handle, cfg, *, seed, prev_state, store) -> (rows: DataFrame, state)

``rows`` is a results table (:mod:`mindscope.results`); ``state`` is ``None`` or a dict of CPU
tensors handed to the same stage on the next checkpoint (the tuned lens warm-starts from the
previous checkpoint's translators). Stages use public functions only: ``ms.extract``,
``ms.lenses.TunedLens`` / ``ms.lenses.evaluate``, :mod:`mindscope.probes.evaluation` and
:func:`mindscope.activations.lm_logodds`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel

from mindscope.errors import MindscopeError
from mindscope.sweeps.config import ElicitStageConfig, LensStageConfig

__all__ = ["Stage", "STAGES", "lens_stage", "elicit_stage", "warm_start_lens"]

State = dict[str, Any] | None


@dataclass(frozen=True)
class Stage:
    """A named analysis: ``fn(handle, cfg, *, seed, prev_state, store) -> (rows, state)``."""

    name: str
    config_type: type[BaseModel]
    fn: Callable[..., tuple[pd.DataFrame, State]]
    uses_state: Callable[[Any], bool]
    """Whether a config makes the stage read ``prev_state`` (then checkpoints chain)."""


# ------------------------------------------------------------------ lens


def _texts(cfg: LensStageConfig) -> tuple[list[str], list[str], str]:
    from mindscope.lenses import read_texts

    if cfg.train_text:
        train = read_texts(cfg.train_text)
        if cfg.eval_text:
            held = read_texts(cfg.eval_text)
        else:
            cut = max(1, len(train) // 10)
            train, held = train[:-cut] or train, train[-cut:]
        name = Path(cfg.eval_text or cfg.train_text).stem
    else:
        from mindscope.organisms import pocket_corpus

        train, held = pocket_corpus("train"), pocket_corpus("heldout")
        if cfg.eval_text:
            from mindscope.lenses import read_texts as _rt

            held = _rt(cfg.eval_text)
        name = "pocket-corpus"
    return train[: cfg.max_texts], held[: cfg.max_texts], name


def warm_start_lens(h: Any, prev_state: State) -> Any:
    """A fresh :class:`~mindscope.lenses.TunedLens` for ``h``, starting from ``prev_state``'s
    translators when their shapes fit (else from zero, i.e. the logit lens)."""
    import torch

    from mindscope.lenses import TunedLens

    lens = TunedLens(h)
    if prev_state is not None:
        w, b = prev_state.get("weight"), prev_state.get("bias")
        if w is not None and tuple(w.shape) == tuple(lens.weight.shape):
            with torch.no_grad():
                lens.weight.copy_(torch.as_tensor(w))
                lens.bias.copy_(torch.as_tensor(b))
    return lens


def lens_stage(
    h: Any, cfg: LensStageConfig, *, seed: int, prev_state: State, store: str | None = None
) -> tuple[pd.DataFrame, State]:
    """Fit a tuned lens (warm-started from ``prev_state``) and evaluate it against the logit
    lens on held-out text: per-layer KL / CE / entropy rows (nats)."""
    from mindscope import lenses
    from mindscope.lenses.train import TrainConfig, train

    docs, held, name = _texts(cfg)
    warm = cfg.warm_start and prev_state is not None
    lens = warm_start_lens(h, prev_state if warm else None)
    tc = TrainConfig(
        num_steps=cfg.steps,
        tokens_per_step=cfg.tokens_per_step,
        seq_len=cfg.seq_len,
        seed=seed,
        progress=False,
    )
    train(lens, docs, tc)
    df = lenses.evaluate(
        h,
        lens,
        held,
        seq_len=cfg.seq_len,
        n_boot=cfg.n_boot,
        seed=seed,
        dataset=name,
        split="heldout",
    )
    df = _add_extra(df, {"stage": "lens", "warm_start": bool(warm)})
    state = {"weight": lens.weight.detach().cpu().clone(), "bias": lens.bias.detach().cpu().clone()}
    return df, state


# ------------------------------------------------------------------ elicit


def _cell(pairs: Sequence[Any], cell: str) -> list[int]:
    persona, _, difficulty = cell.partition("-")
    return [
        i
        for i, p in enumerate(pairs)
        if p.meta.get("persona") == persona and p.meta.get("difficulty") == difficulty
    ]


def _pairs(cfg: ElicitStageConfig, seed: int) -> tuple[list[Any], list[Any], str, bool]:
    if cfg.dataset == "quirky-arith":
        from mindscope.data import quirky_arith

        train = quirky_arith(cfg.n, seed=seed, split="train")
        test = quirky_arith(cfg.n_test or max(256, cfg.n // 2), seed=seed + 1, split="test")
        return train, test, "quirky-arith", True
    from mindscope.data import load_pairs, train_test_split

    pairs = load_pairs(cfg.dataset)
    if len(pairs) < 16:
        raise MindscopeError(f"{cfg.dataset}: need at least 16 contrast pairs, got {len(pairs)}")
    train, test = train_test_split(pairs, 0.25, seed=seed)
    return train, test, Path(cfg.dataset).stem, False


def elicit_stage(
    h: Any, cfg: ElicitStageConfig, *, seed: int, prev_state: State, store: str | None = None
) -> tuple[pd.DataFrame, State]:
    """Fit reporters on ``cfg.train_on`` (quirky: Alice-easy, truth labels) at every layer and
    score them on each ``cfg.eval_on`` cell against the truth (and Bob's cells against Bob's
    labels, ``auroc_bob``); the model's own answers give ``method="lm"`` rows; a shuffled-label
    fit gives ``method="<m>:shuffled"`` rows (the control: AUROC near 0.5)."""
    import torch

    from mindscope.activations import extract, lm_logodds
    from mindscope.probes import evaluation as pe
    from mindscope.probes.metrics import roc_auc
    from mindscope.results import Row, to_frame

    train, test, data_name, quirky = _pairs(cfg, seed)
    layers = list(range(h.n_layers + 1))

    def read(pairs: list[Any]) -> Any:
        items = [p.prompt for p in pairs] if cfg.read == "prompt" else pairs
        return extract(h, items, layers=layers, store=store, progress=False).stack()

    x_tr, x_te = read(train), read(test)  # [L+1, n, d] or [L+1, n, 2, d]
    if quirky:
        fit = _cell(train, cfg.train_on)
        persona = cfg.train_on.split("-")[0]
        y_fit = torch.tensor([int(train[i].meta[f"{persona}_label"]) for i in fit])
        truth = torch.tensor([int(p.meta["truth"]) for p in test])
        bob = torch.tensor([int(p.meta["bob_label"]) for p in test])
        cells = {c: _cell(test, c) for c in cfg.eval_on}
    else:
        fit = list(range(len(train)))
        y_fit = torch.tensor([int(p.label) for p in train])
        truth = torch.tensor([int(p.label) for p in test])
        bob = truth
        cells = {"test": list(range(len(test)))}
    if len(fit) < 8 or y_fit.unique().numel() < 2:
        raise MindscopeError(f"elicit: too few usable training pairs in {cfg.train_on!r}")
    reps = pe.fit_reporters(x_tr[:, fit], y_fit, cfg.methods, baselines=False)
    groups: list[tuple[dict[str, Any], dict[str, str]]] = [(reps, {})]
    if cfg.shuffled_control:
        gen = torch.Generator().manual_seed(seed + 7)
        y_shuf = y_fit[torch.randperm(len(y_fit), generator=gen)]
        shuf = pe.fit_reporters(x_tr[:, fit], y_shuf, cfg.methods, baselines=False)
        groups.append(({f"{m}:shuffled": r for m, r in shuf.items()}, {"control": "shuffled"}))
    rows: list[Any] = []
    common = {"layers": layers, "model": h.name, "dataset": data_name, "seed": seed}
    for cell, idx in cells.items():
        j = torch.tensor(idx, dtype=torch.long)
        if len(idx) < 4:
            continue
        label_sets = [("truth", truth, "")]
        if quirky and cell.startswith("bob"):
            label_sets.append(("bob", bob, "bob"))
        for lname, y, suffix in label_sets:
            if y[j].unique().numel() < 2:
                continue
            for reporters, ex in groups:
                rows += pe.score_rows(
                    reporters,
                    x_te[:, j],
                    y[j],
                    split=cell,
                    n_boot=cfg.n_boot,
                    extra={
                        "train": cfg.train_on if quirky else "train",
                        "eval": cell,
                        "labels": lname,
                        **ex,
                    },
                    label_name=suffix,
                    **common,
                )
    lo = lm_logodds(h, test)  # [m] what the model says
    for cell, idx in cells.items():
        j = torch.tensor(idx, dtype=torch.long)
        for metric, y in (("auroc", truth), ("auroc_bob", bob)):
            if metric == "auroc_bob" and not (quirky and cell.startswith("bob")):
                continue
            if len(idx) < 4 or y[j].unique().numel() < 2:
                continue
            rows.append(
                Row(
                    metric=metric,
                    value=float(roc_auc(lo[j], y[j].double())),
                    method="lm",
                    model=h.name,
                    dataset=data_name,
                    split=cell,
                    n=len(idx),
                    _extra={"source": "model log-odds", "labels": metric[6:] or "truth"},
                )
            )
    return _add_extra(to_frame(rows), {"stage": "elicit"}), None


# ------------------------------------------------------------------ helpers


def _add_extra(df: pd.DataFrame, more: dict[str, Any]) -> pd.DataFrame:
    """Merge ``more`` into every row's ``extra`` JSON."""
    out = df.copy()
    vals = []
    for v in out["extra"].tolist():
        try:
            d = json.loads(v) if isinstance(v, str) and v.strip() else {}
        except json.JSONDecodeError:
            d = {}
        vals.append(json.dumps({**(d if isinstance(d, dict) else {}), **more}, sort_keys=True))
    out["extra"] = pd.Series(vals, index=out.index, dtype="string")
    return out


STAGES: dict[str, Stage] = {
    "lens": Stage("lens", LensStageConfig, lens_stage, lambda c: bool(c.warm_start)),
    "elicit": Stage("elicit", ElicitStageConfig, elicit_stage, lambda c: False),
}
"""The registered stages, in the order they run on a checkpoint."""
