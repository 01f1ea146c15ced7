"""The report's plotting kit: palette, layout, one colour per method, figure helpers.

This is the only module of the report that imports or configures Plotly (lazily: it is the
optional ``report`` extra); every section draws through it.

**Colours.** Each method has one colour in every figure of a report: :data:`METHOD_COLOURS` for
the methods mindscope knows (lr green, diffmean blue, lda purple, ccs orange, crc red, random
grey, the model's own answers black, ...; no two share a colour), and for any other method a
colour of :data:`FALLBACK_COLOURS` (never one of the known ones) picked from a hash of its name,
moved to the next free one when two unknown methods of the same report would collide.
:func:`method_palette` fixes that mapping for the methods of one report (the page does it
around all its sections); :func:`method_colour` reads it.
"""

from __future__ import annotations

import colorsys
import contextvars
import html
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "HEIGHT",
    "PALETTE",
    "METHOD_COLOURS",
    "METHOD_ALIASES",
    "FALLBACK_COLOURS",
    "DASHES",
    "go",
    "subplots",
    "plotly_js",
    "figure_html",
    "canonical_method",
    "assign_colours",
    "method_palette",
    "method_colour",
    "series_colour",
    "rgba",
    "layout",
    "series_groups",
    "mean_by",
    "line_with_band",
    "one_step",
    "by_layer",
    "bars",
    "ci_error_bars",
    "table_figure",
    "escape",
]

HEIGHT = 380
"""Default figure height in pixels."""

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
"""Colours of series that are not methods (layers, seeds, groups), by position."""

METHOD_COLOURS: dict[str, str] = {
    # reporters and the model's own answers
    "lr": "#2ca02c",
    "diffmean": "#1f77b4",
    "lda": "#9467bd",
    "ccs": "#ff7f0e",
    "crc": "#d62728",
    "random": "#7f7f7f",
    "lm": "#111111",
    "ridge": "#bcbd22",
    # lenses
    "logit_lens": "#8c564b",
    "tuned_lens": "#17becf",
    # anomaly detectors
    "mahalanobis": "#e377c2",
    "lof": "#393b79",
    "iforest": "#637939",
    "que": "#843c39",
    # rare-event estimators and trigger search
    "naive": "#c7c7c7",
    "itgis": "#5254a3",
    "mhis": "#bd9e39",
    "ce": "#ad494a",
    "gcg": "#7b4173",
    # sandbox agents
    "q_learning": "#8ca252",
    "sarsa": "#8c6d31",
    "dqn": "#aec7e8",
    "ppo": "#ff9896",
    "approval": "#c5b0d5",
    "coupled_approval": "#c49c94",
    "decoupled_approval": "#9edae5",
}
"""The colour of every method mindscope knows; all distinct."""

METHOD_ALIASES = {"logit": "logit_lens", "tuned": "tuned_lens"}
"""Other names of the same method (they share its colour)."""

FALLBACK_COLOURS = (
    "#3182bd",
    "#e6550d",
    "#31a354",
    "#756bb1",
    "#636363",
    "#6b6ecf",
    "#b5cf6b",
    "#e7ba52",
    "#d6616b",
    "#ce6dbd",
    "#9c9ede",
    "#cedb9c",
    "#e7cb94",
    "#e7969c",
    "#de9ed6",
    "#fdae6b",
    "#74c476",
    "#9e9ac8",
    "#6baed6",
    "#fd8d3c",
)
"""Colours of methods outside :data:`METHOD_COLOURS` (none of them is a known method's)."""

DASHES = ("dash", "dot", "dashdot", "longdash")
"""Line dashes of the second, third, ... series of one method in a figure."""

_ACTIVE: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "mindscope_report_method_colours", default=None
)


def go() -> Any:
    """``plotly.graph_objects``, or a one-line error naming the extra to install."""
    try:
        import plotly.graph_objects as graph_objects
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from mindscope.errors import MindscopeError

        raise MindscopeError(
            "the HTML report needs plotly: pip install 'mindscope[report]'"
        ) from exc
    return graph_objects


def subplots(**kw: Any) -> Any:
    """``plotly.subplots.make_subplots(**kw)``."""
    go()
    from plotly.subplots import make_subplots

    return make_subplots(**kw)


def plotly_js() -> str:
    """Plotly's JavaScript, to inline once in a page (the report fetches nothing)."""
    go()
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


def figure_html(fig: Any, div_id: str) -> str:
    """One figure as an HTML ``<div id=div_id>`` (Plotly's JS not included), full width."""
    height = fig.layout.height or HEIGHT
    return str(
        fig.to_html(
            full_html=False,
            include_plotlyjs=False,
            div_id=div_id,
            default_width="100%",
            default_height=f"{int(height)}px",
            config={"displaylogo": False, "responsive": True},
        )
    )


def canonical_method(method: str) -> str:
    """The name a method's colour is keyed by (:data:`METHOD_ALIASES` resolved)."""
    m = str(method)
    return METHOD_ALIASES.get(m, m)


def _extra_colour(k: int) -> str:
    """The ``k``-th colour beyond :data:`FALLBACK_COLOURS`: golden-angle hues."""
    h = (0.13 + 0.618033988749895 * k) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, 0.45 + 0.1 * (k % 3), 0.65)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def assign_colours(methods: Iterable[str]) -> dict[str, str]:
    """One colour per method of ``methods``, no two methods sharing one (aliases excepted).

    Known methods get :data:`METHOD_COLOURS`; the others, in name order, the colour of
    :data:`FALLBACK_COLOURS` their name hashes to, or the next free one (then generated hues).
    The result depends only on the set of names.
    """
    names = sorted({str(m) for m in methods})
    out = {
        m: METHOD_COLOURS[canonical_method(m)]
        for m in names
        if canonical_method(m) in METHOD_COLOURS
    }
    used = set(METHOD_COLOURS.values())
    n = len(FALLBACK_COLOURS)
    for m in names:
        if m in out:
            continue
        start = zlib.crc32(m.encode()) % n
        free = [FALLBACK_COLOURS[(start + i) % n] for i in range(n)]
        pick = next((c for c in free if c not in used), None)
        k = 0
        while pick is None or pick in used:
            pick, k = _extra_colour(k), k + 1
        out[m] = pick
        used.add(pick)
    return out


@contextmanager
def method_palette(methods: Iterable[str]) -> Iterator[dict[str, str]]:
    """Within the block, :func:`method_colour` uses :func:`assign_colours` of ``methods``
    (every method of a report, so no two of them share a colour in any of its figures)."""
    token = _ACTIVE.set(assign_colours(methods))
    try:
        yield _ACTIVE.get() or {}
    finally:
        _ACTIVE.reset(token)


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure (see the module docstring)."""
    m = str(method)
    active = _ACTIVE.get()
    if active is not None and m in active:
        return active[m]
    return assign_colours([m])[m]


def series_colour(i: int) -> str:
    """The colour of the ``i``-th series that is not a method (:data:`PALETTE`, cycled)."""
    return PALETTE[i % len(PALETTE)]


def rgba(hex_color: str, alpha: float) -> str:
    """``#rrggbb`` as ``rgba(r,g,b,alpha)`` (for CI bands)."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def layout(fig: Any, title: str, xaxis: str, yaxis: str, **kw: Any) -> Any:
    """The report's layout on ``fig`` (title left, white template, :data:`HEIGHT`); ``kw`` are
    more ``update_layout`` arguments. Returns ``fig``."""
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


def _label(keys: tuple[Any, ...], varying: list[bool]) -> str:
    parts = [str(k) for k, v in zip(keys, varying) if v and str(k)]
    return " · ".join(parts) if parts else str(keys[0])


def series_groups(rows: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    """Split rows into named series by the columns ``by``; a name lists only the keys that vary
    (the first always)."""
    varying = [rows[c].nunique(dropna=False) > 1 for c in by]
    varying[0] = True
    out = []
    for keys, grp in rows.groupby(by, dropna=False, sort=True):
        keys_t = keys if isinstance(keys, tuple) else (keys,)
        out.append((_label(keys_t, varying), grp))
    return out


def mean_by(grp: pd.DataFrame, x: str) -> pd.DataFrame:
    """One point per ``x``: mean value and CI (repeated measurements are averaged)."""
    agg = grp.groupby(x, sort=True).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")
    )
    return agg.reset_index()


def line_with_band(fig: Any, pts: pd.DataFrame, x: str, name: str, color: str) -> None:
    """Add a line of ``pts[value]`` against ``pts[x]`` and its shaded 95% CI band."""
    g = go()
    lo, hi = pts["ci_low"].to_numpy(float), pts["ci_high"].to_numpy(float)
    ok = np.isfinite(lo) & np.isfinite(hi)
    if ok.any():
        xs = pts[x].to_numpy()[ok]
        fig.add_trace(
            g.Scatter(
                x=np.concatenate([xs, xs[::-1]]),
                y=np.concatenate([hi[ok], lo[ok][::-1]]),
                fill="toself",
                mode="lines",
                fillcolor=rgba(color, 0.18),
                line={"width": 0},
                hoverinfo="skip",
                showlegend=False,
                legendgroup=name,
                name=f"{name} 95% CI",
            )
        )
    fig.add_trace(
        g.Scatter(
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

    By-layer plots show one checkpoint; the across-time sections show the others.
    """
    if rows.empty:
        return rows
    keys = ["method", "model", "dataset", "split"]
    has_final = rows.groupby(keys, dropna=False)["step"].transform(lambda s: (s == -1).any())
    latest = rows.groupby(keys, dropna=False)["step"].transform("max")
    keep = (has_final & (rows["step"] == -1)) | (~has_final & (rows["step"] == latest))
    return rows[keep]


def by_layer(rows: pd.DataFrame, title: str, ylabel: str, **kw: Any) -> list[Any]:
    """One figure: the metric by layer, a line per (method, model, dataset, split) with CI
    bands, in the method's colour (another dash for the same method's next series)."""
    rows = one_step(rows)
    if rows.empty:
        return []
    fig = go().Figure()
    seen: dict[str, int] = {}
    for name, grp in series_groups(rows, ["method", "model", "dataset", "split"]):
        method = str(grp["method"].iloc[0])
        k = seen[method] = seen.get(method, -1) + 1
        line_with_band(fig, mean_by(grp, "layer"), "layer", name, method_colour(method))
        if k:  # the same method on another model/dataset/split: same colour, another dash
            fig.data[-1].line.dash = DASHES[(k - 1) % len(DASHES)]
    layout(fig, title, "layer", ylabel, **kw)
    fig.update_xaxes(dtick=1 if rows["layer"].nunique() <= 30 else None)
    return [fig]


def bars(rows: pd.DataFrame, title: str, ylabel: str) -> list[Any]:
    """One bar per method (mean value, mean CI as error bars), in the method's colour."""
    g = go()
    pts = rows.groupby("method", dropna=False, sort=True).agg(
        value=("value", "mean"), ci_low=("ci_low", "mean"), ci_high=("ci_high", "mean")
    )
    err_hi = (pts["ci_high"] - pts["value"]).to_numpy(float)
    err_lo = (pts["value"] - pts["ci_low"]).to_numpy(float)
    fig = g.Figure(
        g.Bar(
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
    return [layout(fig, title, "method", ylabel, showlegend=False)]


def ci_error_bars(g: pd.DataFrame) -> dict[str, Any] | None:
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


def table_figure(header: list[str], cells: list[list[Any]], title: str) -> Any:
    """A Plotly table: ``cells`` is one list per column."""
    g = go()
    fig = g.Figure(
        g.Table(
            header={"values": header, "align": "left", "fill_color": "#e9edf2"},
            cells={"values": cells, "align": "left"},
        )
    )
    fig.update_layout(
        title={"text": title, "x": 0.0}, height=min(620, 120 + 26 * len(cells[0] if cells else []))
    )
    return fig


def escape(text: str) -> str:
    """``text`` for Plotly's text fields, which read ``<b>``, ``<br>``, ... as markup."""
    return html.escape(text, quote=False)
