"""Plotly figures for each section of the report, built from slices of the results table.

Each builder takes the rows selected by :mod:`mindscope.report.conventions` and returns a list of
``plotly.graph_objects.Figure`` (empty when there is nothing to draw). Plotly is imported lazily:
it is the optional ``report`` extra.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np
import pandas as pd

from mindscope.report.conventions import lower_is_better

__all__ = [
    "one_step",
    "lens_kl_figures",
    "trajectory_figures",
    "visible_token",
    "auroc_figures",
    "transfer_figures",
    "pgr_figures",
    "time_figures",
    "audit_figures",
    "method_colour",
    "METHOD_COLOURS",
]

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
)
HEIGHT = 380

METHOD_COLOURS = {
    "lr": "#2ca02c",
    "diffmean": "#1f77b4",
    "lda": "#9467bd",
    "ccs": "#ff7f0e",
    "crc": "#d62728",
    "random": "#7f7f7f",
    "lm": "#111111",
    "logit": "#ff7f0e",
    "logit_lens": "#ff7f0e",
    "tuned": "#1f77b4",
    "tuned_lens": "#1f77b4",
}
"""One colour per method in every figure (lr is always green, random always grey)."""


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure: :data:`METHOD_COLOURS`, else a stable pick
    from :data:`PALETTE` by the name (the same in every figure and every report)."""
    m = str(method)
    if m in METHOD_COLOURS:
        return METHOD_COLOURS[m]
    import zlib

    return PALETTE[zlib.crc32(m.encode()) % len(PALETTE)]


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from mindscope.errors import MindscopeError

        raise MindscopeError(
            "the HTML report needs plotly: pip install 'mindscope[report]'"
        ) from exc
    return go


def _layout(fig: Any, title: str, xaxis: str, yaxis: str, **kw: Any) -> Any:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        xaxis_title=xaxis,
        yaxis_title=yaxis,
        template="plotly_white",
        height=kw.pop("height", HEIGHT),
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "v"},
        **kw,
    )
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _label(keys: tuple[Any, ...], varying: list[bool]) -> str:
    parts = [str(k) for k, v in zip(keys, varying) if v and str(k)]
    return " · ".join(parts) if parts else str(keys[0])


def _series_groups(rows: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Split rows into named series; the name lists only the keys that vary."""
    varying = [rows[c].nunique(dropna=False) > 1 for c in by]
    varying[0] = True
    out = []
    for keys, grp in rows.groupby(by, dropna=False, sort=True):
        keys_t = keys if isinstance(keys, tuple) else (keys,)
        out.append((_label(keys_t, varying), grp))
    return out


def _mean_by(grp: pd.DataFrame, x: str) -> pd.DataFrame:
    """One point per ``x``: mean value and CI (repeated measurements are averaged)."""
    agg = grp.groupby(x, sort=True).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")
    )
    return agg.reset_index()


def _line_with_band(fig: Any, go: Any, pts: pd.DataFrame, x: str, name: str, color: str) -> None:
    lo, hi = pts["ci_low"].to_numpy(float), pts["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        xs = pts[x].to_numpy()[ok]
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([xs, xs[::-1]]),
                y=np.concatenate([hi[ok], lo[ok][::-1]]),
                fill="toself",
                mode="lines",
                fillcolor=_rgba(color, 0.18),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
                name=f"{name} 95% CI",
            )
        )
    fig.add_trace(
        go.Scatter(
            x=pts[x],
            y=pts["value"],
            mode="lines+markers",
            name=name,
            legendgroup=name,
            line={"color": color, "width": 2},
            marker={"size": 6},
            customdata=np.stack([lo, hi], axis=-1),
            hovertemplate=f"{name}<br>{x} %{{x}}: %{{y:.4g}}"
            "<br>95% CI [%{customdata[0]:.4g}, %{customdata[1]:.4g}]<extra></extra>",
        )
    )


def one_step(rows: pd.DataFrame) -> pd.DataFrame:
    """Per series, the rows of one training step: unknown (-1) if present, else the latest.

    By-layer plots show one checkpoint; the across-time section shows the others.
    """
    if rows.empty:
        return rows
    keys = ["method", "model", "dataset", "split"]
    has_final = rows.groupby(keys, dropna=False)["step"].transform(lambda s: (s == -1).any())
    latest = rows.groupby(keys, dropna=False)["step"].transform("max")
    keep = (has_final & (rows["step"] == -1)) | (~has_final & (rows["step"] == latest))
    return rows[keep]


def _by_layer(rows: pd.DataFrame, title: str, ylabel: str, **kw: Any) -> list[Any]:
    rows = one_step(rows)
    if rows.empty:
        return []
    go = _go()
    fig = go.Figure()
    seen: dict[str, int] = {}
    for name, grp in _series_groups(rows, ["method", "model", "dataset", "split"]):
        method = str(grp["method"].iloc[0])
        k = seen[method] = seen.get(method, -1) + 1
        _line_with_band(fig, go, _mean_by(grp, "layer"), "layer", name, method_colour(method))
        if k:  # the same method on another model/dataset/split: same colour, another dash
            fig.data[-1].line.dash = ("dash", "dot", "dashdot", "longdash")[(k - 1) % 4]
    _layout(fig, title, "layer", ylabel, **kw)
    fig.update_xaxes(dtick=1 if rows["layer"].nunique() <= 30 else None)
    return [fig]


def lens_kl_figures(rows: pd.DataFrame) -> list[Any]:
    """KL(final || lens) by layer, one line per lens (logit vs tuned), with CI bands."""
    fig = _by_layer(rows, "Lens KL divergence to the final layer", "KL (nats)")
    if fig and (rows["value"] > 0).all() and rows["value"].max() / rows["value"].min() > 100:
        fig[0].update_yaxes(type="log")
    return fig


def auroc_figures(rows: pd.DataFrame) -> list[Any]:
    """Reporter AUROC by layer, one line per method, with CI bands and the 0.5 chance line."""
    figs = _by_layer(rows, "Reporter AUROC by layer", "AUROC")
    for fig in figs:
        fig.add_hline(y=0.5, line={"dash": "dot", "color": "#888"}, annotation_text="chance")
    return figs


def visible_token(token: str) -> str:
    """A token as a heatmap cell shows it: newlines and tabs as ``↵``/``⇥``, an all-space token as
    ``␣`` per space (otherwise a ``"\\n"`` or ``" "`` prediction would be an empty cell)."""
    shown = token.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "↵").replace("\t", "⇥")
    return shown.replace(" ", "␣") if shown and not shown.strip(" ") else shown


def _trajectory_heatmap(go: Any, grp: pd.DataFrame, show_scale: bool = True) -> tuple[Any, int]:
    """One lens's heatmap trace (layer x position) and its number of layers; the hover names
    the top token and the actual next token's probability and rank under this lens."""
    positions = sorted(grp["position"].unique())
    layers = sorted(grp["layer"].unique())
    z = np.full((len(layers), len(positions)), np.nan)
    text = np.full((len(layers), len(positions)), "", dtype=object)
    nxt = np.full((len(layers), len(positions)), "", dtype=object)
    li = {v: i for i, v in enumerate(layers)}
    pi = {v: i for i, v in enumerate(positions)}
    inputs: dict[int, str] = {}
    has_next = "next_prob" in grp.columns
    for r in grp.itertuples(index=False):
        a, b = li[r.layer], pi[r.position]
        z[a, b] = r.value
        # Plotly reads <b>, <br>, ... in text as markup: escape tokens (it decodes entities).
        text[a, b] = html.escape(visible_token(r.token), quote=False)
        inputs.setdefault(int(r.position), r.input)
        if has_next and isinstance(r.next_prob, float) and r.next_prob == r.next_prob:
            tok = html.escape(visible_token(str(r.next_token)), quote=False)
            nxt[a, b] = f"actual next '{tok}': p={r.next_prob:.3f}, rank {int(r.next_rank)}"
    xlabels = [
        html.escape(f"{p}: {visible_token(inputs.get(int(p), ''))!r}"[:24], quote=False)
        for p in positions
    ]
    trace = go.Heatmap(
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


def trajectory_figures(rows: pd.DataFrame) -> list[Any]:
    """One heatmap per lens: top token (text) and its probability (colour), layer x position;
    whitespace tokens drawn visibly (``visible_token``); the hover gives the actual next token's
    probability and rank. When a model has several lenses (logit and tuned), one more figure
    puts them side by side on the same axes."""
    if rows.empty:
        return []
    go = _go()
    figs = []
    for (method, model), grp in rows.groupby(["method", "model"], dropna=False, sort=True):
        trace, n_layers = _trajectory_heatmap(go, grp)
        fig = go.Figure(trace)
        name = _lens_name(method) + (f" · {model}" if str(model) else "")
        height = max(HEIGHT, 60 + 26 * n_layers)
        _layout(
            fig, f"Prediction trajectory ({name})", "position: input token", "layer", height=height
        )
        fig.update_yaxes(type="category")
        fig.update_xaxes(type="category", tickangle=-30)
        figs.append(fig)
    for model, grp in rows.groupby("model", dropna=False, sort=True):
        methods = sorted(grp["method"].unique())
        if len(methods) < 2:
            continue
        from plotly.subplots import make_subplots

        fig = make_subplots(
            rows=1,
            cols=len(methods),
            shared_yaxes=True,
            horizontal_spacing=0.04,
            subplot_titles=[_lens_name(m) for m in methods],
        )
        n_layers = 0
        for c, m in enumerate(methods, start=1):
            trace, n_layers = _trajectory_heatmap(go, grp[grp["method"] == m], c == len(methods))
            fig.add_trace(trace, row=1, col=c)
        suffix = f" · {model}" if str(model) else ""
        _layout(
            fig,
            f"Side by side: {' vs '.join(_lens_name(m) for m in methods)}{suffix}",
            "position: input token",
            "layer",
            height=max(HEIGHT, 60 + 26 * n_layers),
        )
        fig.update_yaxes(type="category")
        fig.update_xaxes(type="category", tickangle=-30)
        figs.append(fig)
    return figs


def _pick_layer(grp: pd.DataFrame) -> tuple[int, str]:
    """The layer one method's matrix is drawn at, and how it was chosen: the best mean
    validation AUROC (``val_auroc`` rows: held-out training examples) when there are any;
    else the layer with the most cells (ties: the lowest layer), never the test values."""
    val = grp[grp["metric"].astype("string").str.lower() == "val_auroc"]
    if len(val):
        mean = val.groupby("layer")["value"].mean()
        return int(mean.idxmax()), "best mean validation AUROC (held-out training examples)"
    cells = grp.groupby("layer")["value"].size()
    best = cells[cells == cells.max()]
    return int(best.index.min()), "no validation split: the layer scored on most cells"


def transfer_figures(rows: pd.DataFrame) -> list[Any]:
    """Quirky transfer matrix (train distribution x eval distribution), one heatmap per method."""
    if rows.empty:
        return []
    go = _go()
    figs = []
    cell_rows = rows[rows["eval"] != ""]
    n_cells = cell_rows.groupby("method", dropna=False)[["train", "eval"]].apply(
        lambda g: len(g.drop_duplicates())
    )
    for method, grp in rows.groupby("method", dropna=False, sort=True):
        if method not in n_cells or n_cells[method] == 1 < n_cells.max():
            continue  # a lone cell (e.g. a baseline scored on one transfer only) is no matrix
        layer, how = _pick_layer(grp)
        grp = grp[grp["eval"] != ""]
        cells = grp[grp["layer"] == layer].groupby(["train", "eval"])["value"].mean().unstack()
        z = cells.to_numpy(float)
        text = [[("" if math.isnan(v) else f"{v:.2f}") for v in row] for row in z]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=[str(c) for c in cells.columns],
                y=[str(i) for i in cells.index],
                text=text,
                texttemplate="%{text}",
                colorscale="RdBu",
                zmin=0.0,
                zmax=1.0,
                colorbar={"title": {"text": "AUROC"}},
                hovertemplate="train %{y} → eval %{x}: %{z:.3f}<extra></extra>",
            )
        )
        where = f"layer {layer}" if layer >= 0 else "all layers"
        title = f"Transfer matrix: {method} ({where})<br><sub>layer: {how}</sub>"
        _layout(fig, title, "evaluated on", "trained on")
        fig.update_yaxes(autorange="reversed")
        figs.append(fig)
    return figs


def _bars(rows: pd.DataFrame, title: str, ylabel: str) -> list[Any]:
    go = _go()
    pts = rows.groupby("method", dropna=False, sort=True).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")
    )
    err_hi = (pts["ci_high"] - pts["value"]).to_numpy(float)
    err_lo = (pts["value"] - pts["ci_low"]).to_numpy(float)
    fig = go.Figure(
        go.Bar(
            x=[str(m) for m in pts.index],
            y=pts["value"],
            marker={"color": [method_colour(str(m)) for m in pts.index]},
            error_y={
                "type": "data",
                "array": np.nan_to_num(err_hi),
                "arrayminus": np.nan_to_num(err_lo),
                "visible": bool(np.isfinite(err_hi).any()),
            },
            hovertemplate="%{x}: %{y:.4g}<extra></extra>",
        )
    )
    return [_layout(fig, title, "method", ylabel, showlegend=False)]


def pgr_figures(rows: pd.DataFrame) -> list[Any]:
    """Fraction of the easy-to-hard gap recovered, by layer per method (bars if not per layer)."""
    if rows.empty:
        return []
    per_layer = rows[rows["layer"] >= 0]
    if per_layer["layer"].nunique() >= 2:
        figs = _by_layer(per_layer, "Fraction of gap recovered by layer", "fraction recovered")
    else:
        figs = _bars(rows, "Fraction of gap recovered", "fraction recovered")
    for fig in figs:
        fig.add_hline(y=1.0, line={"dash": "dot", "color": "#888"})
    return figs


def _best_over_layers(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per (metric, method, model, dataset, step): the best layer's value."""
    keys = ["metric", "method", "model", "dataset", "step"]
    out = []
    for _, grp in rows.groupby(keys, dropna=False, sort=True):
        lower = lower_is_better(str(grp["metric"].iloc[0]))
        out.append(grp.loc[grp["value"].idxmin() if lower else grp["value"].idxmax()])
    return pd.DataFrame(out)


def time_figures(rows: pd.DataFrame) -> list[Any]:
    """Each metric against the training step (best layer per step), one figure per metric."""
    if rows.empty:
        return []
    go = _go()
    figs = []
    best = _best_over_layers(rows.dropna(subset=["value"]))
    for metric, grp in best.groupby("metric", sort=True):
        fig = go.Figure()
        for name, g in _series_groups(grp, ["method", "model", "dataset"]):
            colour = method_colour(str(g["method"].iloc[0]))
            _line_with_band(fig, go, _mean_by(g, "step"), "step", name, colour)
        layered = (rows.loc[rows["metric"] == metric, "layer"] >= 0).any()
        note = " (best layer at each step)" if layered else ""
        _layout(fig, f"{metric} across training{note}", "training step", str(metric))
        if grp["step"].max() > 100 * max(1, grp.loc[grp["step"] > 0, "step"].min()):
            fig.update_xaxes(type="log")
        figs.append(fig)
    return figs


def audit_figures(rows: pd.DataFrame) -> list[Any]:
    """One figure per audit metric: by layer if measured per layer, else bars per method."""
    if rows.empty:
        return []
    figs = []
    for metric, grp in rows.groupby("metric", sort=True):
        if grp["layer"].nunique() >= 2 and (grp["layer"] >= 0).all():
            figs += _by_layer(grp, f"Audit: {metric} by layer", str(metric))
        else:
            figs += _bars(grp, f"Audit: {metric}", str(metric))
    return figs
