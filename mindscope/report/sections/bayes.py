"""Model misspecification: an in-context learner against exact Bayesian posteriors.

Rows: the ``bayes`` stage's (:mod:`mindscope.analyses.bayes`): per context length
(``extra.k`` an int) ``mse`` of ``model``/``dmmse``/``ridge`` and ``kl_next`` of
``bayes``/``truth``; averages (``extra.k == "all"``) ``ridge_share`` (with ``extra.n_tasks``)
and ``belief_r2`` per layer; ``belief_point`` (``extra.true``, ``extra.probe``: a belief over
``H`` outcomes, exact and read by a reporter) for the belief simplex.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_of, extra_values

__all__ = ["BAYES_METRICS", "bayes_rows", "bayes_figures", "simplex_xy"]

BAYES_METRICS = frozenset(
    {
        "mse",
        "dist",
        "toward_truth",
        "ridge_share",
        "kl_next",
        "belief_r2",
        "belief_r2_best",
        "belief_point",
    }
)
"""Metric names the section reads (all from the ``bayes`` stage)."""


def bayes_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the ``bayes`` stage."""
    if df.empty:
        return df
    stage = extra_values(df, "stage", "")
    return df[metric_names(df).isin(BAYES_METRICS) & (stage == "bayes")]


def _with_k(rows: pd.DataFrame) -> pd.DataFrame:
    k = extra_values(rows, "k", None)
    per = rows[[isinstance(v, int) for v in k]].copy()
    per["k"] = [int(v) for v in k[per.index]]
    return per


def _curves(
    per: pd.DataFrame, metric: str, methods: tuple[str, ...], title: str, y: str
) -> list[Any]:
    figs = []
    sub = plot.one_step(per[(per["metric"] == metric) & per["method"].isin(methods)])
    for ds, grp in sub.groupby("dataset", sort=False):
        fig = plot.go().Figure()
        for i, (name, g) in enumerate(plot.series_groups(grp, ["method", "model"])):
            method = str(g["method"].iloc[0])
            colour = plot.method_colour(method) if method != "model" else plot.series_colour(i)
            plot.line_with_band(fig, plot.mean_by(g, "k"), "k", name, colour)
        figs.append(plot.layout(fig, f"{title}: {ds}", "context length k", y))
    return figs


def _transition(rows: pd.DataFrame) -> list[Any]:
    share = rows[rows["metric"] == "ridge_share"].copy()
    if share.empty:
        return []
    share["n_tasks"] = pd.to_numeric(extra_values(share, "n_tasks", None), errors="coerce")
    share = plot.one_step(share.dropna(subset=["n_tasks"]))
    if share["n_tasks"].nunique() < 2:
        return []
    fig = plot.go().Figure()
    for i, (ds, g) in enumerate(share.groupby("dataset", sort=False)):
        plot.line_with_band(
            fig, plot.mean_by(g, "n_tasks"), "n_tasks", str(ds), plot.series_colour(i)
        )
    fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"})
    plot.layout(fig, "Task-diversity transition", "pretraining tasks M", "ridge share")
    fig.update_xaxes(type="log")
    return [fig]


def simplex_xy(p: list[list[float]]) -> tuple[list[float], list[float]]:
    """Beliefs ``[n, H]`` drawn in the plane: vertex ``h`` of a regular ``H``-gon is outcome
    ``h`` (for ``H = 3`` the usual triangle); a point is its belief-weighted vertex average, so
    a probe's reading off the simplex lands where its coordinates put it."""
    h = len(p[0]) if p else 0
    if h == 2:  # a segment
        vx, vy = [-1.0, 1.0], [0.0, 0.0]
    else:
        ang = [math.pi / 2 + 2 * math.pi * i / max(h, 1) for i in range(h)]
        vx, vy = [math.cos(a) for a in ang], [math.sin(a) for a in ang]
    xs = [sum(w * v for w, v in zip(b, vx)) for b in p]
    ys = [sum(w * v for w, v in zip(b, vy)) for b in p]
    return xs, ys


def _mix_colour(b: list[float]) -> str:
    """The belief's colour: its weights over the outcomes' palette colours."""
    total = sum(max(v, 0.0) for v in b) or 1.0
    rgb = [0.0, 0.0, 0.0]
    for i, v in enumerate(b):
        c = plot.series_colour(i)
        for j in range(3):
            rgb[j] += max(v, 0.0) / total * int(c[1 + 2 * j : 3 + 2 * j], 16)
    return "rgb({},{},{})".format(*(min(255, round(x)) for x in rgb))


def _simplex(rows: pd.DataFrame) -> list[Any]:
    pts = rows[rows["metric"] == "belief_point"]
    figs = []
    for ds, grp in pts.groupby("dataset", sort=False):
        extra = [extra_of(e) for e in grp["extra"]]
        true = [list(map(float, e["true"])) for e in extra]
        probe = [list(map(float, e["probe"])) for e in extra]
        if not true or len({len(t) for t in true + probe}) != 1 or len(true[0]) < 2:
            continue
        h = len(true[0])
        axis = str(extra[0].get("axis", "outcome"))
        layer = int(grp["layer"].iloc[0])
        fig = plot.subplots(
            rows=1,
            cols=2,
            subplot_titles=("exact belief", f"read by the layer-{layer} reporters"),
        )
        corners = [[1.0 if i == j else 0.0 for i in range(h)] for j in range(h)]
        cx, cy = simplex_xy(corners + corners[:1])
        colours = [_mix_colour(t) for t in true]
        for col, data in ((1, true), (2, probe)):
            xs, ys = simplex_xy(data)
            fig.add_trace(
                plot.go().Scatter(
                    x=cx,
                    y=cy,
                    mode="lines+text",
                    line={"color": "#999"},
                    showlegend=False,
                    text=[f"{axis} {i}" for i in range(h)] + [""],
                    textposition="top center",
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                plot.go().Scatter(
                    x=xs,
                    y=ys,
                    mode="markers",
                    marker={"size": 5, "color": colours},
                    showlegend=False,
                    name="exact" if col == 1 else "probe",
                ),
                row=1,
                col=col,
            )
        plot.layout(fig, f"Belief simplex over the {axis}s: {ds}", "", "")
        fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
        fig.update_yaxes(
            showticklabels=False, showgrid=False, zeroline=False, scaleanchor="x", scaleratio=1
        )
        figs.append(fig)
    return figs


def bayes_figures(rows: pd.DataFrame) -> Content:
    """Error vs context length (model, dMMSE, ridge), the transition over M, next-token KL to
    the Bayes predictive across tokens, belief-state R^2 by layer; a table of the averages."""
    per = _with_k(rows)
    figs: list[Any] = []
    figs += _curves(per, "mse", ("model", "dmmse", "ridge"), "Error vs context length", "MSE")
    figs += _transition(rows)
    figs += _curves(per, "kl_next", ("bayes", "truth"), "Next-token KL", "KL (nats)")
    r2 = rows[rows["metric"] == "belief_r2"]
    if not r2.empty:
        figs += plot.by_layer(r2, "Belief-state probe R^2 by layer", "R^2")
    figs += _simplex(rows)
    k = extra_values(rows, "k", None)
    avg = rows[
        (k == "all")
        & rows["metric"].isin(["mse", "dist", "ridge_share", "kl_next", "toward_truth"])
    ]
    table = avg[["model", "step", "dataset", "method", "metric", "value", "ci_low", "ci_high", "n"]]
    return Content(figures=tuple(figs), table=table.reset_index(drop=True) if len(table) else None)


register(
    "bayes",
    order=75,
    title="Model misspecification: in-context learner vs exact posteriors",
    caption="The in-context learner's prediction at each context length k against the exact "
    "posteriors of its training prior: regression error of the model, of dMMSE (the posterior "
    "mean over its M pretraining tasks) and of ridge (lambda = s^2, the posterior under "
    "w ~ N(0, I)); the ridge share dist(dMMSE) / (dist(dMMSE) + dist(ridge)) against M (0: the "
    "model sits on dMMSE, 1: on ridge); for a hidden-Markov learner the next-token KL to the "
    "training mixture's Bayes predictive and to the true generating process, and the R^2 of "
    "ridge reporters from each layer to the exact belief state, with the belief simplex (each "
    "point one held-out position, exact and as the best layer's reporters read it, coloured by "
    "the exact belief). Conditions off the training prior (dataset names: scaled, rotated, "
    "cap, heldout) are the misspecified tests.",
    select=bayes_rows,
    render=bayes_figures,
    positions=True,
)
