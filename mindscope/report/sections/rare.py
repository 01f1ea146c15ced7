"""Report figures for rare-event estimation and trigger search, built from results rows only.

Rows (written by :mod:`mindscope.audit.rare` and ``mindscope audit triggers``):

- ``rare_probability`` per repeat (``split = "repeat<k>"``; CI in ``ci_low``/``ci_high``;
  ``extra`` has ``truth`` and ``budget``) -> *estimate vs exact truth, per method and budget*;
- ``rare_within_2x``, ``rare_coverage`` (``split = "summary"``) -> bars per method and target;
- ``trigger_loss_curve`` (``n`` = search step, ``split`` = seed) -> *search loss over steps*;
- ``trigger_reasr``, ``trigger_token_recall`` -> bars per seed.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["rare_rows", "rare_figures"]


def rare_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the rare-event / trigger-search section."""
    metric = metric_names(df)
    return df[metric.str.startswith("rare_") | metric.str.startswith("trigger_")]


def _extra(rows: pd.DataFrame, key: str) -> pd.Series:
    return extra_values(rows, key)


def _estimate_vs_truth(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    est = rows[rows["metric"] == "rare_probability"].copy()
    est["truth"] = pd.to_numeric(_extra(est, "truth"), errors="coerce")
    est["budget"] = _extra(est, "budget")
    est = est[np.isfinite(est["truth"].to_numpy(float))]
    figs = []
    for budget, grp in est.groupby("budget", sort=True):
        fig = go.Figure()
        lo_t, hi_t = float(grp["truth"].min()), float(grp["truth"].max())
        xs = [lo_t / 2, hi_t * 2]
        fig.add_trace(go.Scatter(x=xs, y=xs, mode="lines", line={"color": "#444"}, name="exact"))
        for f, dash in ((2.0, "dot"), (0.5, "dot")):
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=[x * f for x in xs],
                    mode="lines",
                    showlegend=f == 2.0,
                    line={"color": "#999", "dash": dash},
                    name="factor 2",
                )
            )
        methods = sorted(grp["method"].astype(str).unique())
        for i, method in enumerate(methods):
            g = grp[grp["method"] == method]
            floor = 1e-12
            y = np.maximum(g["value"].to_numpy(float), floor)
            jitter = 1.0 + 0.06 * (i - (len(methods) - 1) / 2)
            fig.add_trace(
                go.Scatter(
                    x=g["truth"].to_numpy(float) * jitter,
                    y=y,
                    mode="markers",
                    name=method,
                    marker={"color": plot.method_colour(method), "size": 6, "opacity": 0.7},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": np.maximum(g["ci_high"].to_numpy(float) - y, 0),
                        "arrayminus": np.maximum(
                            y - np.maximum(g["ci_low"].to_numpy(float), floor), 0
                        ),
                        "thickness": 1,
                    },
                )
            )
        plot.layout(
            fig,
            f"Rare-event estimates vs exact probability (budget {budget} model calls; "
            "zero estimates drawn at 1e-12)",
            "exact probability",
            "estimate",
        )
        fig.update_xaxes(type="log")
        fig.update_yaxes(type="log")
        figs.append(fig)
    return figs


def _bars(rows: pd.DataFrame, metrics: tuple[str, ...], x_of: str, title: str) -> list[Any]:
    go = plot.go()
    sel = rows[rows["metric"].isin(metrics)].copy()
    if sel.empty:
        return []
    if x_of == "truth":
        sel["x"] = pd.to_numeric(_extra(sel, "truth"), errors="coerce").map(lambda t: f"{t:.2g}")
    else:
        sel["x"] = sel["split"].astype(str)
    fig = go.Figure()
    shapes = {m: s for m, s in zip(sorted(sel["metric"].unique()), ("", "/", ".", "x"))}
    for (metric, method), g in sel.groupby(["metric", "method"], sort=True):
        fig.add_trace(
            go.Bar(
                x=g["x"],
                y=g["value"],
                name=f"{metric} · {method}",
                marker={
                    "color": plot.method_colour(str(method)),
                    "pattern": {"shape": shapes.get(metric, "")},
                },
            )
        )
    plot.layout(
        fig, title, "exact probability" if x_of == "truth" else "seed", "fraction", barmode="group"
    )
    return [fig]


def _loss_curves(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    cur = rows[rows["metric"] == "trigger_loss_curve"]
    if cur.empty:
        return []
    fig = go.Figure()
    for i, (split, g) in enumerate(cur.groupby("split", sort=True)):
        g = g.sort_values("n")
        fig.add_trace(
            go.Scatter(
                x=g["n"],
                y=g["value"],
                mode="lines",
                name=str(split),
                line={"color": plot.series_colour(i)},
            )
        )
    plot.layout(
        fig, "Trigger search: loss over steps", "search step", "target cross-entropy (nats)"
    )
    return [fig]


def rare_figures(rows: pd.DataFrame) -> list[Any]:
    """Every figure of the section (empty when ``rows`` has none of its metrics)."""
    if rows.empty:
        return []
    return (
        _estimate_vs_truth(rows)
        + _bars(
            rows,
            ("rare_within_2x", "rare_coverage"),
            "truth",
            "Rare-event estimates: within 2x and interval coverage",
        )
        + _loss_curves(rows)
        + _bars(
            rows,
            ("trigger_reasr", "trigger_token_recall"),
            "seed",
            "Trigger search: REASR on held-out contexts and token recall",
        )
    )


register(
    "rare",
    order=90,
    title="Rare events and triggers",
    caption="Rare-event estimates (naive, ITGIS, MHIS, CE) against the exact probability with "
    "their intervals, and GCG trigger search: loss over steps, held-out success and recall.",
    select=rare_rows,
    render=rare_figures,
)
