"""One weak-to-strong experiment: supervisors x methods x seeds, scored against the truth.

:func:`run_w2s` takes a strong model, contrast pairs with a known truth (train and test) and
any supervisors, and returns results rows (:class:`mindscope.results.Row`) and every test
credence. The training pairs are split once (seeded by ``split_seed``) into a part on which
learning supervisors fit on the truth (Burns et al.'s weak model trained on ground truth) and
the part every supervisor labels for the students; the test pairs are labelled by every
supervisor too, so the weak supervisor, the student and the ceiling (the same student fitted on
the truth) are scored on one split.

Methods: ``ce`` and ``logconf`` (a fine-tuned student with that loss), ``reporter`` (a
logistic reporter on the frozen strong activations), ``relabel`` and ``filter`` (a ``ce``
student on weak labels relabelled or filtered by a cross-fitted reporter on the strong model's
activations). ``oracle_k`` gives ``k`` random training examples their true label first.
"""

from __future__ import annotations

import difflib
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError
from mindscope.results import Row
from mindscope.w2s import interventions as iv
from mindscope.w2s import metrics as mt
from mindscope.w2s.students import FineTunedStudent, ReporterStudent
from mindscope.w2s.supervisors import Supervisor, check_labels, truth_of

__all__ = ["METHODS", "FT_METHODS", "W2SResult", "run_w2s", "paired_comparison"]

METHODS = ("ce", "logconf", "reporter", "relabel", "filter")
"""Student methods."""
FT_METHODS = ("ce", "logconf", "relabel", "filter")
"""Methods that fine-tune the strong model (their ceiling: a ``ce`` student on the truth)."""


@dataclass
class W2SResult:
    """What :func:`run_w2s` measured."""

    rows: list[Row]
    """Per seed and aggregated over seeds (``extra.seed == "all"``)."""
    predictions: pd.DataFrame
    """One row per (supervisor, method, seed, test example): truth, weak, student, ceiling."""
    pgr: dict[tuple[str, str, str], mt.PGR] = field(default_factory=dict)
    """``(supervisor, method, metric) -> PGR``."""
    info: dict[str, Any] = field(default_factory=dict)


def _check_methods(methods: Sequence[str]) -> None:
    if not methods:
        raise MindscopeError("give at least one student method")
    for m in methods:
        if m not in METHODS:
            close = difflib.get_close_matches(m, METHODS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise MindscopeError(
                f"unknown student method {m!r} (known: {', '.join(METHODS)}){hint}"
            )


def _boot_mean(v: np.ndarray, n_boot: int, seed: int) -> tuple[float, float, float]:
    v = np.asarray(v, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return math.nan, math.nan, math.nan
    if v.size == 1 or n_boot == 0:
        return float(v.mean()), math.nan, math.nan
    b = v[np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))].mean(1)
    lo, hi = np.percentile(b, [2.5, 97.5])
    return float(v.mean()), float(lo), float(hi)


def run_w2s(
    h: Any,
    train: Sequence[ContrastPair],
    test: Sequence[ContrastPair],
    supervisors: Mapping[str, Supervisor],
    *,
    methods: Sequence[str] = ("ce", "logconf", "reporter"),
    seeds: int | Sequence[int] = 5,
    layer: int = -1,
    truth_field: str | None = None,
    supervisor_fraction: float = 0.5,
    oracle_k: int = 0,
    filter_fraction: float = 0.1,
    student: Mapping[str, Any] | None = None,
    n_boot: int = 1000,
    min_gap: float = 0.02,
    split_seed: int = 0,
    dataset: str = "",
    store: str | None = None,
    progress: bool = False,
    backend: str = "inprocess",
    workers: int | None = None,
) -> W2SResult:
    """Run students of every method on every supervisor's labels, for every seed.

    Args:
        h: the strong model (:class:`mindscope.models.ModelHandle`); never modified.
        train, test: contrast pairs; their truth is ``meta[truth_field]`` (None: ``meta.truth``
            when every pair has it, else the pair's label). The truth of ``train`` reaches only
            learning supervisors (on their held-out part), rule supervisors (to place errors),
            ceilings and ``oracle_k``; the students see the supervisor's labels.
        supervisors: name -> :class:`~mindscope.w2s.supervisors.Supervisor`.
        methods: student methods (:data:`METHODS`).
        seeds: number of seeds (0..n-1) or the seeds themselves.
        layer: layer the students read (-1: after the last block).
        supervisor_fraction: share of ``train`` held out for supervisors to fit on.
        oracle_k: training examples given their true label (Mallen & Belrose 2024).
        filter_fraction: share of examples the ``filter`` method drops.
        student: keyword arguments of :class:`~mindscope.w2s.students.FineTunedStudent`.
        n_boot: bootstrap draws of the intervals.
        min_gap: PGR is refused when ``ceiling - weak`` is below this (or within noise).
        split_seed: seed of the supervisor/student split of ``train``.
        dataset: dataset name for the rows.
        store: activation store root.
        backend: where the students train (:func:`mindscope.parallel.run_tasks`):
            ``inprocess`` (one after the other) or ``ray`` (``workers`` processes, one torch
            thread each); the results are the same.
        workers: CPUs of the local Ray instance (default: this machine's).

    Returns:
        :class:`W2SResult`.
    """
    from tqdm.auto import tqdm

    from mindscope.parallel import check_backend

    _check_methods(methods)
    check_backend(backend)
    if workers is not None and workers < 1:
        raise MindscopeError(f"workers must be at least 1, got {workers}")
    if not supervisors:
        raise MindscopeError("give at least one supervisor")
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise MindscopeError("give at least one seed")
    if not 0 <= supervisor_fraction < 1:
        raise MindscopeError(f"supervisor_fraction must be in [0, 1), got {supervisor_fraction}")
    train, test = list(train), list(test)
    y_all, y_te = truth_of(train, truth_field), truth_of(test, truth_field)
    if len(np.unique(y_te)) < 2:
        raise MindscopeError("the test pairs' truth holds a single class; nothing to score")
    perm = np.random.default_rng(split_seed).permutation(len(train))
    n_sup = int(round(supervisor_fraction * len(train)))
    sup_idx, st_idx = np.sort(perm[:n_sup]), np.sort(perm[n_sup:])
    sup_pairs, st_pairs = [train[i] for i in sup_idx], [train[i] for i in st_idx]
    y_sup, y_st = y_all[sup_idx], y_all[st_idx]
    check_labels(y_st, len(st_pairs), "the student split's truth")
    if not 0 <= oracle_k <= len(st_pairs):
        raise MindscopeError(f"oracle_k must be in [0, {len(st_pairs)}], got {oracle_k}")
    k_layer = h.n_layers if layer < 0 else layer
    if not 0 <= k_layer <= h.n_layers:
        raise MindscopeError(f"layer {layer} does not exist; {h.name} has layers 0..{h.n_layers}")
    st_kwargs = dict(student or {})
    st_kwargs.pop("seed", None)
    st_kwargs.pop("loss", None)
    st_kwargs["layer"] = k_layer
    FineTunedStudent(**st_kwargs)  # checks the arguments before any work

    for name, sup in supervisors.items():
        if not isinstance(sup, Supervisor):
            raise MindscopeError(f"supervisor {name!r} does not follow the Supervisor protocol")
        sup.fit(sup_pairs, y_sup)

    x_st: Any = None
    x_te: Any = None
    if any(m in ("reporter", "relabel", "filter") for m in methods):
        from mindscope.activations import extract

        def acts(pairs: list[ContrastPair]) -> Any:
            a = extract(
                h,
                [p.prompt for p in pairs],
                layers=[k_layer],
                position="last",
                store=store,
                progress=False,
            )
            return a[k_layer].float()  # [n, d]

        x_st, x_te = acts(st_pairs), acts(test)

    ft_needed = any(m in FT_METHODS for m in methods)
    enc_st = enc_te = None
    if ft_needed:  # every fine-tuned student shares one run of the frozen blocks
        probe = FineTunedStudent(**st_kwargs)
        enc_st, enc_te = probe.encode(h, st_pairs), probe.encode(h, test)
    preds: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}  # test, train
    weak: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    ceil: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = {}
    best_steps: dict[tuple[str, str, int], int] = {}
    keys: list[tuple[str, str, int]] = []  # (supervisor or "", method, seed)
    tasks: list[dict[str, Any]] = []
    for seed in seed_list:
        if ft_needed:
            keys.append(("", "ft", seed))
            tasks.append({"method": "ce", "labels": y_st, "seed": seed})
        if "reporter" in methods:
            keys.append(("", "reporter", seed))
            tasks.append({"method": "reporter", "labels": y_st, "seed": seed})
        for name, sup in supervisors.items():
            w_tr = check_labels(
                sup.label(st_pairs, y_st, split="train", seed=seed),
                len(st_pairs),
                f"supervisor {name!r}'s labels of the training split",
            )
            w_te = sup.label(test, y_te, split="test", seed=seed)
            w_te = np.asarray(w_te, dtype=np.float64)
            if w_te.shape != (len(test),):
                raise MindscopeError(
                    f"supervisor {name!r}'s test labels have shape {w_te.shape}, expected "
                    f"[{len(test)}] (one per pair)"
                )
            weak[(name, seed)] = (w_te, w_tr)
            fit_labels = w_tr
            if oracle_k:
                fit_labels, _ = iv.mix_oracle(w_tr, y_st, oracle_k, seed=seed)
            for m in methods:
                keys.append((name, m, seed))
                tasks.append({"method": m, "labels": fit_labels, "seed": seed})
    # the slowest first, so parallel workers finish together
    order = sorted(range(len(tasks)), key=lambda i: tasks[i]["method"] == "reporter")
    bar = tqdm(total=len(tasks), desc="w2s students", disable=not progress, unit="student")
    from mindscope.parallel import run_tasks

    outs = run_tasks(
        _student_task,
        [tasks[i] for i in order],
        backend=backend,
        num_cpus=workers,
        threads=1 if backend == "ray" else None,
        shared={
            "h": h,
            "enc_st": enc_st,
            "enc_te": enc_te,
            "x_st": x_st,
            "x_te": x_te,
            "student": st_kwargs,
            "filter_fraction": filter_fraction,
        },
        progress=lambda i, out: None if bar.update() else None,
    )
    task_cpu: dict[str, float] = {}
    for i, (p_te, p_tr, best, cpu) in zip(order, outs, strict=True):
        name, m, seed = keys[i]
        task_cpu[f"{name or 'ceiling'}/{m}/{seed}"] = cpu
        if not name:
            ceil[(m, seed)] = (p_te, p_tr)
            continue
        preds[(name, m, seed)] = (p_te, p_tr)
        if best is not None:
            best_steps[(name, m, seed)] = best
    bar.close()
    rows, pgrs, frames = _score(
        supervisors,
        methods,
        seed_list,
        y_te,
        y_st,
        preds,
        weak,
        ceil,
        best_steps,
        k_layer,
        dataset,
        n_boot,
        min_gap,
    )
    frames_df = pd.concat(frames, ignore_index=True)
    info = {
        "n_supervisor": len(sup_pairs),
        "n_student": len(st_pairs),
        "n_test": len(test),
        "seeds": seed_list,
        "layer": k_layer,
        "methods": list(methods),
        "supervisors": {n: getattr(s, "kind", type(s).__name__) for n, s in supervisors.items()},
        "oracle_k": oracle_k,
        "backend": backend,
        "student_cpu_s": task_cpu,
        "refused": {f"{s}/{m}/{k}": p.refused for (s, m, k), p in pgrs.items() if p.refused},
    }
    return W2SResult(rows, frames_df, pgrs, info)


def _student_task(
    task: dict[str, Any],
    *,
    h: Any,
    enc_st: Any,
    enc_te: Any,
    x_st: Any,
    x_te: Any,
    student: dict[str, Any],
    filter_fraction: float,
) -> tuple[np.ndarray, np.ndarray, int | None, float]:
    """One student: ``(test credences [n_test], training credences [n_student], best step or
    None, CPU seconds)``; ``task`` holds the method, the labels ``[n_student]`` it learns from
    and the seed."""
    import time

    t0 = time.process_time()
    m, labels, seed = task["method"], task["labels"], task["seed"]
    if m == "reporter":
        r = ReporterStudent(seed=seed).fit(x_st, labels)
        return r.predict_proba(x_te), r.predict_proba(x_st), None, time.process_time() - t0
    pairs = enc_st
    if m == "relabel":
        labels = iv.probe_relabel(x_st, labels, seed=seed)
    elif m == "filter":
        keep = iv.probe_filter(x_st, labels, fraction=filter_fraction, seed=seed)
        pairs, labels = enc_st.take(keep), labels[keep]
    loss = "logconf" if m == "logconf" else "ce"
    s = FineTunedStudent(loss=loss, seed=seed, **student).fit(h, pairs, labels)
    p_te, p_tr = s.predict_proba(enc_te), s.predict_proba(enc_st)
    return p_te, p_tr, s.best_step_, time.process_time() - t0


def _row(
    metric: str,
    value: float,
    seed: Any,
    lo: float = math.nan,
    hi: float = math.nan,
    nn: int | None = None,
    split: str = "test",
    *,
    method: str,
    layer: int,
    dataset: str,
    n: int,
    base: dict[str, Any],
    **ex: Any,
) -> Row:
    return Row(
        metric=metric,
        value=float(value),
        method=method,
        layer=layer,
        dataset=dataset,
        split=split,
        ci_low=lo,
        ci_high=hi,
        n=n if nn is None else nn,
        _extra={**base, "seed": seed, **ex},
    )


def _score(
    supervisors: Mapping[str, Supervisor],
    methods: Sequence[str],
    seeds: list[int],
    y_te: np.ndarray,
    y_st: np.ndarray,
    preds: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]],
    weak: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    ceil: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    best_steps: dict[tuple[str, str, int], int],
    layer: int,
    dataset: str,
    n_boot: int,
    min_gap: float,
) -> tuple[list[Row], dict[tuple[str, str, str], mt.PGR], list[pd.DataFrame]]:
    rows: list[Row] = []
    pgrs: dict[tuple[str, str, str], mt.PGR] = {}
    frames = []
    n = len(y_te)
    for name, sup in supervisors.items():
        kind = getattr(sup, "kind", type(sup).__name__)
        for m in methods:
            ck = "reporter" if m == "reporter" else "ft"
            base = {"supervisor": name, "kind": kind}

            row = functools.partial(_row, method=m, layer=layer, dataset=dataset, n=n, base=base)

            per_seed: dict[str, list[float]] = {}
            for seed in seeds:
                s_te, s_tr = preds[(name, m, seed)]
                w_te, w_tr = weak[(name, seed)]
                c_te, _ = ceil[(ck, seed)]
                vals: dict[str, float] = {}
                for metric, short in (("auroc", "auroc"), ("accuracy", "acc")):
                    sw, ss, sc = (float(mt.score(a, y_te, metric)) for a in (w_te, s_te, c_te))
                    vals[f"{short}_weak"], vals[f"{short}_student"], vals[f"{short}_ceiling"] = (
                        sw,
                        ss,
                        sc,
                    )
                    vals[f"pgr_{short}"] = mt.pgr(sw, ss, sc)
                sl = mt.slice_accuracy(y_te, w_te, s_te)
                vals.update({k: v for k, v in sl.items() if not k.startswith("n_")})
                mg = mt.misfit_gain(y_te, w_te, s_te)
                vals.update(
                    {"misfit": mg["misfit"], "gain": mg["gain"], "misfit_slack": mg["slack"]}
                )
                tr_sl = mt.slice_accuracy(y_st, w_tr, s_tr)
                tr_mg = mt.misfit_gain(y_st, w_tr, s_tr)
                for k, v in vals.items():
                    rows.append(row(k, v, seed))
                    per_seed.setdefault(k, []).append(v)
                for k in ("acc_weak_right", "acc_weak_wrong", "imitation"):
                    rows.append(row(k, tr_sl[k], seed, nn=len(y_st), split="train"))
                for k, v in (
                    ("misfit", tr_mg["misfit"]),
                    ("gain", tr_mg["gain"]),
                    ("misfit_slack", tr_mg["slack"]),
                ):
                    rows.append(row(k, v, seed, nn=len(y_st), split="train"))
                if (name, m, seed) in best_steps:
                    rows.append(row("best_step", best_steps[(name, m, seed)], seed))
                frames.append(
                    pd.DataFrame(
                        {
                            "supervisor": name,
                            "method": m,
                            "seed": seed,
                            "index": np.arange(n),
                            "truth": y_te,
                            "weak": w_te,
                            "student": s_te,
                            "ceiling": c_te,
                        }
                    )
                )
            for k, vs in per_seed.items():
                if k.startswith("pgr_"):
                    continue
                mean, lo, hi = _boot_mean(np.array(vs), n_boot, 0)
                rows.append(row(k, mean, "all", lo, hi))
            holds = [s >= 0 for s in per_seed["misfit_slack"]]
            rows.append(row("misfit_gain_holds", float(np.mean(holds)), "all"))
            for metric, short in (("auroc", "auroc"), ("accuracy", "acc")):
                w = np.stack([weak[(name, s)][0] for s in seeds])  # [S, n]
                st = np.stack([preds[(name, m, s)][0] for s in seeds])
                c = np.stack([ceil[(ck, s)][0] for s in seeds])
                p = mt.pgr_ci(y_te, w, st, c, metric=metric, n_boot=n_boot, min_gap=min_gap)  # type: ignore[arg-type]
                pgrs[(name, m, metric)] = p
                ex: dict[str, Any] = {"refused": p.refused} if p.refused else {}
                rows.append(
                    row(
                        f"pgr_{short}",
                        p.value,
                        "all",
                        p.ci_low,
                        p.ci_high,
                        gap_low=p.gap_low,
                        gap_high=p.gap_high,
                        n_seeds=p.n_seeds,
                        **ex,
                    )
                )
    return rows, pgrs, frames


def paired_comparison(
    result: W2SResult,
    method_a: str,
    method_b: str,
    metric: str = "auroc_student",
    supervisors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``method_a - method_b`` on ``metric`` paired over (supervisor, seed), with an exact
    paired sign-flip permutation test (:func:`mindscope.w2s.metrics.paired_sign_flip`)."""
    df = pd.DataFrame(
        [
            {**r._extra, "method": r.method, "metric": r.metric, "value": r.value, "split": r.split}
            for r in result.rows
        ]
    )
    df = df[(df.metric == metric) & (df.seed != "all") & (df.split == "test")]
    if supervisors is not None:
        df = df[df.supervisor.isin(list(supervisors))]
    a = df[df.method == method_a].set_index(["supervisor", "seed"]).value
    b = df[df.method == method_b].set_index(["supervisor", "seed"]).value
    common = a.index.intersection(b.index)
    if len(common) == 0:
        raise MindscopeError(f"no paired results of {method_a!r} and {method_b!r} on {metric}")
    diff, p = mt.paired_sign_flip(a[common].to_numpy(), b[common].to_numpy())
    wins = int((a[common].to_numpy() > b[common].to_numpy()).sum())
    return {
        "a": method_a,
        "b": method_b,
        "metric": metric,
        "mean_diff": diff,
        "p_value": p,
        "wins": wins,
        "pairs": len(common),
        "test": "two-sided exact paired sign-flip permutation test over (supervisor, seed)",
    }
