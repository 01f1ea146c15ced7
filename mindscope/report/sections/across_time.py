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

__all__ = ["time_figures", "across_time_rows", "RANDOM_INIT"]


RANDOM_INIT = "random-init"
"""Revision of a sweep's random-init control (step ``-1``): drawn as a dashed line."""


def across_time_rows(df: pd.DataFrame) -> pd.DataFrame:
    """:func:`mindscope.report.rows.time_rows` plus the random-init control's rows of the same
    metrics (``revision == "random-init"``)."""
    rows = time_rows(df)
    if rows.empty or "revision" not in df:
        return rows
    ctrl = df[(df["revision"].astype(str) == RANDOM_INIT) & df["metric"].isin(rows["metric"])]
    return pd.concat([rows, ctrl])


def _per_step(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, method, model, dataset, split, step): the best layer's row on that
    split (:func:`mindscope.metrics_catalog.best`), or the mean over layers for a metric with
    no better side. Splits are never mixed."""
    keys = ["metric", "method", "model", "dataset", "split", "step"]
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
    is_ctrl = (
        rows["revision"].astype(str) == RANDOM_INIT
        if "revision" in rows
        else pd.Series(False, index=rows.index)
    )
    ctrl_all, rows = rows[is_ctrl], rows[~is_ctrl]
    if rows.empty:
        return []
    series = ["method", "model", "dataset", "split"]
    figs = []
    for metric, grp in _per_step(rows).groupby("metric", sort=True):
        fig = plot.go().Figure()
        ctrl = ctrl_all[ctrl_all["metric"] == metric]
        ctrl_best = _per_step(ctrl.assign(step=-1)) if len(ctrl) else ctrl
        for name, g in plot.series_groups(grp, series):
            colour = plot.method_colour(str(g["method"].iloc[0]))
            plot.line_with_band(fig, plot.mean_by(g, "step"), "step", name, colour)
            key = tuple(g[c].iloc[0] for c in series)
            match = ctrl_best[[tuple(r) == key for r in ctrl_best[series].itertuples(index=False)]]
            if len(match):
                v = float(match["value"].mean())
                fig.add_trace(
                    plot.go().Scatter(
                        x=[g["step"].min(), g["step"].max()],
                        y=[v, v],
                        mode="lines",
                        line={"dash": "dash", "color": colour, "width": 1},
                        name=f"{name}: random-init control",
                    )
                )
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
    caption="Metrics measured at several training checkpoints, against the training step: "
    "one line per method and split (splits never mixed), at the best layer of each step on "
    "that split (optimistic); a dashed line in the same colour is the random-init control "
    "(a model of the same config with fresh weights), where the sweep ran one.",
    select=across_time_rows,
    render=time_figures,
)
