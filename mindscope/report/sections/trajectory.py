"""Prediction trajectory: a lens's top next-token guess, layer x position.

Rows (as :meth:`mindscope.lenses.Trajectory.to_rows` writes them): ``metric`` in
:data:`TRAJECTORY_METRICS` (``top_prob``) with ``extra`` ``{"pos": int, "top_token": str,
"input_token": str}``, ``value`` the top token's probability; optional ``next_prob`` /
``next_rank`` rows (``extra.next_token``) give the actual next token's probability and rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import metric_names
from mindscope.results import extras

__all__ = ["TRAJECTORY_METRICS", "trajectory_rows", "trajectory_figures", "visible_token"]

TRAJECTORY_METRICS = frozenset({"top_prob", "trajectory_prob"})
"""Metric names of a trajectory cell (the top token's probability)."""


def trajectory_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the prediction-trajectory heatmap, with ``position``/``token``/``input`` columns
    and the actual next token's ``next_prob``/``next_rank``/``next_token`` (NaN/"" if absent)."""
    m = metric_names(df)
    sub = df[m.isin(TRAJECTORY_METRICS)].copy()
    ex = extras(sub)
    sub["position"] = [int(e.get("pos", e.get("position", -1))) for e in ex]
    sub["token"] = [str(e.get("top_token", e.get("token", ""))) for e in ex]
    sub["input"] = [str(e.get("input_token", e.get("input", ""))) for e in ex]
    sub = sub[sub["position"] >= 0]
    nxt = df[m.isin(["next_prob", "next_rank"])]
    keys = ["method", "model", "layer", "position"]
    if nxt.empty or sub.empty:
        return sub.assign(next_prob=float("nan"), next_rank=float("nan"), next_token="")
    nex = extras(nxt)
    nxt = nxt.assign(
        position=[int(e.get("pos", -1)) for e in nex],
        next_token=[str(e.get("next_token", "")) for e in nex],
        metric_name=metric_names(nxt).to_numpy(),
    )
    wide = nxt.pivot_table(index=keys, columns="metric_name", values="value", aggfunc="first")
    tokens = nxt.groupby(keys)["next_token"].first()
    wide = wide.join(tokens).reset_index()
    for col in ("next_prob", "next_rank"):
        if col not in wide:
            wide[col] = float("nan")
    merged = sub.merge(wide[[*keys, "next_prob", "next_rank", "next_token"]], on=keys, how="left")
    merged["next_token"] = merged["next_token"].fillna("")
    merged.index = sub.index
    return merged


def visible_token(token: str) -> str:
    """A token as a heatmap cell shows it: newlines and tabs as ``↵``/``⇥``, an all-space token as
    ``␣`` per space (otherwise a ``"\\n"`` or ``" "`` prediction would be an empty cell)."""
    shown = token.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "↵").replace("\t", "⇥")
    return shown.replace(" ", "␣") if shown and not shown.strip(" ") else shown


def _heatmap(grp: pd.DataFrame, show_scale: bool = True) -> tuple[Any, int]:
    """One lens's heatmap trace (layer x position) and its number of layers; the hover names
    the top token and the actual next token's probability and rank under this lens."""
    positions = sorted(grp["position"].unique())
    layers = sorted(grp["layer"].unique())
    z = np.full((len(layers), len(positions)), np.nan)  # [layer, position]
    text = np.full((len(layers), len(positions)), "", dtype=object)
    nxt = np.full((len(layers), len(positions)), "", dtype=object)
    li = {v: i for i, v in enumerate(layers)}
    pi = {v: i for i, v in enumerate(positions)}
    inputs: dict[int, str] = {}
    has_next = "next_prob" in grp.columns
    for r in grp.itertuples(index=False):
        a, b = li[r.layer], pi[r.position]
        z[a, b] = r.value
        text[a, b] = plot.escape(visible_token(r.token))
        inputs.setdefault(int(r.position), r.input)
        if has_next and isinstance(r.next_prob, float) and r.next_prob == r.next_prob:
            tok = plot.escape(visible_token(str(r.next_token)))
            nxt[a, b] = f"actual next '{tok}': p={r.next_prob:.3f}, rank {int(r.next_rank)}"
    xlabels = [
        plot.escape(f"{p}: {visible_token(inputs.get(int(p), ''))!r}"[:24]) for p in positions
    ]
    trace = plot.go().Heatmap(
        z=z,
        x=xlabels,
        y=[str(v) for v in layers],
        text=text,
        customdata=nxt,
        texttemplate="%{text}",
        textfont={"size": 10},
        colorscale="Blues",
        zmin=0.0,
        zmax=1.0,
        showscale=show_scale,
        colorbar={"title": {"text": "p(top)"}},
        hovertemplate="layer %{y}, input %{x}<br>top token '%{text}': p=%{z:.3f}"
        "<br>%{customdata}<extra></extra>",
    )
    return trace, len(layers)


def _lens_name(method: Any) -> str:
    return str(method).removesuffix("_lens").replace("_", " ") + " lens"


def _axes(fig: Any, title: str, n_layers: int) -> Any:
    plot.layout(
        fig, title, "position: input token", "layer", height=max(plot.HEIGHT, 60 + 26 * n_layers)
    )
    fig.update_yaxes(type="category")
    fig.update_xaxes(type="category", tickangle=-30)
    return fig


def trajectory_figures(rows: pd.DataFrame) -> list[Any]:
    """One heatmap per lens: top token (text) and its probability (colour), layer x position;
    whitespace tokens drawn visibly (:func:`visible_token`); the hover gives the actual next
    token's probability and rank. When a model has several lenses (logit and tuned), one more
    figure puts them side by side on the same axes."""
    if rows.empty:
        return []
    figs = []
    for (method, model), grp in rows.groupby(["method", "model"], dropna=False, sort=True):
        trace, n_layers = _heatmap(grp)
        name = _lens_name(method) + (f" · {model}" if str(model) else "")
        figs.append(_axes(plot.go().Figure(trace), f"Prediction trajectory ({name})", n_layers))
    for model, grp in rows.groupby("model", dropna=False, sort=True):
        methods = sorted(grp["method"].unique())
        if len(methods) < 2:
            continue
        fig = plot.subplots(
            rows=1,
            cols=len(methods),
            shared_yaxes=True,
            horizontal_spacing=0.04,
            subplot_titles=[_lens_name(m) for m in methods],
        )
        n_layers = 0
        for c, m in enumerate(methods, start=1):
            trace, n_layers = _heatmap(grp[grp["method"] == m], c == len(methods))
            fig.add_trace(trace, row=1, col=c)
        suffix = f" · {model}" if str(model) else ""
        title = f"Side by side: {' vs '.join(_lens_name(m) for m in methods)}{suffix}"
        figs.append(_axes(fig, title, n_layers))
    return figs


register(
    "trajectory",
    order=20,
    title="Prediction trajectory",
    caption="For each layer (rows) and input position (columns): the lens's top next-token "
    "guess and its probability (colour).",
    select=trajectory_rows,
    render=trajectory_figures,
    positions=True,
)
