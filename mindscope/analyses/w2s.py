"""The weak-to-strong stage: supervisors x student methods x seeds, scored against the truth.

One function serves ``mindscope w2s``, ``mindscope run`` (``w2s:``), ``mindscope sweep``
(``stages: {w2s:}``: the strong model over checkpoints or sizes) and the Python API::

    ms.analyses.run_stage("w2s", h, {"supervisors": [{"kind": "random", "accuracy": 0.75}]})

The data come from :func:`mindscope.data.load_dataset_split` (the loading path of every
command); the science is :func:`mindscope.w2s.run_w2s`.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mindscope.analyses.base import (
    Artefact,
    CheckContext,
    StageConfig,
    StageOutput,
    json_artefact,
    register,
)
from mindscope.analyses.checks import check_model_name
from mindscope.schema import Schema

__all__ = ["W2SConfig", "SupervisorSpec", "w2s_stage", "make_supervisor", "SUPERVISOR_KINDS"]

log = logging.getLogger("mindscope.analyses")

SUPERVISOR_KINDS = ("weak-model", "field", "random", "slice", "spurious", "truth")
"""Supervisor kinds of a config (:mod:`mindscope.w2s.supervisors`)."""


class SupervisorSpec(Schema):
    """One weak supervisor."""

    kind: Literal["weak-model", "field", "random", "slice", "spurious", "truth"] = Field(
        description="``weak-model`` (a smaller model's reporter fitted on the truth of a held-out "
        "split, or its own answer), ``field`` (labels the pairs carry: ``label`` is the quirky "
        "persona's answer), ``random``/``slice``/``spurious`` (the truth with errors at a chosen "
        "accuracy: uniform, inside the slice ``where``, or where the truth differs from the "
        "feature ``where``), ``truth`` (a perfect supervisor, a control)."
    )
    name: str | None = Field(default=None, description="Name in the rows (null: the kind).")
    accuracy: float = Field(default=0.75, description="Rule supervisors: share of right labels.")
    where: str | None = Field(
        default=None,
        description="Slice or spurious feature: ``meta.KEY=VALUE``, ``label=1`` or "
        "``prompt~REGEX``.",
    )
    field: str = Field(
        default="label", description="``field`` supervisors: ``label`` or a meta key."
    )
    model: str | None = Field(
        default=None, description="``weak-model``: the weak model (hub id, folder, organism:NAME)."
    )
    revision: str | None = Field(default=None, description="``weak-model``: its revision.")
    layer: int = Field(default=-1, description="``weak-model``: layer its reporter reads.")
    read: Literal["reporter", "answer"] = Field(
        default="reporter",
        description="``weak-model``: a reporter fitted on the truth, or the model's own answer.",
    )

    @property
    def label(self) -> str:
        return self.name or (
            f"{self.kind}-{self.accuracy:g}"
            if self.kind in ("random", "slice", "spurious")
            else self.kind
        )


class W2SConfig(StageConfig):
    """Weak-to-strong generalization: students on weak labels, scored against the truth."""

    dataset: str = Field(
        default="quirky-arith",
        description="Built-in dataset, a JSONL/CSV file of contrast pairs (raw records need "
        "``template``) or ``hf:NAME[:SPLIT]``; every pair needs a truth (``truth_field``).",
    )
    n: int | None = Field(
        default=2000,
        description="quirky-arith: training pairs drawn; other datasets: use at most n "
        "(null: all).",
    )
    n_test: int | None = Field(
        default=500, description="quirky-arith: test pairs from its disjoint test split."
    )
    template: str | None = Field(default=None, description="Template rendering raw records.")
    test_fraction: float = Field(
        default=0.25, description="Share of pairs held out for scoring (unless meta.split says)."
    )
    label_field: str = Field(default="label", description="Record field holding the 0/1 label.")
    text_field: str | None = Field(default=None, description="Record field of the statement.")
    group_field: str = Field(default="group", description="Record field naming a group.")
    split_field: str = Field(default="split", description="Record field saying train/test.")
    truth_field: str | None = Field(
        default=None,
        description="Meta key of the truth (``label``: the pair's label); null: ``meta.truth`` "
        "when every pair has it, else the label.",
    )
    supervisors: list[SupervisorSpec] = Field(
        default_factory=lambda: [
            SupervisorSpec(kind="field", name="persona"),
            SupervisorSpec(kind="random", accuracy=0.75),
            SupervisorSpec(kind="spurious", accuracy=0.75, where="meta.persona=bob"),
        ],
        description="Weak supervisors (each a mapping: kind, accuracy, where, field, model, ...).",
    )
    methods: list[str] = Field(
        default_factory=lambda: ["ce", "logconf", "reporter", "relabel"],
        description="Students: ``ce``, ``logconf`` (fine-tuned with that loss), ``reporter`` "
        "(a reporter on frozen activations), ``relabel``/``filter`` (``ce`` on labels "
        "relabelled or filtered by a cross-fitted reporter on the strong model).",
    )
    seeds: int = Field(default=5, description="Seeds (seed, seed+1, ...) of every student.")
    layer: int = Field(default=-1, description="Layer the students read (-1: the last).")
    train_layers: int | Literal["all"] = Field(
        default=2, description="Blocks below the head that fine-tune (``all``; 0: head only)."
    )
    steps: int = Field(default=150, description="Fine-tuning steps at most.")
    batch_size: int = Field(default=64, description="Fine-tuning batch size.")
    lr: float = Field(default=3e-4, description="Learning rate of the fine-tuned blocks.")
    head_lr: float = Field(default=3e-3, description="Learning rate of the head.")
    val_fraction: float = Field(
        default=0.2, description="Share of the weak labels held out for early stopping."
    )
    lora_rank: int = Field(
        default=0,
        description="0: the trained blocks fine-tune their weights; r > 0: LoRA adapters of rank "
        "r on their linear layers train instead (the ``lora`` extra: peft).",
    )
    lora_alpha: int | None = Field(
        default=None, description="LoRA scale numerator (null: 2 x lora_rank)."
    )
    logconf_weight: float = Field(default=0.5, description="Auxiliary confidence loss weight.")
    warmup: float = Field(default=0.1, description="Share of steps the logconf weight ramps in.")
    supervisor_fraction: float = Field(
        default=0.5, description="Share of the training pairs held out for weak models to fit on."
    )
    oracle_k: int = Field(default=0, description="Training examples given their true label.")
    filter_fraction: float = Field(default=0.1, description="Share the ``filter`` method drops.")
    n_boot: int = Field(default=1000, description="Bootstrap draws of the intervals.")
    backend: str = Field(
        default="inprocess",
        description="Where the students train: ``inprocess`` (one after the other) or ``ray`` "
        "(in parallel, one torch thread each; the results are the same).",
    )
    workers: int | None = Field(
        default=None, description="``ray``: CPUs of the local instance (null: this machine's)."
    )
    min_gap: float = Field(
        default=0.02, description="Refuse PGR when ceiling - weak is below this or within noise."
    )

    def check(self, ctx: CheckContext, where: str) -> W2SConfig:
        from mindscope.w2s.experiment import METHODS

        c = self.model_copy(deep=True)
        if not c.supervisors:
            raise c.fail(ctx, f"{where}.supervisors", "give at least one supervisor")
        names = [s.label for s in c.supervisors]
        if len(set(names)) != len(names):
            raise c.fail(ctx, f"{where}.supervisors", f"names must differ, got {names}")
        for i, s in enumerate(c.supervisors):
            w = f"{where}.supervisors[{i}]"
            if s.kind in ("random", "slice", "spurious") and not 0 < s.accuracy <= 1:
                raise c.fail(ctx, f"{w}.accuracy", f"must be in (0, 1], got {s.accuracy}")
            if s.kind in ("slice", "spurious") and not s.where:
                raise c.fail(ctx, f"{w}.where", f"a {s.kind} supervisor needs a predicate")
            if s.kind == "weak-model":
                if not s.model:
                    raise c.fail(ctx, f"{w}.model", "a weak-model supervisor needs a model")
                s.model = check_model_name(s.model, f"{w}.model", ctx.base, ctx.prefix)
        for i, m in enumerate(c.methods):
            if m not in METHODS:
                raise c.fail(
                    ctx,
                    f"{where}.methods[{i}]",
                    f"unknown method {m!r} (known: {', '.join(METHODS)})",
                )
        if not c.methods:
            raise c.fail(ctx, f"{where}.methods", "give at least one method")
        for key, low in (
            ("seeds", 1),
            ("steps", 1),
            ("batch_size", 1),
            ("n_boot", 0),
            ("oracle_k", 0),
            ("lora_rank", 0),
        ):
            if getattr(c, key) < low:
                raise c.fail(ctx, f"{where}.{key}", f"must be >= {low}, got {getattr(c, key)}")
        from mindscope.parallel import BACKENDS

        if c.backend not in BACKENDS:
            raise c.fail(
                ctx, f"{where}.backend", f"unknown {c.backend!r} (known: {', '.join(BACKENDS)})"
            )
        if c.workers is not None and c.workers < 1:
            raise c.fail(ctx, f"{where}.workers", f"must be >= 1, got {c.workers}")
        if c.lora_rank and c.train_layers == 0:
            raise c.fail(ctx, f"{where}.lora_rank", "needs trained blocks (train_layers >= 1)")
        if c.lora_rank:
            from mindscope.extras import require

            require("lora", what="w2s.lora_rank")
        for key in ("val_fraction", "supervisor_fraction", "filter_fraction"):
            if not 0 <= getattr(c, key) < 1:
                raise c.fail(ctx, f"{where}.{key}", f"must be in [0, 1), got {getattr(c, key)}")
        return c


def make_supervisor(
    spec: SupervisorSpec, device: str | None = None, store: str | None = None
) -> Any:
    """The :class:`~mindscope.w2s.supervisors.Supervisor` a spec describes (a weak model is
    loaded here)."""
    from mindscope import w2s

    if spec.kind == "truth":
        return w2s.TruthSupervisor()
    if spec.kind == "field":
        return w2s.FieldSupervisor(spec.field)
    if spec.kind in ("random", "slice", "spurious"):
        return w2s.RuleSupervisor(spec.accuracy, spec.kind, spec.where)  # type: ignore[arg-type]
    from mindscope.models import load_model

    assert spec.model is not None
    weak = load_model(spec.model, revision=spec.revision, device=device)
    return w2s.WeakModelSupervisor(weak, layer=spec.layer, read=spec.read, store=store)


def _load(cfg: W2SConfig, seed: int) -> Any:
    from mindscope.analyses.elicit import ElicitConfig, load_pairs

    e = ElicitConfig(
        dataset=cfg.dataset,
        n=cfg.n,
        n_test=cfg.n_test,
        template=cfg.template,
        test_fraction=cfg.test_fraction,
        label_field=cfg.label_field,
        text_field=cfg.text_field,
        group_field=cfg.group_field,
        split_field=cfg.split_field,
    )
    return load_pairs(e, seed)


def _write_parquet(df: Any, path: Any) -> None:
    from mindscope.io import atomic_path

    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


@register(
    "w2s",
    W2SConfig,
    help="weak-to-strong: students on weak labels; PGR, weak-right/wrong slices, misfit vs gain",
    order=80,
)
def w2s_stage(
    h: Any,
    cfg: W2SConfig,
    *,
    seed: int = 0,
    progress: bool = False,
    state: dict[str, Any] | None = None,
    store: str | None = None,
) -> StageOutput:
    """Run :func:`mindscope.w2s.run_w2s` with the strong model ``h``; returns rows and
    artefacts (``w2s-predictions.parquet``, ``w2s-summary.json``), nothing written."""
    from mindscope.data import dataset_hash
    from mindscope.data.datasets import dataset_name
    from mindscope.results import to_frame
    from mindscope.w2s import run_w2s

    ds = _load(cfg, seed)
    name = dataset_name(cfg.dataset)
    sups = {s.label: make_supervisor(s, device=str(h.device), store=store) for s in cfg.supervisors}
    res = run_w2s(
        h,
        ds.train,
        ds.test,
        sups,
        methods=cfg.methods,
        seeds=[seed + i for i in range(cfg.seeds)],
        layer=cfg.layer,
        truth_field=cfg.truth_field,
        supervisor_fraction=cfg.supervisor_fraction,
        oracle_k=cfg.oracle_k,
        filter_fraction=cfg.filter_fraction,
        student={
            "train_layers": cfg.train_layers,
            "steps": cfg.steps,
            "batch_size": cfg.batch_size,
            "lr": cfg.lr,
            "head_lr": cfg.head_lr,
            "val_fraction": cfg.val_fraction,
            "lora_rank": cfg.lora_rank,
            "lora_alpha": cfg.lora_alpha,
            "logconf_weight": cfg.logconf_weight,
            "warmup": cfg.warmup,
        },
        n_boot=cfg.n_boot,
        min_gap=cfg.min_gap,
        dataset=name,
        store=store,
        progress=progress,
        backend=cfg.backend,
        workers=cfg.workers,
    )
    summary = {
        f"{s}/{m}/{k}": {
            "pgr": _num(p.value),
            "ci": [_num(p.ci_low), _num(p.ci_high)],
            "weak": p.weak,
            "student": p.student,
            "ceiling": p.ceiling,
            "refused": p.refused,
        }
        for (s, m, k), p in res.pgr.items()
    }
    for msg in res.info["refused"].values():
        log.warning("w2s: PGR refused: %s", msg)
    artefacts: dict[str, Artefact] = {
        "w2s-predictions.parquet": functools.partial(_write_parquet, res.predictions),
        "w2s-summary.json": json_artefact(summary),
    }
    data = {f"w2s-train:{name}": dataset_hash(ds.train), f"w2s-test:{name}": dataset_hash(ds.test)}
    return StageOutput(to_frame(res.rows), artefacts, data, info={**res.info, "split": ds.method})


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else float(v)
