"""Model misspecification: an in-context learner against exact Bayesian posteriors.

Rows: the ``bayes`` stage's (:mod:`mindscope.analyses.bayes`): per context length
(``extra.k`` an int) ``mse`` of ``model``/``dmmse``/``ridge`` and ``kl_next`` of
``bayes``/``truth``; averages (``extra.k == "all"``) ``ridge_share`` (with ``extra.n_tasks``)
and ``belief_r2`` per layer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["BAYES_METRICS", "bayes_rows", "bayes_figures"]

BAYES_METRICS = frozenset(
    {"mse", "dist", "toward_truth", "ridge_share", "kl_next", "belief_r2", "belief_r2_best"}
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
    "ridge reporters from each layer to the exact belief state. Conditions off the training "
    "prior (dataset names: scaled, rotated, cap, heldout) are the misspecified tests.",
    select=bayes_rows,
    render=bayes_figures,
    positions=True,
)
