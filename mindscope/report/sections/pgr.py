"""Fraction of the gap recovered (Mallen et al. 2023; weak-to-strong PGR).

Rows: ``metric`` in :data:`PGR_METRICS`, per ``method`` and ``layer`` (or one per method).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import metric_names

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


def pgr_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the fraction-of-gap-recovered section."""
    return df[metric_names(df).isin(PGR_METRICS)]


def pgr_figures(rows: pd.DataFrame) -> list[Any]:
    """Fraction of the easy-to-hard gap recovered, by layer per method (bars if not per layer)."""
    if rows.empty:
        return []
    per_layer = rows[rows["layer"] >= 0]
    if per_layer["layer"].nunique() >= 2:
        figs = plot.by_layer(per_layer, "Fraction of gap recovered by layer", "fraction recovered")
    else:
        figs = plot.bars(rows, "Fraction of gap recovered", "fraction recovered")
    for fig in figs:
        fig.add_hline(y=1.0, line={"dash": "dot", "color": "#888"})
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
    "the model's untruthful answers. The best-layer value picks the layer on Bob-hard "
    "itself (an oracle choice). A weak-to-strong 'pgr' row is the same ratio with the weak "
    "and strong models' accuracies in place of the two AUROCs.",
    select=pgr_rows,
    render=pgr_figures,
)
