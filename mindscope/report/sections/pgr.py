"""Fraction of the gap recovered (Mallen et al. 2023; weak-to-strong PGR).

Rows: ``metric`` in :data:`PGR_METRICS`, per ``method`` and ``layer`` (or one per method).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import final_step, metric_names
from mindscope.results import extras

__all__ = ["PGR_METRICS", "pgr_rows", "pgr_figures"]

PGR_METRICS = frozenset(
    {
        "pgr",
        "fraction_gap_recovered",
        "gap_recovered",
        "gap_recovered_best",
        "fraction_of_gap_recovered",
    }
)
"""Metric names of a fraction of gap recovered."""


FLOOR_METRIC = "gap_recovered_selected"
"""Rows whose ``extra`` carries the floors: ``chance`` (a constant probe's fraction) and
``null_p95`` (the 95th percentile of random directions at the layer chosen on validation)."""


def pgr_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the fraction-of-gap-recovered section (a sweep: its final checkpoint)."""
    df = final_step(df)
    return df[metric_names(df).isin(PGR_METRICS | {FLOOR_METRIC})]


def pgr_figures(rows: pd.DataFrame) -> list[Any]:
    """Fraction of the easy-to-hard gap recovered, by layer per method (bars if not per layer),
    with the floors: 1 (the model's answers for Alice), a constant probe's value and the
    random-direction null's 95th percentile at each method's selected layer."""
    if rows.empty:
        return []
    floors = rows[metric_names(rows) == FLOOR_METRIC]
    rows = rows[metric_names(rows) != FLOOR_METRIC]
    if rows.empty:
        return []
    per_layer = rows[rows["layer"] >= 0]
    if per_layer["layer"].nunique() >= 2:
        figs = plot.by_layer(per_layer, "Fraction of gap recovered by layer", "fraction recovered")
    else:
        figs = plot.bars(rows, "Fraction of gap recovered", "fraction recovered")
    ex = extras(floors)
    chance = [float(e["chance"]) for e in ex if e.get("chance") is not None]
    for fig in figs:
        fig.add_hline(y=1.0, line={"dash": "dot", "color": "#888"})
        if chance and math.isfinite(chance[0]):
            fig.add_hline(
                y=chance[0],
                line={"dash": "dash", "color": "#444"},
                annotation_text=f"constant probe (chance) {chance[0]:.2f}",
            )
        pts = [
            (int(r.layer), float(e["null_p95"]), str(r.method))
            for r, e in zip(floors.itertuples(index=False), ex)
            if e.get("null_p95") is not None and math.isfinite(float(e["null_p95"]))
        ]
        if pts and per_layer["layer"].nunique() >= 2:
            fig.add_trace(
                plot.go().Scatter(
                    x=[p[0] for p in pts],
                    y=[p[1] for p in pts],
                    mode="markers",
                    marker={"symbol": "x", "size": 11, "color": "#444"},
                    name="random-direction null, 95th pct (selected layer)",
                    hovertext=[p[2] for p in pts],
                )
            )
    return figs


register(
    "pgr",
    order=50,
    title="Fraction of gap recovered",
    caption="Fraction of the AUROC gap recovered (Mallen et al. 2023; the definition of "
    "docs/elicit.md), all AUROCs against the truth on hard questions: (AUROC of the probe "
    "on Bob-hard - AUROC of the model's own answers on Bob-hard) / (AUROC of the model's "
    "answers on Alice-hard - AUROC of its answers on Bob-hard). 1: the probe reads the "
    "truth in Bob's contexts as well as the model answers for Alice; 0: no better than "
    "the model's untruthful answers. A probe with no information does not score 0: the "
    "dashed line is a constant probe (AUROC 0.5) and the crosses the 95th percentile of 200 "
    "random directions at the layer chosen on validation data. The best-layer value picks "
    "the layer on Bob-hard itself (an oracle choice). A weak-to-strong 'pgr' row is the same "
    "ratio with the weak "
    "and strong models' accuracies in place of the two AUROCs.",
    select=pgr_rows,
    render=pgr_figures,
)
