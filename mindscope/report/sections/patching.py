"""Patching heatmaps: the effect of each (layer, position) for exact and attribution
patching, with the attribution estimate's error.

Rows (written by the ``patch`` stage): ``patch_logit_diff`` / ``patch_prob`` with
``extra.site``, ``extra.position`` and ``extra.corruption``, ``method`` ``activation`` or
``attribution``; ``atp_mae`` and ``atp_corr`` per site and corruption.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["patching_rows", "patching_content"]


def patching_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the patching section (per-position rows included)."""
    metric = metric_names(df)
    return df[metric.str.startswith("patch_") | metric.isin(["atp_mae", "atp_corr"])]


def _heatmaps(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    cells = rows[rows["metric"].str.startswith("patch_")].copy()
    for key in ("site", "position", "corruption"):
        cells[key] = extra_values(cells, key)
    cells["position"] = cells["position"].fillna(extra_values(cells, "head"))  # head rows
    figs = []
    keys = ["corruption", "site"]
    for (corruption, site), g in cells.groupby(keys, sort=True, dropna=False):
        methods = sorted(g["method"].astype(str).unique())
        fig = plot.subplots(rows=1, cols=len(methods), subplot_titles=methods)
        for j, method in enumerate(methods):
            m = g[g["method"] == method]
            grid = m.pivot_table(index="layer", columns="position", values="value")
            fig.add_trace(
                go.Heatmap(
                    z=grid.to_numpy(),
                    x=[str(c) for c in grid.columns],
                    y=[str(i) for i in grid.index],
                    colorscale="RdBu",
                    zmid=0,
                    showscale=j == len(methods) - 1,
                ),
                row=1,
                col=j + 1,
            )
        xlabel = "head" if site == "head" else "position"
        fig.update_xaxes(title_text=xlabel)
        figs.append(plot.layout(fig, f"{site} ({corruption})", xlabel, "layer"))
    return figs


def patching_content(rows: pd.DataFrame) -> Content:
    """Heatmaps per (corruption, site), exact beside attribution, and the AtP error table."""
    err = rows[rows["metric"].isin(["atp_mae", "atp_corr"])].copy()
    err["site"] = extra_values(err, "site")
    err["corruption"] = extra_values(err, "corruption")
    table = (
        err.pivot_table(index=["corruption", "site"], columns="metric", values="value")
        .reset_index()
        .round(3)
        if not err.empty
        else None
    )
    return Content(tuple(_heatmaps(rows)), table=table)


register(
    "patching-maps",
    order=82,
    title="Patching: which components carry the difference",
    caption="Mean effect over prompts of writing the clean activation into the corrupted run at "
    "one (layer, position), in units of the clean-corrupted gap (1: restores the clean "
    "answer), for exact activation patching and attribution patching (gradient x difference); "
    "the table gives the attribution estimate's mean absolute error and correlation against "
    "the exact map, per site and corruption.",
    select=patching_rows,
    render=patching_content,
    positions=True,
)
