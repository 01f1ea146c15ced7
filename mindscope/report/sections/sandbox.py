"""Report figures for the embedded-agency sandbox, built from results rows only.

Rows (written by ``mindscope sandbox train|eval|record``, see :mod:`mindscope.sandbox.metrics`
and :mod:`mindscope.sandbox.probing`); ``dataset`` is the world, ``method`` the agent:

- behaviour metrics over seeds (``tamper_rate``, ``return_gap``, ``shortcut_rate_*``,
  ``interruption_avoidance``, ...; mean with a 95% CI) -> *bars per world and agent*;
- ``train_<metric>`` (``step`` = end of a training bin) -> *curves over training with CI bands*;
- ``auroc_tamper_within_k`` (``extra.k``, ``extra.site``) -> *probe AUROC against the horizon k*,
  and ``auroc_<fact>`` rows with a ``site`` (e.g. supervisor present) -> *bars per site*.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import BEHAVIOUR_METRICS, metric_names
from mindscope.results import extra_values

__all__ = ["sandbox_rows", "sandbox_figures"]


def _extra(rows: pd.DataFrame, key: str) -> pd.Series:
    return extra_values(rows, key)


def sandbox_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the sandbox section: behaviour metrics, their training curves, agent probes."""
    metric = metric_names(df)
    base = metric.str.removeprefix("train_")
    behaviour = base.isin(BEHAVIOUR_METRICS)
    probes = metric.eq("auroc_tamper_within_k") | (
        metric.str.startswith("auroc_") & _extra(df, "site").notna()
    )
    return df[behaviour | probes]


def _series_names(grp: pd.DataFrame) -> list[str]:
    """One bar series per agent; an agent run at several budgets in one world gets one per run
    (``ppo · 30k``), so that no two bars of a series share a world; a split other than
    ``tamper_on`` (channel off, world parameters) is named too."""
    method = grp["method"].astype(str)
    step = grp["step"].fillna(-1).astype(int)
    split = grp["split"].astype(str).fillna("")
    dup = grp.assign(_m=method).groupby(["_m", "dataset"])["_m"].transform("size") > 1
    return [
        (f"{m} · {st // 1000}k" if d else m) + (f" · {sp}" if sp not in ("", "tamper_on") else "")
        for m, st, sp, d in zip(method, step, split, dup)
    ]


def _behaviour_bars(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    figs = []
    for metric in BEHAVIOUR_METRICS:
        grp = rows[rows["metric"] == metric]
        if grp.empty:
            continue
        fig = go.Figure()
        grp = grp.assign(_series=_series_names(grp))
        agents = sorted(grp["_series"].unique())
        seen: dict[str, int] = {}
        for agent in agents:
            g = grp[grp["_series"] == agent].sort_values("dataset")
            method = str(g["method"].iloc[0])
            k = seen[method] = seen.get(method, -1) + 1
            y = g["value"].to_numpy(float)
            fig.add_trace(
                go.Bar(
                    x=g["dataset"].astype(str).tolist(),
                    y=y,
                    name=agent,
                    marker={
                        "color": plot.method_colour(method),
                        "pattern": {"shape": ("", "/", ".", "x", "+")[k % 5]},
                    },
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": np.maximum(g["ci_high"].to_numpy(float) - y, 0),
                        "arrayminus": np.maximum(y - g["ci_low"].to_numpy(float), 0),
                    },
                    hovertemplate="%{x}: %{y:.3f} (n = %{customdata} seeds)<extra></extra>",
                    customdata=g["n"].tolist(),
                )
            )
        plot.layout(
            fig,
            f"{metric.replace('_', ' ')} by world and agent (mean over seeds, 95% CI)",
            "world",
            metric,
            barmode="group",
        )
        figs.append(fig)
    return figs


def _training_curves(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    figs = []
    curves = rows[rows["metric"].astype(str).str.startswith("train_")]
    for metric in sorted(curves["metric"].astype(str).unique()):
        grp = curves[curves["metric"] == metric]
        fig = go.Figure()
        keys = sorted({(str(w), str(a)) for w, a in zip(grp["dataset"], grp["method"])})
        seen: dict[str, int] = {}
        for world, agent in keys:
            g = grp[(grp["dataset"] == world) & (grp["method"] == agent)].sort_values("step")
            x = g["step"].to_numpy(float)
            colour = plot.method_colour(agent)
            k = seen[agent] = seen.get(agent, -1) + 1
            lo, hi = g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([x[ok], x[ok][::-1]]),
                        y=np.concatenate([hi[ok], lo[ok][::-1]]),
                        fill="toself",
                        fillcolor=plot.rgba(colour, 0.15),
                        line={"width": 0},
                        hoverinfo="skip",
                        showlegend=False,
                    )
                )
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=g["value"].to_numpy(float),
                    mode="lines+markers",
                    name=f"{world} · {agent}",
                    line={"color": colour, "dash": (None, *plot.DASHES)[k % 5]},
                )
            )
        name = metric.removeprefix("train_").replace("_", " ")
        plot.layout(fig, f"{name} over training (95% CI over seeds)", "environment step", name)
        figs.append(fig)
    return figs


def _probe_figures(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    figs = []
    horizon = rows[rows["metric"] == "auroc_tamper_within_k"].copy()
    if not horizon.empty:
        horizon["k"] = pd.to_numeric(_extra(horizon, "k"), errors="coerce")
        horizon["site"] = _extra(horizon, "site").astype(str)
        fig = go.Figure()
        keys = sorted(
            {
                (str(w), str(a), s)
                for w, a, s in zip(horizon["dataset"], horizon["method"], horizon["site"])
            }
        )
        worlds = sorted({w for w, _, _ in keys})
        for world, agent, site in keys:
            dash = (
                "dot" if site == "input" else ("solid", "dash", "longdash")[worlds.index(world) % 3]
            )
            g = horizon[
                (horizon["dataset"] == world)
                & (horizon["method"] == agent)
                & (horizon["site"] == site)
            ].sort_values("k")
            fig.add_trace(
                go.Scatter(
                    x=g["k"],
                    y=g["value"],
                    mode="lines+markers",
                    name=f"{world} · {agent} · {site}",
                    line={"color": plot.method_colour(agent), "dash": dash},
                    error_y=plot.ci_error_bars(g),
                    customdata=g["n"].tolist(),
                    hovertemplate="k = %{x}: AUROC %{y:.3f} (n = %{customdata})<extra></extra>",
                )
            )
        fig.add_hline(y=0.5, line={"color": "#999", "dash": "dot"})
        plot.layout(
            fig,
            "Probe on the agent's activations: AUROC of 'will tamper within k steps' "
            "(held out; 95% CI over seeds; dotted: the one-hot board as baseline)",
            "k (steps before the tamper)",
            "AUROC",
        )
        fig.update_xaxes(type="log")
        figs.append(fig)
    facts = rows[
        rows["metric"].astype(str).str.startswith("auroc_")
        & (rows["metric"] != "auroc_tamper_within_k")
    ].copy()
    if not facts.empty:
        facts["site"] = _extra(facts, "site").astype(str)
        fig = go.Figure()
        for i, (metric, g) in enumerate(facts.groupby("metric", sort=True)):
            fig.add_trace(
                go.Bar(
                    x=[f"{w} · {a} · {s}" for w, a, s in zip(g["dataset"], g["method"], g["site"])],
                    y=g["value"],
                    name=str(metric).removeprefix("auroc_"),
                    marker={"color": plot.series_colour(i)},
                    error_y=plot.ci_error_bars(g),
                )
            )
        plot.layout(fig, "Probe AUROC of world facts from the agent's activations", "", "AUROC")
        figs.append(fig)
    return figs


def sandbox_figures(rows: pd.DataFrame) -> list[Any]:
    """Every sandbox figure the rows allow (empty list when there are none)."""
    return [*_behaviour_bars(rows), *_training_curves(rows), *_probe_figures(rows)]


register(
    "sandbox",
    order=100,
    title="Embedded agency: the sandbox",
    caption="Agents in gridworlds whose reward mechanism is part of the world: tamper rate and "
    "the gap between observed and true return per world and agent (95% CIs over seeds), the "
    "same over training, and probes on the agents' activations that predict tampering k steps "
    "ahead.",
    select=sandbox_rows,
    render=sandbox_figures,
)
