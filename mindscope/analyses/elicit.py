"""The reporter stage (eliciting latent knowledge): fit reporters on contrast pairs at every
layer and score them against the truth; for quirky data also the persona x difficulty transfer
matrix (with Bob's labels beside the truth and the model's own answers per cell) and Mallen et
al.'s fraction of the gap recovered.

One function serves ``mindscope elicit``, ``mindscope run`` (``elicit:``), ``mindscope sweep``
(``stages: {elicit:}``) and the Python API::

    ms.analyses.run_stage("elicit", h, {"dataset": "quirky-arith", "read": "prompt"})

The data come from :func:`mindscope.data.load_dataset_split` (the one loading path), read once.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import logging
from collections.abc import Sequence
from typing import Any

from pydantic import Field

from mindscope.analyses.base import (
    Artefact,
    CheckContext,
    StageConfig,
    StageOutput,
    register,
)
from mindscope.analyses.checks import check_model_name, model_layers, resolve
from mindscope.analyses.predictions import PREDICTIONS_FILE, disagree_rows, prediction_frame
from mindscope.data.datasets import BUILTIN_DATASETS, DATASET_SUFFIXES
from mindscope.errors import MindscopeError
from mindscope.probes.registry import PAIR_ONLY_METHODS, REPORTER_METHODS, read_mode_error
from mindscope.results import Row

__all__ = [
    "ElicitConfig",
    "elicit_stage",
    "QUIRKY_CELLS",
    "SELECTION_RULE",
    "load_pairs",
    "is_quirky",
    "select_layers",
]

log = logging.getLogger("mindscope.analyses")

QUIRKY_CELLS = ("alice-easy", "alice-hard", "bob-easy", "bob-hard")
"""Persona x difficulty cells of the quirky transfer matrix."""


class ElicitConfig(StageConfig):
    """Eliciting latent knowledge: reporters (probes) on contrast pairs."""

    dataset: str = Field(
        default="quirky-arith",
        description="Built-in dataset (``quirky-arith``, ``facts``), a JSONL/CSV file of "
        "contrast pairs (raw records need ``template``) or ``hf:NAME[:SPLIT]``.",
    )
    n: int | None = Field(
        default=None,
        description="quirky-arith: training pairs drawn (default 1000); other datasets: use at "
        "most n pairs (null: all).",
    )
    n_test: int | None = Field(
        default=None,
        description="quirky-arith: test pairs drawn from its disjoint test split (null: "
        "max(64, n // 4)); ignored for other datasets.",
    )
    template: str | None = Field(
        default=None,
        description="Template name or ``{field}`` pattern rendering raw records into contrast "
        "pairs; null: the records are pairs already.",
    )
    test_fraction: float = Field(
        default=0.25,
        description="Share of pairs held out for scoring (seeded), unless the pairs' "
        "``meta.split`` says train/test (quirky-arith has its own test split).",
    )
    label_field: str = Field(
        default="label", description="Record field holding the 0/1 label (true/false, yes/no)."
    )
    text_field: str | None = Field(
        default=None,
        description="Record field holding the statement (``{statement}`` of templates, and the "
        "prompt of records without one); null: the template's own fields.",
    )
    group_field: str = Field(
        default="group",
        description="Record field naming a group (a statement and its negation): a group never "
        "straddles train and test.",
    )
    split_field: str = Field(
        default="split",
        description="Record field saying ``train``/``test``; when present it replaces the "
        "random split.",
    )
    position: str = Field(
        default="last", description="Token position rule of the extraction (``last``, ``mean``)."
    )
    methods: list[str] = Field(
        default_factory=lambda: ["lr", "diffmean", "ccs", "random"],
        description="Reporters to fit: any of ``lr``, ``diffmean``, ``lda``, ``ccs``, ``crc``, "
        "``random`` (the random-direction baseline).",
    )
    layers: str | list[int] = Field(
        default="all",
        description="``all`` or a list of layer numbers (0 = embeddings, k = after block k).",
    )
    read: str = Field(
        default="completion",
        description="Where reporters read: ``completion`` (the last token of each side of a "
        "contrast pair: ``[n, 2, d]``) or ``prompt`` (the prompt's last token, before any "
        "answer: ``[n, d]``; supervised reporters and ``random`` only).",
    )
    batch_size: int = Field(default=32, description="Examples per forward pass.")
    unsupervised: bool = Field(
        default=False,
        description="Fit CCS/CRC/random without labels (sign ambiguous; scored "
        "max(auroc, 1 - auroc)).",
    )
    transfer: bool = Field(
        default=True,
        description="Quirky data: the persona x difficulty transfer matrix (fit on each cell of "
        "``transfer_from`` with its persona's labels, score every test cell against the truth "
        "and Bob's cells against Bob's labels), and Mallen et al.'s report: the model's own "
        "answers and the fraction of the gap recovered.",
    )
    transfer_from: list[str] = Field(
        default_factory=lambda: list(QUIRKY_CELLS),
        description="Quirky cells the transfer matrix fits on (persona-difficulty).",
    )
    transfer_methods: list[str] | None = Field(
        default=None,
        description="Reporters of the transfer matrix; null: the first two non-random "
        "``methods`` plus ``random``.",
    )
    shuffled_control: bool = Field(
        default=False,
        description="Also fit the transfer matrix's reporters on shuffled labels (rows "
        "``<method>:shuffled``: the control, AUROC near 0.5).",
    )
    n_boot: int = Field(default=300, description="Bootstrap resamples of every AUROC interval.")

    def check(self, ctx: CheckContext, where: str) -> ElicitConfig:
        """Model, dataset (loaded as the stage will), methods, read mode, layers, cells."""
        e = self.model_copy(deep=True)
        if e.model is not None:
            e.model = check_model_name(e.model, f"{where}.model", ctx.base, ctx.prefix)
        if e.dataset not in BUILTIN_DATASETS and not e.dataset.startswith("hf:"):
            path = resolve(e.dataset, ctx.base)
            if not path.is_file():
                close = difflib.get_close_matches(e.dataset, BUILTIN_DATASETS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise e.fail(
                    ctx,
                    f"{where}.dataset",
                    f"{e.dataset!r} is neither a built-in dataset "
                    f"({', '.join(BUILTIN_DATASETS)}) nor an existing file{hint}",
                )
            if path.suffix.lower() not in DATASET_SUFFIXES:
                raise e.fail(
                    ctx,
                    f"{where}.dataset",
                    f"{path.name} has suffix {path.suffix!r}; use one of "
                    f"{', '.join(DATASET_SUFFIXES)}",
                )
            e.dataset = str(path.resolve())
        if e.dataset.startswith("hf:") and e.template is None:
            raise e.fail(ctx, f"{where}.template", "a Hugging Face dataset needs a template")
        if not 0 < e.test_fraction < 1:
            raise e.fail(ctx, f"{where}.test_fraction", f"must be in (0, 1), got {e.test_fraction}")
        if e.template is not None:
            from mindscope.data.templates import get_template

            try:
                get_template(e.template)
            except MindscopeError as exc:
                raise e.fail(ctx, f"{where}.template", str(exc)) from None
        if not e.methods:
            raise e.fail(ctx, f"{where}.methods", "give at least one reporter")
        for key in ("methods", "transfer_methods"):
            for i, method in enumerate(getattr(e, key) or []):
                if method not in REPORTER_METHODS:
                    close = difflib.get_close_matches(method, REPORTER_METHODS, n=1)
                    hint = f"; did you mean {close[0]!r}?" if close else ""
                    raise e.fail(
                        ctx,
                        f"{where}.{key}[{i}]",
                        f"unknown reporter {method!r} (known: {', '.join(REPORTER_METHODS)}){hint}",
                    )
        problem = read_mode_error(e.read, [*e.methods, *(e.transfer_methods or [])])
        if problem:
            raise e.fail(ctx, f"{where}.read", problem)
        for i, cell in enumerate(e.transfer_from):
            if cell not in QUIRKY_CELLS:
                raise e.fail(
                    ctx,
                    f"{where}.transfer_from[{i}]",
                    f"unknown cell {cell!r} (known: {', '.join(QUIRKY_CELLS)})",
                )
        if isinstance(e.layers, str) and e.layers != "all":
            raise e.fail(ctx, f"{where}.layers", "expected 'all' or a list of ints")
        if isinstance(e.layers, list) and (not e.layers or min(e.layers) < 0):
            raise e.fail(ctx, f"{where}.layers", "layers must be a non-empty list of ints >= 0")
        for key, low in (("n", 8), ("n_test", 8), ("batch_size", 1), ("n_boot", 0)):
            value = getattr(e, key)
            if value is not None and value < low:
                raise e.fail(ctx, f"{where}.{key}", f"must be >= {low}, got {value}")
        if ctx.check_data:
            model = e.model or ctx.model
            if isinstance(e.layers, list) and model:
                n = model_layers(model, ctx.revision if e.model is None else None)
                if n is not None and max(e.layers) > n:
                    raise e.fail(
                        ctx,
                        f"{where}.layers",
                        f"layer {max(e.layers)} does not exist; {model} has layers 0..{n} "
                        f"(0 = embeddings, {n} = after the last block)",
                    )
            if not e.dataset.startswith("hf:"):
                try:
                    load_pairs(e, ctx.seed)
                except (MindscopeError, ValueError, TypeError) as exc:
                    raise e.fail(ctx, f"{where}.dataset", " ".join(str(exc).split())) from None
        return e


def is_quirky(pairs: Sequence[Any]) -> bool:
    """Whether every pair carries the quirky labels (persona, difficulty, truth, both
    personas' labels)."""
    keys = ("persona", "difficulty", "truth", "alice_label", "bob_label")
    return bool(pairs) and all(k in p.meta for p in pairs for k in keys)


def load_pairs(e: ElicitConfig, seed: int) -> Any:
    """The :class:`mindscope.data.DatasetSplit` an elicit config names (the one loading path
    of every command)."""
    from mindscope.data.datasets import load_dataset_split
    from mindscope.data.fields import Fields

    return load_dataset_split(
        e.dataset,
        n=e.n,
        n_test=e.n_test,
        seed=seed,
        test_fraction=e.test_fraction,
        template=e.template,
        fields=Fields(
            label=e.label_field, text=e.text_field, group=e.group_field, split=e.split_field
        ),
    )


def _cell(pairs: Sequence[Any], cell: str) -> list[int]:
    """Indices of the pairs in a persona x difficulty cell such as ``"bob-hard"``."""
    persona, _, difficulty = cell.partition("-")
    return [
        i
        for i, p in enumerate(pairs)
        if p.meta.get("persona") == persona and p.meta.get("difficulty") == difficulty
    ]


def _write_parquet(df: Any, path: Any) -> None:
    from mindscope.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


@register(
    "elicit",
    ElicitConfig,
    help="reporters (probes) by layer against the truth; quirky transfer matrix and gap recovered",
    in_run=True,
    order=20,
)
def elicit_stage(
    h: Any,
    cfg: ElicitConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Fit and score the configured reporters on ``h``; returns rows and artefacts
    (``reporter-<method>/``, ``predictions.parquet``), nothing written."""
    import torch
    from tqdm.auto import tqdm

    from mindscope.activations import extract
    from mindscope.data import dataset_hash
    from mindscope.data.datasets import dataset_name
    from mindscope.probes import evaluation as pe
    from mindscope.results import to_frame

    ds = load_pairs(cfg, seed)
    train, test = ds.train, ds.test
    log.info("reporter data: %d train, %d test pairs (%s split)", len(train), len(test), ds.method)
    for msg in ds.warnings:
        log.warning("%s", msg)
    data_name = dataset_name(cfg.dataset)
    quirky = is_quirky(train) and is_quirky(test)
    data = {
        f"elicit-train:{data_name}": dataset_hash(train),
        f"elicit-test:{data_name}": dataset_hash(test),
    }
    layers: list[int] = (
        list(range(h.n_layers + 1)) if isinstance(cfg.layers, str) else [int(k) for k in cfg.layers]
    )
    if max(layers) > h.n_layers:
        raise MindscopeError(
            f"elicit.layers: layer {max(layers)} does not exist; {h.name} has layers "
            f"0..{h.n_layers}"
        )
    if cfg.read == "prompt" and any(m in PAIR_ONLY_METHODS for m in cfg.methods):
        raise MindscopeError(f"elicit.read: {read_mode_error(cfg.read, cfg.methods)}")

    def read(pairs: Sequence[Any]) -> Any:
        items = [p.prompt for p in pairs] if cfg.read == "prompt" else list(pairs)
        acts = extract(
            h,
            items,
            layers=layers,
            position=cfg.position,
            batch_size=cfg.batch_size,
            store=store,
            progress=progress,
        )
        return acts.stack()  # [L, n, 2, d] (read=prompt: [L, n, d])

    x_tr, x_te = read(train), read(test)
    # Reporters are scored against the truth (quirky: the sum is right); for quirky data only
    # Alice (truthful) trains the main fit.
    truth_tr = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in train])
    truth_te = torch.tensor([int(p.meta["truth"]) if quirky else p.label for p in test])
    fit = [i for i, p in enumerate(train) if not quirky or p.meta["persona"] == "alice"]
    common: dict[str, Any] = {"dataset": data_name, "n_boot": cfg.n_boot, "seed": seed}
    reps: dict[str, Any] = {}
    artefacts: dict[str, Artefact] = {}
    for method in tqdm(cfg.methods, desc="reporters", disable=not progress, unit="method"):
        reps.update(
            pe.fit_reporters(
                x_tr[:, fit],
                truth_tr[fit],
                [method],
                unsupervised_sign=cfg.unsupervised,
                baselines=False,
            )
        )
        artefacts[f"reporter-{method}"] = functools.partial(
            reps[method].save, meta={"model": h.name, "layers": layers}
        )
    rows = pe.score_rows(reps, x_te, truth_te, layers=layers, split="test", **common)
    rows += _test_selected_rows(pe, cfg, rows, x_tr, truth_tr, fit, x_te, truth_te, layers, common)
    rows += disagree_rows(pe, reps, x_te, test, truth_te, layers, **common)
    preds = prediction_frame(reps, x_te, test, truth_te, layers)
    artefacts[PREDICTIONS_FILE] = functools.partial(_write_parquet, preds)
    if quirky and cfg.transfer:
        rows += _quirky_rows(h, pe, x_tr, x_te, train, test, layers, cfg, seed, common, progress)
    info = {
        "n_train": len(fit),
        "n_test": len(test),
        "split": ds.method,
        "split_warnings": list(ds.warnings),
        "quirky": quirky,
        "layers": layers,
    }
    return StageOutput(to_frame(rows), artefacts, data, info=info)


TEST_SELECTION_RULE = (
    "best AUROC against the truth on 20% of the training split held out (all its kinds of "
    "examples, like the test split) of reporters refitted on the rest; ties: the lowest layer"
)
"""How :func:`_test_selected_rows` chooses each method's layer for the test-split headline."""


def _test_selected_rows(
    pe: Any,
    cfg: ElicitConfig,
    rows: Sequence[Row],
    x_tr: Any,
    y_tr: Any,
    fit: Sequence[int],
    x_te: Any,
    y_te: Any,
    layers: Sequence[int],
    common: dict[str, Any],
) -> list[Row]:
    """The test-split headline at a layer chosen on validation data, never on the test split:
    20% of the training split is held out (drawn like the test split: quirky data keeps both
    personas, scored against the truth, so the output layer reading the truthful persona's
    answer cannot win trivially), each method is refitted on the rest of its fitting pairs
    ``fit`` and its layer chosen by AUROC on the held-out 20% (:data:`TEST_SELECTION_RULE`);
    at that layer the reporter fitted on every fitting pair is scored on the test split
    (``auroc_selected``, split ``test``, with its CI) beside the 95th percentile and p-value of
    :func:`mindscope.probes.evaluation.random_null` (``auroc_null_p95``, ``null_pvalue``).
    Empty when the training pairs are too few to hold out both classes.

    Args:
        x_tr: ``[L, n, (2,) d]`` the training split's activations; ``y_tr``: ``[n]`` truth.
        fit: indices into the training split the reporters were fitted on.
        x_te: ``[L, m, (2,) d]`` the test activations; ``y_te``: ``[m]`` labels.
    """
    import pandas as pd
    import torch

    from mindscope.metrics_catalog import best

    methods = [m for m in cfg.methods if m != "random"]
    n = int(y_tr.numel())
    if not methods or len(fit) < 20 or y_te.unique().numel() < 2:
        return []
    gen = torch.Generator().manual_seed(int(common.get("seed", 0)) + 7919)
    perm = torch.randperm(n, generator=gen)
    val = perm[: max(4, n // 5)]
    held = set(val.tolist())
    sub = torch.tensor([i for i in fit if i not in held], dtype=torch.long)
    if sub.numel() < 10 or y_tr[val].unique().numel() < 2 or y_tr[sub].unique().numel() < 2:
        return []
    refit = pe.fit_reporters(
        x_tr[:, sub], y_tr[sub], methods, unsupervised_sign=cfg.unsupervised, baselines=False
    )
    scored = pe.score_rows(
        refit, x_tr[:, val], y_tr[val], layers=layers, split="validation",
        **{**common, "n_boot": 0},
    )  # fmt: skip
    val_df = pd.DataFrame(
        [(r.method, r.layer, r.value) for r in scored if r.metric == "auroc"],
        columns=["method", "layer", "value"],
    )
    val_df["metric"] = "auroc"
    out: list[Row] = []
    nulls: dict[int, Any] = {}
    extra = {"train": "train", "eval": "test", "labels": "truth", "selection": TEST_SELECTION_RULE}
    for method, grp in val_df.groupby("method", sort=True):
        if not grp["value"].notna().any():
            continue
        layer = int(best(grp, "auroc")["layer"])
        cell = [
            r
            for r in rows
            if r.metric == "auroc" and r.method == method and r.layer == layer and r.split == "test"
        ]
        if not cell:
            continue
        r0 = cell[0]
        if layer not in nulls:
            k = list(layers).index(layer)
            nulls[layer] = pe.random_null(
                x_tr[k, list(fit)], y_tr[list(fit)], x_te[k], y_te, seed=int(common.get("seed", 0))
            )
        p95, p = pe.null_summary(r0.value, nulls[layer])
        ex = {**extra, "n_directions": int(nulls[layer].numel())}
        out.append(dataclasses.replace(r0, metric="auroc_selected", extra="", _extra=ex))
        for metric, value in (("auroc_null_p95", p95), ("null_pvalue", p)):
            out.append(
                Row(
                    metric=metric,
                    value=value,
                    method=str(method),
                    layer=layer,
                    dataset=r0.dataset,
                    split="test",
                    n=r0.n,
                    _extra=ex,
                )  # fmt: skip
            )
    return out


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
    score every cell against the truth, Bob's cells also against Bob's labels) and Mallen et
    al.'s report with the model's own answers and the fraction of the gap recovered."""
    import torch
    from tqdm.auto import tqdm

    from mindscope.activations import lm_logodds_or_none

    methods = e.transfer_methods or (
        ([m for m in e.methods if m != "random"][:2] or ["lr"]) + ["random"]
    )
    cells_tr = {d: _cell(train, d) for d in QUIRKY_CELLS}
    cells_te = {d: _cell(test, d) for d in QUIRKY_CELLS}
    usable_te = [d for d in QUIRKY_CELLS if len(cells_te[d]) >= 8]
    sources = [d for d in e.transfer_from if len(cells_tr[d]) >= 10 and d in usable_te]
    rows: list[Row] = []
    truth_tr = torch.tensor([int(p.meta["truth"]) for p in train])
    truth_te = torch.tensor([int(p.meta["truth"]) for p in test])
    bob_te = torch.tensor([int(p.meta["bob_label"]) for p in test])
    gen = torch.Generator().manual_seed(seed)
    fits: dict[str, tuple[dict[str, Any], list[int], Any]] = {}
    for src in tqdm(sources, desc="transfer matrix", disable=not progress, unit="cell"):
        # 20% of the training cell is held out: with the training split's examples of the
        # other cells it is the validation data on which each method's layer is chosen
        perm = [cells_tr[src][int(k)] for k in torch.randperm(len(cells_tr[src]), generator=gen)]
        n_val = max(2, len(perm) // 5)
        idx, val = perm[n_val:], perm[:n_val]
        persona = src.split("-")[0]
        y_src = torch.tensor([int(train[i].meta[f"{persona}_label"]) for i in idx])
        if y_src.unique().numel() < 2:
            continue
        groups: list[tuple[dict[str, Any], dict[str, str]]] = [
            (pe.fit_reporters(x_tr[:, idx], y_src, methods, baselines=False), {})
        ]
        fits[src] = (groups[0][0], idx, y_src)
        if e.shuffled_control:
            shuffled = y_src[torch.randperm(len(y_src), generator=gen)]
            fitted = pe.fit_reporters(x_tr[:, idx], shuffled, methods, baselines=False)
            groups.append(
                ({f"{m}:shuffled": r for m, r in fitted.items()}, {"control": "shuffled"})
            )
        # validation AUROC against the truth (what the matrix shows), never on the test split:
        # the output layer, which reads each persona's answer, cannot win it trivially
        for dst in QUIRKY_CELLS:
            vj = val if dst == src else cells_tr[dst]
            if len(vj) < 4 or truth_tr[vj].unique().numel() < 2:
                continue
            for r in pe.score_rows(
                groups[0][0],
                x_tr[:, vj],
                truth_tr[vj],
                layers=layers,
                split="validation",
                extra={"train": src, "eval": dst, "labels": "truth", "selection": "validation"},
                **{**common, "n_boot": 0},
            ):
                if r.metric == "auroc":
                    rows.append(dataclasses.replace(r, metric="val_auroc"))
        for dst in usable_te:
            j = cells_te[dst]
            label_sets = [("truth", truth_te, "")]
            if dst.startswith("bob"):
                label_sets.append(("bob", bob_te, "bob"))
            for lname, y, suffix in label_sets:
                if y[j].unique().numel() < 2:
                    continue
                for reporters, ex in groups:
                    rows += pe.score_rows(
                        reporters,
                        x_te[:, j],
                        y[j],
                        layers=layers,
                        split=dst,
                        extra={"train": src, "eval": dst, "labels": lname, **ex},
                        label_name=suffix,
                        **common,
                    )
    if len(sources) < len(e.transfer_from):
        log.warning("quirky transfer: too few examples in some cells; fitted on %s", sources)
    everything = list(train) + list(test)
    lo_all = lm_logodds_or_none(h, everything, batch_size=e.batch_size)  # [n + m] or None
    lo_te = None if lo_all is None else lo_all[len(train) :]  # [m]
    rows += _selected_rows(pe, rows, fits, x_tr, x_te, cells_te, truth_te, lo_te, layers, common)
    x_all = torch.cat([x_tr, x_te], dim=1)  # [L, n + m, (2,) d]
    meta = [dict(p.meta) for p in everything]
    try:
        rows += pe.quirky_report(
            x_all,
            meta,
            lm_logodds=lo_all,
            methods=methods,
            layers=layers,
            dataset=common["dataset"],
            n_boot=e.n_boot,
            seed=seed,
        )
    except MindscopeError as exc:  # e.g. too few Bob-hard examples for a small n
        log.warning("quirky report skipped: %s", exc)
    return rows


SELECTION_RULE = (
    "best mean validation AUROC against the truth, over every evaluation cell, of the "
    "reporters fitted on truthful (Alice) cells; validation = held-out training examples; "
    "ties: the lowest layer"
)
"""How :func:`select_layers` chooses each method's layer (the report quotes it)."""


def select_layers(rows: Sequence[Row], truthful: str = "alice") -> dict[str, int]:
    """Each method's layer for the transfer matrix and the Bob-hard headline: the best mean
    ``val_auroc`` (against the truth) of the reporters fitted on the ``truthful`` persona's
    cells, over every evaluation cell (:data:`SELECTION_RULE`; ties by
    :func:`mindscope.metrics_catalog.best`). A layer that reads the persona's answer (the
    output layer) scores low on the other persona's cells, so it cannot win trivially."""
    import pandas as pd

    from mindscope.metrics_catalog import best
    from mindscope.results import extra_of

    val = [
        (r.method, r.layer, r.value)
        for r in rows
        if r.metric == "val_auroc" and str(extra_of(r).get("train", "")).startswith(truthful)
    ]
    if not val:
        return {}
    df = pd.DataFrame(val, columns=["method", "layer", "value"])
    means = df.groupby(["method", "layer"], as_index=False)["value"].mean()
    means["metric"] = "auroc"
    return {
        str(m): int(best(grp, "auroc")["layer"])
        for m, grp in means.groupby("method", sort=True)
        if grp["value"].notna().any()
    }


def _selected_rows(
    pe: Any,
    rows: Sequence[Row],
    fits: dict[str, tuple[dict[str, Any], list[int], Any]],
    x_tr: Any,
    x_te: Any,
    cells_te: dict[str, list[int]],
    truth_te: Any,
    lo_te: Any,
    layers: Sequence[int],
    common: dict[str, Any],
    train: str = "alice-easy",
    test: str = "bob-hard",
    reference: str = "alice-hard",
) -> list[Row]:
    """The Bob-hard headline at each method's validation-chosen layer (:func:`select_layers`):
    ``auroc_selected`` (the transfer cell ``train -> test`` against the truth, with its CI),
    ``auroc_null_p95`` and ``null_pvalue`` (its 95th percentile and rank against
    :func:`mindscope.probes.evaluation.random_null` at that layer, signs fitted on the same
    training examples), and, with the model's own log-odds on the test split,
    ``gap_recovered_selected`` (``extra``: the two model AUROCs, the gap of a constant probe
    ``chance`` and of the null's 95th percentile ``null_p95``)."""
    import torch

    from mindscope.probes.metrics import roc_auc
    from mindscope.results import extra_of

    chosen = select_layers(rows)
    j = cells_te.get(test, [])
    if train not in fits or len(j) < 8 or truth_te[j].unique().numel() < 2:
        return []
    reps, idx, y_fit = fits[train]
    lm: tuple[float, float] | None = None
    ref = cells_te.get(reference, [])
    if lo_te is not None and len(ref) >= 8 and truth_te[ref].unique().numel() == 2:
        lo = torch.as_tensor(lo_te).double()
        lm = (float(roc_auc(lo[j], truth_te[j])), float(roc_auc(lo[ref], truth_te[ref])))
    out: list[Row] = []
    nulls: dict[int, Any] = {}
    base = {"train": train, "eval": test, "labels": "truth", "selection": SELECTION_RULE}
    for method, layer in chosen.items():
        cell = [
            r
            for r in rows
            if r.metric == "auroc"
            and r.method == method
            and r.layer == layer
            and r.split == test
            and _is_cell(extra_of(r), train, test)
        ]
        if not cell or method not in reps:
            continue
        r0 = cell[0]
        if layer not in nulls:  # one null per layer, shared by the methods chosen there
            k = list(layers).index(layer)
            nulls[layer] = pe.random_null(
                x_tr[k, idx], y_fit, x_te[k, j], truth_te[j], seed=int(common.get("seed", 0))
            )
        null = nulls[layer]
        p95, p = pe.null_summary(r0.value, null)
        extra = {**base, "n_directions": int(null.numel())}
        out.append(dataclasses.replace(r0, metric="auroc_selected", extra="", _extra=extra))
        for metric, value in (("auroc_null_p95", p95), ("null_pvalue", p)):
            out.append(
                Row(
                    metric=metric,
                    value=value,
                    method=method,
                    layer=layer,
                    dataset=r0.dataset,
                    split=test,
                    n=r0.n,
                    _extra=extra,
                )
            )
        if lm is not None:
            gap = functools.partial(
                pe.fraction_gap_recovered, lm_auroc_bob=lm[0], lm_auroc_alice=lm[1]
            )
            out.append(
                Row(
                    metric="gap_recovered_selected",
                    value=gap(r0.value),
                    method=method,
                    layer=layer,
                    dataset=r0.dataset,
                    split=test,
                    n=r0.n,
                    _extra={
                        **extra,
                        "lm_auroc_bob": lm[0],
                        "lm_auroc_alice": lm[1],
                        "chance": gap(0.5),
                        "null_p95": gap(p95),
                    },
                )
            )
    return out


def _is_cell(ex: dict[str, Any], train: str, test: str) -> bool:
    """Whether a row's ``extra`` names the transfer cell ``train -> test`` against the truth
    (not a shuffled-label control)."""
    return (
        ex.get("train") == train
        and ex.get("eval") == test
        and ex.get("labels", "truth") == "truth"
        and "control" not in ex
    )
