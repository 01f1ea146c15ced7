"""Score the estimators against exact ground truth: repeated estimates, coverage, IS loss.

    rows = validate(h, dist, targets, methods=("naive", "itgis", "mhis"), budget=2**14, repeats=20)

For every target token (arg-max bad output), method and repeat it runs one estimate and compares
it with the exact probability (:func:`mindscope.audit.rare.exact_table`). Rows (metric per
target and method, ``dataset`` = the distribution's description):

All metrics are prefixed ``rare_``:

- ``probability`` per repeat (``split = "repeat<k>"``, the interval in ``ci_low``/``ci_high``,
  the truth in ``extra``);
- ``truth``, ``within_2x`` (fraction of repeats within a factor 2 of the truth),
  ``coverage`` (fraction of intervals covering it), ``zero_hits`` (fraction of repeats that saw
  no bad output), ``is_loss`` (mean Itakura-Saito loss ``truth/est - log(truth/est) - 1``, with
  estimates floored at ``1e-12`` as a zero estimate has infinite loss), ``median_ratio``.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from mindscope.audit.rare.bad import BadOutput
from mindscope.audit.rare.distributions import InputDistribution
from mindscope.audit.rare.estimate import RareEstimate, estimate_rare
from mindscope.audit.rare.exact import ExactTable
from mindscope.results import Row

__all__ = ["validate", "itakura_saito", "pick_targets", "zipf_unigram", "SEARCHED"]

SEARCHED = "ce+search"
"""Method name in :func:`validate` for CE started from :func:`search_inputs` (20% of the budget;
``search=`` in the options changes it)."""

_FLOOR = 1e-12


def itakura_saito(truth: float, estimate: float) -> float:
    """Itakura-Saito loss of ``estimate`` against ``truth`` (estimates floored at 1e-12)."""
    r = truth / max(estimate, _FLOOR)
    return r - math.log(r) - 1.0


def zipf_unigram(
    tokens: Sequence[int], n_positions: int, vocab_size: int, *, seed: int = 0, **kw: Any
) -> InputDistribution:
    """Unigram distribution over ``tokens`` with weights ``1/rank`` in a seeded random order."""
    import torch

    perm = torch.randperm(len(tokens), generator=torch.Generator().manual_seed(seed)).tolist()
    table = {int(tokens[j]): 1.0 / (rank + 1) for rank, j in enumerate(perm)}
    return InputDistribution.unigram(table, n_positions, vocab_size, **kw)


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
    **options: Any,
) -> list[Row]:
    """Run ``repeats`` estimates per target and method; see the module docstring."""
    rows: list[Row] = []
    for tok, truth in targets:
        bad = BadOutput((tok,))
        for method in methods:
            ests: list[RareEstimate] = []
            base, opts = method, dict(options if method != "naive" else {})
            if method == SEARCHED:
                base, opts = "ce", {**opts, "search": opts.get("search", 0.2)}
            for k in range(repeats):
                r = estimate_rare(
                    h,
                    dist,
                    bad,
                    method=base,
                    budget=budget,
                    seed=k,
                    confidence=confidence,
                    **opts,
                )
                ests.append(r)
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
            ratios = [max(e.estimate, _FLOOR) / truth for e in ests]
            summary = {
                "truth": truth,
                "within_2x": sum(0.5 <= q <= 2.0 for q in ratios) / repeats,
                "coverage": sum(e.ci_low <= truth <= e.ci_high for e in ests) / repeats,
                "zero_hits": sum(e.n_hits == 0 for e in ests) / repeats,
                "is_loss": statistics.fmean(itakura_saito(truth, e.estimate) for e in ests),
                "median_ratio": statistics.median(ratios),
            }
            extra = {"token": tok, "truth": truth, "budget": budget, "repeats": repeats}
            for metric, value in summary.items():
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
            if progress:
                progress(
                    f"token {tok} (exact {truth:.3g}) {method}: "
                    + ", ".join(f"{k} {v:.3g}" for k, v in summary.items() if k != "truth")
                )
    return rows
