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

import json
from typing import Any

import numpy as np
import pandas as pd

from mindscope.report.figures import PALETTE, _go, _layout, _rgba

__all__ = ["sandbox_rows", "sandbox_figures", "BEHAVIOUR_METRICS"]

#: Behaviour metrics of :func:`mindscope.sandbox.metrics.episode_metrics`, in figure order.
BEHAVIOUR_METRICS = (
    "tamper_rate",
    "return_gap",
    "observed_return",
    "true_return",
    "first_tamper_step",
    "shortcut_rate_supervised",
    "shortcut_rate_unsupervised",
    "shortcut_rate_difference",
    "interruption_avoidance",
    "interrupted_rate",
    "wall_seconds_per_seed",
    "cpu_seconds_per_seed",
)


def _extra(rows: pd.DataFrame, key: str) -> pd.Series:
    def get(s: Any) -> Any:
        try:
            return json.loads(s).get(key) if isinstance(s, str) and s else None
        except ValueError:
            return None

    return rows["extra"].map(get)


def sandbox_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the sandbox section: behaviour metrics, their training curves, agent probes."""
    metric = df["metric"].astype("string").fillna("")
    base = metric.str.removeprefix("train_")
    behaviour = base.isin(BEHAVIOUR_METRICS)
    probes = metric.eq("auroc_tamper_within_k") | (
        metric.str.startswith("auroc_") & _extra(df, "site").notna()
    )
    return df[behaviour | probes]


def _series_colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


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
    go = _go()
    figs = []
    for metric in BEHAVIOUR_METRICS:
        grp = rows[rows["metric"] == metric]
        if grp.empty:
            continue
        fig = go.Figure()
        grp = grp.assign(_series=_series_names(grp))
        agents = sorted(grp["_series"].unique())
        for i, agent in enumerate(agents):
            g = grp[grp["_series"] == agent].sort_values("dataset")
            y = g["value"].to_numpy(float)
            fig.add_trace(
                go.Bar(
                    x=g["dataset"].astype(str).tolist(),
                    y=y,
                    name=agent,
                    marker={"color": _series_colour(i)},
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
        _layout(
            fig,
            f"{metric.replace('_', ' ')} by world and agent (mean over seeds, 95% CI)",
            "world",
            metric,
            barmode="group",
        )
        figs.append(fig)
    return figs


def _training_curves(rows: pd.DataFrame) -> list[Any]:
    go = _go()
    figs = []
    curves = rows[rows["metric"].astype(str).str.startswith("train_")]
    for metric in sorted(curves["metric"].astype(str).unique()):
        grp = curves[curves["metric"] == metric]
        fig = go.Figure()
        keys = sorted({(str(w), str(a)) for w, a in zip(grp["dataset"], grp["method"])})
        for i, (world, agent) in enumerate(keys):
            g = grp[(grp["dataset"] == world) & (grp["method"] == agent)].sort_values("step")
            x = g["step"].to_numpy(float)
            colour = _series_colour(i)
            lo, hi = g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float)
            ok = np.isfinite(lo) & np.isfinite(hi)
            if ok.any():
                fig.add_trace(
                    go.Scatter(
                        x=np.concatenate([x[ok], x[ok][::-1]]),
                        y=np.concatenate([hi[ok], lo[ok][::-1]]),
                        fill="toself",
                        fillcolor=_rgba(colour, 0.15),
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
                    line={"color": colour},
                )
            )
        name = metric.removeprefix("train_").replace("_", " ")
        _layout(fig, f"{name} over training (95% CI over seeds)", "environment step", name)
        figs.append(fig)
    return figs


def _ci_bars(g: pd.DataFrame) -> dict[str, Any] | None:
    """Asymmetric error bars from ``ci_low``/``ci_high`` (None when no row has an interval)."""
    y = g["value"].to_numpy(float)
    lo, hi = g["ci_low"].to_numpy(float), g["ci_high"].to_numpy(float)
    if not (np.isfinite(lo) & np.isfinite(hi)).any():
        return None
    return {
        "type": "data",
        "symmetric": False,
        "array": np.nan_to_num(np.maximum(hi - y, 0)),
        "arrayminus": np.nan_to_num(np.maximum(y - lo, 0)),
    }


def _probe_figures(rows: pd.DataFrame) -> list[Any]:
    go = _go()
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
        for i, (world, agent, site) in enumerate(keys):
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
                    line={"color": _series_colour(i), "dash": "dot" if site == "input" else None},
                    error_y=_ci_bars(g),
                    customdata=g["n"].tolist(),
                    hovertemplate="k = %{x}: AUROC %{y:.3f} (n = %{customdata})<extra></extra>",
                )
            )
        fig.add_hline(y=0.5, line={"color": "#999", "dash": "dot"})
        _layout(
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
                    marker={"color": _series_colour(i)},
                    error_y=_ci_bars(g),
                )
            )
        _layout(fig, "Probe AUROC of world facts from the agent's activations", "", "AUROC")
        figs.append(fig)
    return figs


def sandbox_figures(rows: pd.DataFrame) -> list[Any]:
    """Every sandbox figure the rows allow (empty list when there are none)."""
    return [*_behaviour_bars(rows), *_training_curves(rows), *_probe_figures(rows)]
