"""Eliciting latent knowledge: reporter AUROC by layer.

Rows: ``metric`` in :data:`AUROC_METRICS` with no ``train``/``eval`` in ``extra`` (those are
transfer cells), ``layer >= 0``; ``method`` names the reporter.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import is_transfer_cell, metric_names

__all__ = ["AUROC_METRICS", "auroc_rows", "auroc_figures"]

AUROC_METRICS = frozenset({"auroc", "auc"})
"""Metric names of a reporter's AUROC against the truth."""


def auroc_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the reporter-AUROC-by-layer section (transfer cells excluded)."""
    return df[metric_names(df).isin(AUROC_METRICS) & ~is_transfer_cell(df) & (df["layer"] >= 0)]


def auroc_figures(rows: pd.DataFrame) -> list[Any]:
    """Reporter AUROC by layer, one line per method, with CI bands and the 0.5 chance line."""
    figs = plot.by_layer(rows, "Reporter AUROC by layer", "AUROC")
    for fig in figs:
        fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"}, annotation_text="chance")
    return figs


register(
    "reporters",
    order=30,
    title="Eliciting latent knowledge: reporter AUROC by layer",
    caption="How well each reporter (probe) separates true from false statements at each "
    "layer, scored against the truth on the split named in the legend; 0.5 is chance and the "
    "grey 'random' line is a random-direction probe (the baseline any reporter must beat). "
    "Bands are 95% bootstrap confidence intervals. Colours are fixed per method in every "
    "figure.",
    select=auroc_rows,
    render=auroc_figures,
)
