"""Score the estimators against exact ground truth: repeated estimates, coverage, IS loss.

    rows = validate(h, dist, targets, methods=("naive", "itgis", "mhis"), budget=2**14, repeats=20)

For every target token (arg-max bad output), method and repeat it runs one estimate and compares
it with the exact probability (:func:`mindscope.audit.rare.exact_table`). Rows (metric per
target and method, ``dataset`` = the distribution's description):

All metrics are prefixed ``rare_``:

- ``probability`` per repeat (``split = "repeat<k>"``, the interval in ``ci_low``/``ci_high``,
  the truth in ``extra``);
- ``truth``, ``within_2x`` (fraction of repeats within a factor 2 of the truth),
  ``coverage`` (fraction of intervals covering it), ``flag_rate`` (fraction of estimates
  flagged as untrusted, :attr:`RareEstimate.trusted`), ``coverage_or_flagged`` and
  ``within_2x_or_flagged`` (a flagged estimate is not counted as a miss), ``zero_hits``
  (fraction of repeats that saw no bad output), ``is_loss`` (mean Itakura-Saito loss
  ``truth/est - log(truth/est) - 1``, with estimates floored at ``1e-12`` as a zero estimate
  has infinite loss), ``median_ratio``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from mindscope.audit.rare.bad import BadOutput
from mindscope.audit.rare.distributions import InputDistribution, zipf_unigram
from mindscope.audit.rare.estimate import (
    SEARCHED,
    SEARCHED_OPTIONS,
    RareEstimate,
    estimate_rare,
)
from mindscope.audit.rare.exact import ExactTable
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = [
    "validate",
    "itakura_saito",
    "pick_targets",
    "zipf_unigram",
    "SEARCHED",
    "SEARCHED_OPTIONS",
    "method_options",
]

_FLOOR = 1e-12


def itakura_saito(truth: float, estimate: float) -> float:
    """Itakura-Saito loss of ``estimate`` against ``truth`` (estimates floored at 1e-12)."""
    r = truth / max(estimate, _FLOOR)
    return r - math.log(r) - 1.0


def pick_targets(table: ExactTable, decades: Sequence[float]) -> list[tuple[int, float]]:
    """For each probability in ``decades``, the token whose exact arg-max mass is nearest to it
    on a log scale (among tokens with positive mass): ``[(token, exact), ...]``."""
    mass = table.argmax_mass
    pos = (mass > 0).nonzero().squeeze(-1).tolist()
    out: list[tuple[int, float]] = []
    for d in decades:
        best = min(pos, key=lambda t: abs(math.log(float(mass[t]) / d)))
        if best not in [t for t, _ in out]:
            out.append((best, float(mass[best])))
    return out


def method_options(
    method: str, options: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """``(estimate_rare method, its options)`` for a :func:`validate` method name: ``ce+search``
    is ``ce`` with :data:`SEARCHED_OPTIONS` (``options`` override them); naive takes none."""
    opts = dict(options or {}) if method != "naive" else {}
    if method == SEARCHED:
        return "ce", {**SEARCHED_OPTIONS, **opts}
    return method, opts


def _one_estimate(
    task: tuple[int, str, int],
    *,
    h: Any,
    dist: InputDistribution,
    budget: int,
    confidence: float,
    options: dict[str, Any],
) -> RareEstimate:
    """One repeat: ``task = (target token, method, repeat k)``, seeded by ``k``."""
    tok, method, k = task
    base, opts = method_options(method, options)
    return estimate_rare(
        h,
        dist,
        BadOutput((tok,)),
        method=base,
        budget=budget,
        seed=k,
        confidence=confidence,
        **opts,
    )


_REL = 1e-9
"""Relative tolerance of the coverage test (float64 summation order)."""


def _summary(ests: Sequence[RareEstimate], truth: float) -> dict[str, float]:
    repeats = len(ests)
    ratios = [max(e.estimate, _FLOOR) / truth for e in ests]
    # relative slack of 1e-9: an interval whose low end is the exact mass of every bad input
    # (all found) sums the same float64 masses as the exact table in another order
    covers = [e.ci_low <= truth * (1 + _REL) and truth <= e.ci_high * (1 + _REL) for e in ests]
    within = [0.5 <= q <= 2.0 for q in ratios]
    return {
        "truth": truth,
        "within_2x": sum(within) / repeats,
        "coverage": sum(covers) / repeats,
        "flag_rate": sum(not e.trusted for e in ests) / repeats,
        "coverage_or_flagged": sum(c or not e.trusted for c, e in zip(covers, ests, strict=True))
        / repeats,
        "within_2x_or_flagged": sum(w or not e.trusted for w, e in zip(within, ests, strict=True))
        / repeats,
        "zero_hits": sum(e.n_hits == 0 for e in ests) / repeats,
        "is_loss": statistics.fmean(itakura_saito(truth, e.estimate) for e in ests),
        "median_ratio": statistics.median(ratios),
    }


def validate(
    h: Any,
    dist: InputDistribution,
    targets: Sequence[tuple[int, float]],
    *,
    methods: Sequence[str] = ("naive", "itgis", "mhis", "ce", SEARCHED),
    budget: int = 2**14,
    repeats: int = 20,
    confidence: float = 0.9,
    dataset: str = "",
    progress: Callable[[str], None] | None = None,
    backend: str = "inprocess",
    **options: Any,
) -> list[Row]:
    """Run ``repeats`` estimates per target and method; see the module docstring.

    Every (target, method, repeat) is one task of :func:`mindscope.parallel.run_tasks`, seeded
    by its repeat index: ``backend="ray"`` runs them in parallel (the model handle and the
    distribution are sent once) and returns the same rows. ``progress`` gets one line per
    target and method as its last repeat finishes.
    """
    from mindscope.parallel import run_tasks

    if repeats < 1:
        raise MindscopeError(f"repeats must be at least 1, got {repeats}")
    truths = dict(targets)
    groups = [(tok, method) for tok, _ in targets for method in methods]
    tasks = [(tok, method, k) for tok, method in groups for k in range(repeats)]
    left = {g: repeats for g in groups}
    done: dict[tuple[int, str, int], RareEstimate] = {}

    def report(i: int, est: RareEstimate) -> None:
        tok, method, k = tasks[i]
        done[tasks[i]] = est
        left[tok, method] -= 1
        if progress and not left[tok, method]:
            summary = _summary([done[tok, method, j] for j in range(repeats)], truths[tok])
            progress(
                f"token {tok} (exact {truths[tok]:.3g}) {method}: "
                + ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if k != "truth")
            )

    shared = dict(h=h, dist=dist, budget=budget, confidence=confidence, options=options)
    ests = run_tasks(_one_estimate, tasks, backend=backend, shared=shared, progress=report)
    by_task = dict(zip(tasks, ests, strict=True))
    rows: list[Row] = []
    for tok, method in groups:
        truth = truths[tok]
        group = [by_task[tok, method, k] for k in range(repeats)]
        for k, r in enumerate(group):
            rows += [
                dataclasses.replace(row, method=method)
                for row in r.rows(
                    model=h.name,
                    dataset=dataset,
                    split=f"repeat{k}",
                    extra={"token": tok, "truth": truth, "budget": budget},
                )
                if row.metric == "rare_probability"
            ]
        extra = {"token": tok, "truth": truth, "budget": budget, "repeats": repeats}
        for metric, value in _summary(group, truth).items():
            rows.append(
                Row(
                    metric=f"rare_{metric}",
                    value=value,
                    method=method,
                    model=h.name,
                    dataset=dataset,
                    split="summary",
                    n=repeats * budget,
                    _extra=extra,
                )
            )
    return rows
