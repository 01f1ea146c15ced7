"""Interpreting across depth: lens KL by layer.

Rows: ``metric`` in :data:`LENS_KL_METRICS`, ``layer >= 0``; ``method`` names the lens
(``logit_lens``, ``tuned_lens``, ...); one row per layer with its CI.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import metric_names

__all__ = ["LENS_KL_METRICS", "lens_kl_rows", "lens_kl_figures"]

LENS_KL_METRICS = frozenset({"kl", "kl_div", "kl_divergence", "kl_to_final", "lens_kl"})
"""Metric names of a lens's KL to the final layer."""


def lens_kl_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the lens KL-by-layer section."""
    return df[metric_names(df).isin(LENS_KL_METRICS) & (df["layer"] >= 0)]


def lens_kl_figures(rows: pd.DataFrame) -> list[Any]:
    """KL(final || lens) by layer, one line per lens (logit vs tuned), with CI bands; a log
    axis when the values span more than two decades."""
    fig = plot.by_layer(rows, "Lens KL divergence to the final layer", "KL (nats)")
    if fig and (rows["value"] > 0).all() and rows["value"].max() / rows["value"].min() > 100:
        fig[0].update_yaxes(type="log")
    return fig


register(
    "lens-kl",
    order=10,
    title="Interpreting across depth: lens KL by layer",
    caption="KL divergence from the model's final-layer prediction to each layer's lens "
    "prediction (lower is better). The tuned lens should sit below the logit lens at every "
    "layer; shaded bands are 95% confidence intervals.",
    select=lens_kl_rows,
    render=lens_kl_figures,
)
