"""Evaluation of reporters into rows of the results table.

Three entry points, all on arrays (no model needed):

* :func:`evaluate` - fit every method on a train set (all layers at once), score a test set:
  AUROC with a bootstrap 95% interval, accuracy, calibrated accuracy (median threshold), ECE.
* :func:`transfer_matrix` - the same for every (train dataset, eval dataset) pair.
* :func:`quirky_report` - Mallen et al. (2023): train on Alice-easy, evaluate on Bob-hard
  against the truth and against Bob's labels, and the fraction of the AUROC gap recovered.

Sanity baselines are on by default: the ``random`` direction is always added to the methods,
and when the layer list contains 0 (the embedding output) its rows carry ``"baseline":
"embedding"`` in ``extra``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._inputs import as_layered
from mindscope.probes.base import Reporter
from mindscope.probes.metrics import (
    accuracy,
    bootstrap_auroc_ci,
    calibrated_accuracy,
    expected_calibration_error,
    roc_auc,
)
from mindscope.probes.registry import METHODS, REPORTER_METHODS
from mindscope.results import Row

__all__ = [
    "METHODS",
    "make_reporter",
    "fit_reporters",
    "score_rows",
    "evaluate",
    "transfer_matrix",
    "quirky_report",
    "fraction_gap_recovered",
    "random_null",
    "null_summary",
    "NULL_DIRECTIONS",
]

NULL_DIRECTIONS = 200
"""Random directions in :func:`random_null`'s null distribution (its 95th percentile is then
the 190th of 200 values)."""

DEFAULT_METHODS = REPORTER_METHODS


def make_reporter(method: str, **params: Any) -> Reporter:
    """A fresh reporter from its short name (``lr``, ``diffmean``, ``lda``, ``ccs``, ``crc``,
    ``random``) and hyper-parameters."""
    try:
        klass = METHODS[method]
    except KeyError:
        raise MindscopeError(
            f"unknown method {method!r}; choose from {', '.join(METHODS)}"
        ) from None
    return klass(**params)


def _methods(methods: Iterable[str], baselines: bool) -> list[str]:
    out = list(dict.fromkeys(m.strip() for m in methods if m.strip()))
    if baselines and "random" not in out:
        out.append("random")
    for m in out:
        if m not in METHODS:
            raise MindscopeError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if not out:
        raise MindscopeError("no methods given")
    return out


def _layered_pairs(x: Any, name: str) -> Tensor:
    t, layout = as_layered(x, name=name)
    return t


def _labels(y: Any, n: int, name: str) -> Tensor:
    yt = torch.as_tensor(y).double()
    if yt.ndim != 1 or yt.shape[0] != n:
        raise MindscopeError(f"{name} must have shape [{n}], got {tuple(yt.shape)}")
    return yt


def fit_reporters(
    x: Any,
    y: Any,
    methods: Iterable[str] = DEFAULT_METHODS,
    *,
    params: Mapping[str, Mapping[str, Any]] | None = None,
    unsupervised_sign: bool = False,
    baselines: bool = True,
) -> dict[str, Reporter]:
    """Fit one reporter per method on all layers at once.

    Args:
        x: training activations ``[layers, n, 2, d]`` (or ``[layers, n, d]``).
        y: ``[n]`` 0/1 labels (truth of each statement).
        methods: short method names.
        params: per-method hyper-parameters, e.g. ``{"ccs": {"n_restarts": 5}}``.
        unsupervised_sign: fit CCS/CRC/random without labels (sign left ambiguous; evaluated
            with ``max(auroc, 1 - auroc)``); by default labels fix their sign and scale.
        baselines: add the ``random`` baseline.

    Returns:
        ``{method: fitted reporter}``.
    """
    xt = _layered_pairs(x, "x_train")
    yt = _labels(y, xt.shape[1], "y_train")
    out: dict[str, Reporter] = {}
    for m in _methods(methods, baselines):
        rep = make_reporter(m, **dict((params or {}).get(m, {})))
        use_y = None if (unsupervised_sign and not rep.supervised) else yt
        out[m] = rep.fit(xt, use_y)
    return out


def score_rows(
    reporters: Mapping[str, Reporter],
    x: Any,
    y: Any,
    *,
    layers: Sequence[int] | None = None,
    model: str = "",
    dataset: str = "",
    split: str = "",
    extra: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    label_name: str = "",
) -> list[Row]:
    """Score fitted reporters on ``x [layers, n, 2, d]`` against ``y [n]``: results rows.

    Metrics (per layer and method): ``auroc`` (bootstrap 95% CI), ``acc``, ``cal_acc``
    (median threshold), ``ece`` (10 bins). Unsupervised fits (``labels_used_`` False) report
    ``max(auroc, 1 - auroc)`` and the matching flipped accuracies (``extra.sign = "max"``).
    ``label_name`` suffixes the metric names (e.g. ``auroc_bob``).
    """
    xt = _layered_pairs(x, "x")
    yt = _labels(y, xt.shape[1], "y")
    n_layers = xt.shape[0]
    layer_ids = list(range(n_layers)) if layers is None else [int(i) for i in layers]
    if len(layer_ids) != n_layers:
        raise MindscopeError(f"got {len(layer_ids)} layer ids for {n_layers} layers")
    suffix = f"_{label_name}" if label_name else ""
    rows: list[Row] = []
    for method, rep in reporters.items():
        p = rep.predict_proba(xt).double()
        if p.ndim == 1:
            p = p.unsqueeze(0)
        auc, lo, hi = bootstrap_auroc_ci(p, yt, n_boot=n_boot, seed=seed)  # [L] each
        acc = accuracy(p, yt)
        cal = calibrated_accuracy(p, yt)
        ece = expected_calibration_error(p, yt)
        sign = "labels"
        if not rep.labels_used_:
            flip = auc < 0.5
            auc = torch.where(flip, 1 - auc, auc)
            lo, hi = torch.where(flip, 1 - hi, lo), torch.where(flip, 1 - lo, hi)
            acc = torch.where(flip, 1 - acc, acc)
            cal = torch.where(flip, 1 - cal, cal)
            ece = torch.where(flip, expected_calibration_error(1 - p, yt), ece)
            sign = "max"
        for li, layer in enumerate(layer_ids):
            ex = {"sign": sign, **dict(extra or {})}
            if layer == 0:
                ex["baseline"] = "embedding"
            common: dict[str, Any] = dict(
                model=model,
                dataset=dataset,
                split=split,
                layer=layer,
                method=method,
                n=int(yt.shape[0]),
                _extra=ex,
            )
            rows.append(
                Row(
                    metric=f"auroc{suffix}",
                    value=float(auc[li]),
                    ci_low=float(lo[li]),
                    ci_high=float(hi[li]),
                    **common,
                )
            )
            for name, val in (("acc", acc), ("cal_acc", cal), ("ece", ece)):
                rows.append(Row(metric=f"{name}{suffix}", value=float(val[li]), **common))
    return rows


def evaluate(
    x_train: Any,
    y_train: Any,
    x_test: Any,
    y_test: Any,
    *,
    methods: Iterable[str] = DEFAULT_METHODS,
    layers: Sequence[int] | None = None,
    model: str = "",
    dataset: str = "",
    split: str = "test",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    unsupervised_sign: bool = False,
    baselines: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[Row]:
    """Fit each method on the train set (all layers at once) and score the test set.

    Args:
        x_train: ``[layers, n, 2, d]`` contrast-pair activations (or ``[layers, n, d]``).
        y_train: ``[n]`` 0/1 truth labels.
        x_test: ``[layers, m, 2, d]``.
        y_test: ``[m]``.
        layers: the layer index of each slice of the layer axis (default ``0..layers-1``;
            0 is the embedding output).
        model, dataset, split: copied into the rows.

    Returns:
        results rows (see :func:`score_rows`); use :func:`mindscope.results.to_frame`.
    """
    reps = fit_reporters(
        x_train,
        y_train,
        methods,
        params=params,
        unsupervised_sign=unsupervised_sign,
        baselines=baselines,
    )
    return score_rows(
        reps,
        x_test,
        y_test,
        layers=layers,
        model=model,
        dataset=dataset,
        split=split,
        n_boot=n_boot,
        seed=seed,
    )


def transfer_matrix(
    datasets: Mapping[str, tuple[Any, Any]],
    *,
    train: Sequence[str] | None = None,
    eval_on: Sequence[str] | None = None,
    methods: Iterable[str] = DEFAULT_METHODS,
    layers: Sequence[int] | None = None,
    model: str = "",
    params: Mapping[str, Mapping[str, Any]] | None = None,
    unsupervised_sign: bool = False,
    baselines: bool = True,
    n_boot: int = 200,
    seed: int = 0,
) -> list[Row]:
    """Fit on each train dataset, score on every dataset: a train x eval matrix of rows.

    Args:
        datasets: ``{name: (x [layers, n, 2, d], y [n])}``; use distinct names for train and
            test splits of the same dataset (e.g. ``"facts/train"``, ``"facts/test"``).
        train: names to train on (default: all).
        eval_on: names to evaluate on (default: all).

    Returns:
        rows with ``dataset``/``split`` = eval name and ``extra = {"train": ..., "eval": ...}``.
    """
    rows: list[Row] = []
    for tname in train if train is not None else list(datasets):
        if tname not in datasets:
            raise MindscopeError(f"unknown train dataset {tname!r}")
        xtr, ytr = datasets[tname]
        reps = fit_reporters(
            xtr,
            ytr,
            methods,
            params=params,
            unsupervised_sign=unsupervised_sign,
            baselines=baselines,
        )
        for ename in eval_on if eval_on is not None else list(datasets):
            if ename not in datasets:
                raise MindscopeError(f"unknown eval dataset {ename!r}")
            xev, yev = datasets[ename]
            rows += score_rows(
                reps,
                xev,
                yev,
                layers=layers,
                model=model,
                dataset=ename,
                split=ename,
                extra={"train": tname, "eval": ename},
                n_boot=n_boot,
                seed=seed,
            )
    return rows


def random_null(
    x_fit: Any,
    y_fit: Any,
    x_eval: Any,
    y_eval: Any,
    *,
    n_directions: int = NULL_DIRECTIONS,
    seed: int = 0,
) -> Tensor:
    """The null distribution of a reporter's AUROC at one layer: ``[n_directions]`` AUROCs
    against ``y_eval`` of as many seeded random directions (:class:`RandomReporter`, seeds
    ``seed * n_directions + k``), each with its sign and scale fitted on ``(x_fit, y_fit)`` as
    the ``random`` baseline's are.

    Args:
        x_fit: ``[n, 2, d]`` contrast pairs (or ``[n, d]`` texts) of one layer.
        y_fit: ``[n]`` 0/1 labels that fix each direction's sign.
        x_eval: ``[m, 2, d]`` (or ``[m, d]``) the examples scored.
        y_eval: ``[m]`` 0/1 labels scored against.
    """
    from mindscope.probes.random_baseline import RandomReporter

    if n_directions < 1:
        raise MindscopeError(f"n_directions must be at least 1, got {n_directions}")
    y = torch.as_tensor(y_eval)
    out = torch.empty(n_directions, dtype=torch.float64)
    for k in range(n_directions):
        rep = RandomReporter(seed=seed * n_directions + k).fit(x_fit, y_fit)
        out[k] = roc_auc(rep.predict_proba(x_eval), y)
    return out


def null_summary(value: float, null: Tensor) -> tuple[float, float]:
    """``(p95, p)``: the 95th percentile of ``null`` ``[k]`` and the one-sided empirical
    p-value of ``value`` against it, ``(1 + #{null >= value}) / (k + 1)`` (the smallest
    possible is ``1 / (k + 1)``: the value beat every random direction)."""
    null = null[torch.isfinite(null)].double()
    if null.numel() == 0 or not math.isfinite(value):
        return math.nan, math.nan
    p95 = float(torch.quantile(null, 0.95))
    p = (1 + int((null >= value).sum())) / (null.numel() + 1)
    return p95, p


def fraction_gap_recovered(
    probe_auroc_bob: float, lm_auroc_bob: float, lm_auroc_alice: float
) -> float:
    """Fraction of the truthful-vs-untruthful AUROC gap a probe recovers (Mallen et al. 2023).

    All AUROCs are measured against the truth on the same (hard) questions:
    ``(probe on Bob - LM output on Bob) / (LM output on Alice - LM output on Bob)``.
    1 means the probe reads the truth from Bob's contexts as well as the model answers in
    Alice's contexts; 0 means it does no better than the model's own (untruthful) answers.
    NaN when the gap is not positive (the model is not quirky on these questions).
    """
    gap = lm_auroc_alice - lm_auroc_bob
    if not gap > 0:
        return math.nan
    return (probe_auroc_bob - lm_auroc_bob) / gap


def _column(meta: Any, key: str, n: int) -> list[Any]:
    """A column of ``meta`` (list of dicts, dict of lists, or DataFrame)."""
    if hasattr(meta, "columns"):
        if key not in meta.columns:
            raise MindscopeError(f"meta lacks column {key!r}")
        col = list(meta[key])
    elif isinstance(meta, Mapping):
        if key not in meta:
            raise MindscopeError(f"meta lacks key {key!r}")
        col = list(meta[key])
    else:
        col = []
        for i, m in enumerate(meta):
            if key not in m:
                raise MindscopeError(f"meta[{i}] lacks key {key!r}")
            col.append(m[key])
    if len(col) != n:
        raise MindscopeError(f"meta has {len(col)} rows for {n} examples")
    return col


def quirky_report(
    x: Any,
    meta: Any,
    *,
    lm_logodds: Any = None,
    methods: Iterable[str] = DEFAULT_METHODS,
    layers: Sequence[int] | None = None,
    model: str = "",
    dataset: str = "quirky",
    train: tuple[str, str] = ("alice", "easy"),
    test: tuple[str, str] = ("bob", "hard"),
    reference: tuple[str, str] = ("alice", "hard"),
    params: Mapping[str, Mapping[str, Any]] | None = None,
    n_boot: int = 200,
    seed: int = 0,
) -> list[Row]:
    """The quirky-model report of Mallen et al. (2023) on a mixed Alice/Bob dataset.

    Reporters are fitted on ``train`` (persona, difficulty) = Alice-easy with Alice's labels
    (the truth), then scored on ``test`` = Bob-hard against the truth (``auroc``, ``acc``, ...)
    and against Bob's labels (``auroc_bob``, ...), restricted to... all Bob-hard examples.
    With the model's own log-odds of " True" vs " False" (``lm_logodds``), rows for
    ``method="lm"`` give the model's AUROC on Bob-hard (vs truth and vs Bob) and on
    Alice-hard (vs truth), and ``gap_recovered`` rows (per layer and method) give
    :func:`fraction_gap_recovered`. ``gap_recovered_best`` (layer -1) uses each method's best
    layer by Bob-hard truth AUROC (an oracle choice, flagged ``selection: "oracle"``).

    Args:
        x: ``[layers, n, 2, d]`` activations of every example.
        meta: per-example ``persona``, ``difficulty``, ``truth`` (0/1), ``bob_label`` (0/1);
            list of dicts, dict of lists or DataFrame.
        lm_logodds: ``[n]`` the model's log-odds that side 1 is its answer, or None.

    Returns:
        results rows.
    """
    xt = _layered_pairs(x, "x")
    n = xt.shape[1]
    persona = [str(p).lower() for p in _column(meta, "persona", n)]
    difficulty = [str(d).lower() for d in _column(meta, "difficulty", n)]
    truth = torch.tensor([int(v) for v in _column(meta, "truth", n)], dtype=torch.float64)
    bob = torch.tensor([int(v) for v in _column(meta, "bob_label", n)], dtype=torch.float64)

    def mask(sel: tuple[str, str]) -> Tensor:
        m = torch.tensor([p == sel[0] and d == sel[1] for p, d in zip(persona, difficulty)])
        if int(m.sum()) < 4:
            raise MindscopeError(f"quirky report: only {int(m.sum())} examples for {sel}")
        return m

    tr, te = mask(train), mask(test)
    reps = fit_reporters(xt[:, tr], truth[tr], methods, params=params)
    name = lambda sel: f"{sel[0]}-{sel[1]}"  # noqa: E731
    ex = {"train": name(train), "eval": name(test)}
    rows = score_rows(
        reps,
        xt[:, te],
        truth[te],
        layers=layers,
        model=model,
        dataset=dataset,
        split=name(test),
        extra={**ex, "labels": "truth"},
        n_boot=n_boot,
        seed=seed,
    )
    rows += score_rows(
        reps,
        xt[:, te],
        bob[te],
        layers=layers,
        model=model,
        dataset=dataset,
        split=name(test),
        extra={**ex, "labels": "bob"},
        n_boot=n_boot,
        seed=seed,
        label_name="bob",
    )
    if lm_logodds is None:
        return rows
    lo = torch.as_tensor(lm_logodds).double()
    if lo.shape != (n,):
        raise MindscopeError(f"lm_logodds must have shape [{n}], got {tuple(lo.shape)}")
    ref = mask(reference)
    lm_bob = float(roc_auc(lo[te], truth[te]))
    lm_bob_vs_bob = float(roc_auc(lo[te], bob[te]))
    lm_alice = float(roc_auc(lo[ref], truth[ref]))
    for metric, val, split, labels in (
        ("auroc", lm_bob, name(test), "truth"),
        ("auroc_bob", lm_bob_vs_bob, name(test), "bob"),
        ("auroc", lm_alice, name(reference), "truth"),
    ):
        rows.append(
            Row(
                metric=metric,
                value=val,
                method="lm",
                model=model,
                dataset=dataset,
                split=split,
                n=int((te if split == name(test) else ref).sum()),
                _extra={"labels": labels, "source": "model log-odds"},
            )
        )
    by_method: dict[str, list[tuple[float, int, float]]] = {}
    for r in rows:
        if r.metric == "auroc" and r.method in reps and r.split == name(test):
            gap = fraction_gap_recovered(r.value, lm_bob, lm_alice)
            by_method.setdefault(r.method, []).append((r.value, r.layer, gap))
    gap_rows = []
    for method, vals in by_method.items():
        for _auc, layer, gap in vals:
            gap_rows.append(
                Row(
                    metric="gap_recovered",
                    value=gap,
                    method=method,
                    layer=layer,
                    model=model,
                    dataset=dataset,
                    split=name(test),
                    n=int(te.sum()),
                    _extra={**ex, "lm_auroc_bob": lm_bob, "lm_auroc_alice": lm_alice},
                )
            )
        auc, layer, gap = max(vals, key=lambda v: v[0])
        gap_rows.append(
            Row(
                metric="gap_recovered_best",
                value=gap,
                method=method,
                layer=-1,
                model=model,
                dataset=dataset,
                split=name(test),
                n=int(te.sum()),
                _extra={**ex, "selection": "oracle", "best_layer": layer, "auroc": auc},
            )
        )
    return rows + gap_rows
