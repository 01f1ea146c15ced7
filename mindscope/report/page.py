"""Assemble the report: one self-contained HTML file (Plotly's JS embedded, no network).

The page is built from a results table only (plus an optional dict of run metadata shown in the
header). It holds no section of its own: it asks the registry (:mod:`mindscope.report.registry`)
which sections apply to the table and lays them out in order: heading, caption, figures, table.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Section, build_sections

__all__ = ["render_html", "write_report", "table_html"]


_CSS = """
body{font-family:-apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
margin:0;color:#1d2329;background:#f6f7f9}
header{background:#1d2b3a;color:#fff;padding:18px 32px}
header h1{margin:0 0 6px 0;font-size:22px}
header .meta{font-size:13px;opacity:.85}
header .meta span{margin-right:18px}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #dde1e6;font-size:14px}
nav a{margin-right:16px;color:#1f5f99;text-decoration:none}
main{padding:8px 32px 40px 32px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:14px 18px;
margin:16px 0}
section h2{font-size:18px;margin:0 0 4px 0}
p.note{font-size:13px;color:#555;margin:0 0 8px 0}
table.summary{border-collapse:collapse;font-size:13px;width:100%}
table.summary th,table.summary td{border-bottom:1px solid #e5e8eb;padding:4px 8px;text-align:left}
table.summary td.num{text-align:right;font-variant-numeric:tabular-nums}
footer{font-size:12px;color:#777;padding:0 32px 24px 32px}
.flag{color:#a61b1b;font-weight:600}
p.warn{background:#fdecea;border:1px solid #f5c2bd;color:#7a1a12;padding:6px 10px;
border-radius:4px;font-size:13px}
"""


def _cell(column: str, v: Any) -> str:
    if column in ("layer", "step") and isinstance(v, (int, float)) and v < 0:
        v = ""
    num = " class='num'" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    if isinstance(v, float):
        text = "" if v != v else f"{v:.4g}"
    else:
        text = html.escape(str(v))
    if column == "flag" and text:
        text = f"<span class='flag'>{text}</span>"
    return f"<td{num}>{text}</td>"


def table_html(table: pd.DataFrame) -> str:
    """A section's table as HTML (numbers right-aligned, a ``flag`` column highlighted,
    ``layer``/``step`` of -1 left blank)."""
    cols = [str(c) for c in table.columns]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(_cell(c, v) for c, v in zip(cols, rec)) + "</tr>"
        for rec in table.itertuples(index=False)
    )
    return f"<table class='summary'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _section_html(s: Section) -> str:
    warn = f"<p class='warn'>{html.escape(s.warning)}</p>" if s.warning else ""
    divs = "".join(plot.figure_html(f, f"fig-{s.id}-{i}") for i, f in enumerate(s.figures))
    table = table_html(s.table) if s.table is not None else ""
    return (
        f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>"
        f"<p class='note'>{html.escape(s.note)}</p>{warn}{divs}{table}</section>"
    )


def render_html(
    df: pd.DataFrame, title: str = "mindscope report", meta: Mapping[str, Any] | None = None
) -> str:
    """Render the report of a results table as one self-contained HTML string.

    Args:
        df: a results table (:func:`mindscope.results.to_frame` / ``read_table``).
        title: the page title.
        meta: small key/value pairs shown under the title (run name, model, seed, ...).
    """
    sections = build_sections(df)
    meta_html = "".join(
        f"<span><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</span>"
        for k, v in (meta or {}).items()
    )
    nav = "".join(f"<a href='#{s.id}'>{html.escape(s.title.split(':')[0])}</a>" for s in sections)
    from mindscope._version import __version__

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{plot.plotly_js()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><div class='meta'>{meta_html}</div></header>"
        f"<nav>{nav}</nav><main>{''.join(_section_html(s) for s in sections)}</main>"
        f"<footer>mindscope {html.escape(__version__)} · {len(df)} result rows · "
        f"built {stamp} · works offline</footer></body></html>\n"
    )


def write_report(
    df: pd.DataFrame,
    path: str | os.PathLike[str],
    title: str = "mindscope report",
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Render :func:`render_html` and write it to ``path`` atomically; returns the path."""
    from mindscope.extras import require

    require("report", what="the HTML report")
    path = Path(path)
    text = render_html(df, title=title, meta=meta)
    from mindscope.io import atomic_write_text

    return atomic_write_text(path, text)
