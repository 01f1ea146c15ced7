"""Interpreting across time: each metric against the training step.

Rows: :func:`mindscope.report.rows.time_rows` (any metric measured at two or more training
steps, the sandbox's behaviour metrics excepted).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.metrics_catalog import best, better_direction, display_name
from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import time_rows

__all__ = ["time_figures"]


def _per_step(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, method, model, dataset, step): the best layer's row
    (:func:`mindscope.metrics_catalog.best`), or the mean over layers for a metric with no
    better side."""
    keys = ["metric", "method", "model", "dataset", "step"]
    out = []
    for _, grp in rows.groupby(keys, dropna=False, sort=True):
        if better_direction(str(grp["metric"].iloc[0])) == "none":
            mean = grp.iloc[0].copy()
            for col in ("value", "ci_low", "ci_high"):
                mean[col] = grp[col].mean()
            out.append(mean)
        else:
            out.append(best(grp))
    return pd.DataFrame(out)


def time_figures(rows: pd.DataFrame) -> list[Any]:
    """Each metric against the training step (best layer per step), one figure per metric."""
    rows = rows.dropna(subset=["value"])
    if rows.empty:
        return []
    figs = []
    for metric, grp in _per_step(rows).groupby("metric", sort=True):
        fig = plot.go().Figure()
        for name, g in plot.series_groups(grp, ["method", "model", "dataset"]):
            colour = plot.method_colour(str(g["method"].iloc[0]))
            plot.line_with_band(fig, plot.mean_by(g, "step"), "step", name, colour)
        layered = (rows.loc[rows["metric"] == metric, "layer"] >= 0).any()
        none = better_direction(str(metric)) == "none"
        note = (" (mean over layers)" if none else " (best layer at each step)") if layered else ""
        plot.layout(
            fig, f"{metric} across training{note}", "training step", display_name(str(metric))
        )
        if grp["step"].max() > 100 * max(1, grp.loc[grp["step"] > 0, "step"].min()):
            fig.update_xaxes(type="log")
        figs.append(fig)
    return figs


register(
    "time",
    order=60,
    title="Interpreting across time",
    caption="Metrics measured at several training checkpoints, against the training step.",
    select=time_rows,
    render=time_figures,
)
