"""Across time, layer by layer: the figures of a checkpoint sweep, from results rows only.

* :func:`metric_vs_step_figures` - a metric against the training step, one line per layer, steps
  on a log axis (``step + 1``, so ``step0`` shows); duplicate checkpoints (rows whose ``extra``
  has ``duplicate_of``) are drawn as crosses; a random-init control (``revision ==
  "random-init"``) as a dashed grey line (its mean over layers).
* :func:`heatmap_figures` - layer x step heatmaps of one metric and method (reporter AUROC, lens
  KL); duplicate checkpoints are marked ``*`` on the step axis.
* :func:`sweep_figures` - both, for the rows a sweep writes (lens KL of the tuned and logit
  lenses; reporter AUROC on each evaluation split, Bob's labels included).

Rows: :func:`mindscope.report.rows.time_rows` (metrics measured at two or more steps).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import time_rows
from mindscope.results import extra_values

__all__ = ["metric_vs_step_figures", "heatmap_figures", "sweep_figures", "duplicate_of"]


def duplicate_of(rows: pd.DataFrame) -> pd.Series:
    """Per row: the revision it duplicates (``extra.duplicate_of``), or ``""``."""
    return extra_values(rows, "duplicate_of", "").astype(str).astype("string")


def _select(rows: pd.DataFrame, metric: str, method: str, split: str | None) -> pd.DataFrame:
    sel = (rows["metric"] == metric) & (rows["method"] == method) & (rows["layer"] >= 0)
    if split is not None:
        sel &= rows["split"] == split
    return rows[sel]


def _title(metric: str, method: str, split: str | None) -> str:
    return f"{metric} of {method}" + (f" on {split}" if split else "")


def metric_vs_step_figures(
    rows: pd.DataFrame, metric: str, method: str, split: str | None = None
) -> list[Any]:
    """One figure: ``metric`` of ``method`` against ``step + 1`` (log axis), a line per layer."""
    sub = _select(rows, metric, method, split)
    steps = sub[sub["step"] >= 0]
    if steps["step"].nunique() < 2:
        return []
    go = plot.go()
    fig = go.Figure()
    dup = duplicate_of(steps)
    for i, (layer, g) in enumerate(steps.groupby("layer", sort=True)):
        g = (
            g.assign(dup=dup.loc[g.index])
            .groupby("step", sort=True)
            .agg(value=("value", "mean"), dup=("dup", "first"))
        )
        color = plot.series_colour(i)
        x = [s + 1 for s in g.index]
        fig.add_trace(
            go.Scatter(
                x=x,
                y=g["value"],
                mode="lines+markers",
                name=f"layer {layer}",
                line={"color": color, "width": 2},
                marker={
                    "size": [10 if d else 6 for d in g["dup"]],
                    "symbol": ["x" if d else "circle" for d in g["dup"]],
                },
                customdata=[[s, d or ""] for s, d in zip(g.index, g["dup"])],
                hovertemplate=f"layer {layer}<br>step %{{customdata[0]}}: %{{y:.4g}}"
                "<br>%{customdata[1]}<extra></extra>",
            )
        )
    ctrl = sub[sub["revision"] == "random-init"]
    if not ctrl.empty:
        v = float(ctrl["value"].mean())
        fig.add_hline(
            y=v, line_dash="dash", line_color="#888",
            annotation_text=f"random-init control {v:.3g}", annotation_position="top left",
        )  # fmt: skip
    n_dup = int((dup != "").sum())
    note = f" ({n_dup} duplicate-checkpoint points: x)" if n_dup else ""
    title = f"{_title(metric, method, split)} across training{note}"
    plot.layout(fig, title, "training step + 1 (log scale)", metric)
    fig.update_xaxes(type="log")
    return [fig]


def heatmap_figures(
    rows: pd.DataFrame, metric: str, method: str, split: str | None = None
) -> list[Any]:
    """One layer x step heatmap of ``metric`` of ``method``; duplicate steps marked ``*``."""
    sub = _select(rows, metric, method, split)
    sub = sub[sub["step"] >= 0]
    if sub["step"].nunique() < 2:
        return []
    go = plot.go()
    dup = duplicate_of(sub)
    grid = sub.pivot_table(index="layer", columns="step", values="value", aggfunc="mean")
    dups = {int(s) for s, d in zip(sub["step"], dup) if d}
    labels = [f"{s}*" if int(s) in dups else str(s) for s in grid.columns]
    z = [[None if (isinstance(v, float) and math.isnan(v)) else v for v in r] for r in grid.values]
    fig = go.Figure(
        go.Heatmap(
            z=z,
            x=labels,
            y=[str(k) for k in grid.index],
            colorscale="Viridis",
            colorbar={"title": metric},
            hovertemplate="step %{x}<br>layer %{y}<br>" + metric + " %{z:.4g}<extra></extra>",
        )
    )
    note = " (* = identical weights to an earlier step)" if dups else ""
    title = f"{_title(metric, method, split)}: layer x step{note}"
    plot.layout(fig, title, "training step", "layer")
    fig.update_xaxes(type="category")
    return [fig]


def sweep_figures(rows: pd.DataFrame) -> list[Any]:
    """The across-time figures of a sweep's rows (lens KL; reporter AUROC per split)."""
    if rows.empty:
        return []
    figs: list[Any] = []
    methods = set(rows["method"].dropna())
    for method in ("tuned_lens", "logit_lens"):
        if method in methods:
            figs += metric_vs_step_figures(rows, "kl", method)
    if "tuned_lens" in methods:
        figs += heatmap_figures(rows, "kl", "tuned_lens")
    reporters = sorted(
        m for m in methods
        if ":" not in m and m not in ("tuned_lens", "logit_lens", "lm")
        and ((rows["method"] == m) & rows["metric"].isin(["auroc", "auroc_bob"])).any()
    )  # fmt: skip
    for method in reporters[:2]:
        for metric in ("auroc", "auroc_bob"):
            for split in sorted(set(rows.loc[rows["metric"] == metric, "split"].dropna())):
                if split.endswith("hard"):
                    figs += heatmap_figures(rows, metric, method, split)
                    figs += metric_vs_step_figures(rows, metric, method, split)
    return figs


register(
    "time-layers",
    order=70,
    title="Across time, layer by layer",
    caption="Each layer's metric against the training step (log scale) and layer x step "
    "heatmaps of lens KL and reporter AUROC on the hard splits; checkpoints with the same "
    "weights as an earlier one are marked (x, *), a random-init control is the dashed line.",
    select=time_rows,
    render=sweep_figures,
)
