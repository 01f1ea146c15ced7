"""Assemble the report: one self-contained HTML file (Plotly's JS embedded, no network).

The page is built from a results table only (plus an optional dict of run metadata shown in the
header). Sections appear when their rows are present (see :mod:`mindscope.report.conventions`).
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.report import audits
from mindscope.report import conventions as conv
from mindscope.report import figures as figs
from mindscope.report import time as time_figs
from mindscope.report.audit_rare import rare_figures, rare_rows
from mindscope.report.sandbox import sandbox_figures, sandbox_rows
from mindscope.report.summary import CHANCE_FLAG, MIN_TEST_EXAMPLES, summarize

__all__ = ["Section", "build_sections", "render_html", "write_report"]


@dataclass(frozen=True)
class Section:
    """One section of the report: an anchor id, a title, a one-paragraph note and its figures."""

    id: str
    title: str
    note: str
    figures: tuple[Any, ...]


_SPECS: tuple[
    tuple[str, str, str, Callable[[pd.DataFrame], pd.DataFrame], Callable[..., Any]], ...
] = (
    (
        "lens-kl",
        "Interpreting across depth: lens KL by layer",
        "KL divergence from the model's final-layer prediction to each layer's lens prediction "
        "(lower is better). The tuned lens should sit below the logit lens at every layer; "
        "shaded bands are 95% confidence intervals.",
        conv.lens_kl_rows,
        figs.lens_kl_figures,
    ),
    (
        "trajectory",
        "Prediction trajectory",
        "For each layer (rows) and input position (columns): the lens's top next-token guess "
        "and its probability (colour).",
        conv.trajectory_rows,
        figs.trajectory_figures,
    ),
    (
        "reporters",
        "Eliciting latent knowledge: reporter AUROC by layer",
        "How well each reporter (probe) separates true from false statements at each layer, "
        "scored against the truth on the split named in the legend; 0.5 is chance and the "
        "grey 'random' line is a random-direction probe (the baseline any reporter must beat). "
        "Bands are 95% bootstrap confidence intervals. Colours are fixed per method in every "
        "figure.",
        conv.auroc_rows,
        figs.auroc_figures,
    ),
    (
        "transfer",
        "Quirky transfer matrix",
        "AUROC against the truth of a reporter trained on one distribution (rows, with that "
        "persona's labels) and evaluated on another (columns), e.g. trained on Alice's easy "
        "questions and tested on Bob's hard ones. Each method's matrix is drawn at one layer, "
        "chosen on a validation split (20% of each training cell held out), never on the test "
        "cells shown; the subtitle says which. 'random' is the random-direction baseline.",
        conv.transfer_rows,
        figs.transfer_figures,
    ),
    (
        "pgr",
        "Fraction of gap recovered",
        "Fraction of the AUROC gap recovered (Mallen et al. 2023; the definition of "
        "docs/elicit.md), all AUROCs against the truth on hard questions: (AUROC of the probe "
        "on Bob-hard - AUROC of the model's own answers on Bob-hard) / (AUROC of the model's "
        "answers on Alice-hard - AUROC of its answers on Bob-hard). 1: the probe reads the "
        "truth in Bob's contexts as well as the model answers for Alice; 0: no better than "
        "the model's untruthful answers. The best-layer value picks the layer on Bob-hard "
        "itself (an oracle choice). A weak-to-strong 'pgr' row is the same ratio with the weak "
        "and strong models' accuracies in place of the two AUROCs.",
        conv.pgr_rows,
        figs.pgr_figures,
    ),
    (
        "time",
        "Interpreting across time",
        "Metrics measured at several training checkpoints, against the training step.",
        conv.time_rows,
        figs.time_figures,
    ),
    (
        "time-layers",
        "Across time, layer by layer",
        "Each layer's metric against the training step (log scale) and layer x step heatmaps of "
        "lens KL and reporter AUROC on the hard splits; checkpoints with the same weights as an "
        "earlier one are marked (x, *), a random-init control is the dashed line.",
        conv.time_rows,
        time_figs.sweep_figures,
    ),
    (
        "audits",
        "Worst-case audits",
        "Anomaly detection, disagreement search and rare-event estimates.",
        conv.audit_rows,
        audits.audit_section_figures,
    ),
    (
        "rare",
        "Rare events and triggers",
        "Rare-event estimates (naive, ITGIS, MHIS, CE) against the exact probability with their "
        "intervals, and GCG trigger search: loss over steps, held-out success and recall.",
        rare_rows,
        rare_figures,
    ),
    (
        "sandbox",
        "Embedded agency: the sandbox",
        "Agents in gridworlds whose reward mechanism is part of the world: tamper rate and the gap "
        "between observed and true return per world and agent (95% CIs over seeds), the same "
        "over training, and probes on the agents' activations that predict tampering k steps "
        "ahead.",
        sandbox_rows,
        sandbox_figures,
    ),
)


def build_sections(df: pd.DataFrame) -> list[Section]:
    """The figure sections that ``df`` has rows for, in report order."""
    out = []
    whole = conv.aggregate_rows(df)
    for sid, title, note, select, build in _SPECS:
        rows = select(df if sid == "trajectory" else whole)
        if rows.empty:
            continue
        figures = build(rows)
        if figures:
            out.append(Section(sid, title, note, tuple(figures)))
    return out


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


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if v != v else f"{v:.4g}"
    return html.escape(str(v))


def _summary_html(df: pd.DataFrame) -> str:
    summary = summarize(df)
    if summary.empty:
        return "<p class='note'>The results table is empty.</p>"
    cols = list(summary.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for rec in summary.itertuples(index=False):
        cells = []
        for c, v in zip(cols, rec):
            if c in ("layer", "step") and int(v) < 0:
                v = ""
            num = " class='num'" if isinstance(v, (int, float)) else ""
            cells.append(f"<td{num}>{_fmt(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        "<table class='summary'><thead><tr>"
        + head
        + "</tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
    )


_HEADLINE = (
    ("auroc", "test", "AUROC vs truth, test split"),
    ("auroc", "bob-hard", "AUROC vs truth, Bob-hard (train Alice-easy)"),
    ("auroc_disagree", "test", "AUROC vs truth, test examples where the persona lies"),
    ("gap_recovered_best", "bob-hard", "fraction of the AUROC gap recovered, Bob-hard"),
    ("kl", "", "lens KL to the final layer (nats), best layer"),
)


def _headline_html(df: pd.DataFrame) -> str:
    """The headline box: the few numbers a reader came for, each with metric, split, CI, n and
    its flag; the random baseline next to the reporters."""
    summary = summarize(df)
    if summary.empty:
        return ""
    rows = []
    for metric, split, label in _HEADLINE:
        sub = summary[summary["metric"] == metric]
        if split:
            sub = sub[sub["split"] == split]
        for r in sub.itertuples(index=False):
            ci = "" if r.ci_low != r.ci_low else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            where = f"layer {r.layer}" if r.layer >= 0 else ""
            flag = f"<span class='flag'>{html.escape(r.flag)}</span>" if r.flag else ""
            rows.append(
                f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(r.dataset))}</td>"
                f"<td>{html.escape(str(r.method))}</td><td class='num'>{r.best:.3f}</td>"
                f"<td class='num'>{ci}</td><td class='num'>{r.n}</td><td>{where}</td>"
                f"<td>{flag}</td></tr>"
            )
    if not rows:
        return ""
    n_flag = int((summary["flag"] != "").sum())
    warn = (
        f"<p class='warn'>{n_flag} result(s) flagged: do not read them as evidence without "
        "more test examples or a clearer margin over the random baseline.</p>"
        if n_flag
        else ""
    )
    return (
        "<section id='headline'><h2>Headline results</h2><p class='note'>Metric and split "
        "named in each row; value at the best layer chosen on that same split (optimistic); "
        "95% bootstrap CI; n = examples scored; 'random' = random-direction baseline.</p>"
        + warn
        + "<table class='summary'><thead><tr><th>result</th><th>dataset</th><th>method</th>"
        "<th>value</th><th>95% CI</th><th>n</th><th>where</th><th>flag</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></section>"
    )


def _figure_html(fig: Any, div_id: str) -> str:
    height = fig.layout.height or figs.HEIGHT
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


def _plotly_js() -> str:
    figs._go()  # a clear error when plotly is missing
    from plotly.offline import get_plotlyjs

    return str(get_plotlyjs())


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
    nav = "<a href='#headline'>Headline</a>" + nav + "<a href='#summary'>Summary</a>"
    parts = []
    for s in sections:
        divs = "".join(_figure_html(f, f"fig-{s.id}-{i}") for i, f in enumerate(s.figures))
        parts.append(
            f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>"
            f"<p class='note'>{html.escape(s.note)}</p>{divs}</section>"
        )
    parts.insert(0, _headline_html(df))
    parts.append(
        "<section id='summary'><h2>Summary: best value of each metric per split</h2>"
        "<p class='note'>Best value of every measured series (minimum for KL and losses, maximum "
        "otherwise) over layers, on the split named in its row, and where it was reached. The "
        "best layer is chosen on that same split (optimistic). Flags: fewer than "
        f"{MIN_TEST_EXAMPLES} examples, or a CI reaching the random baseline or 0.5 "
        f"({CHANCE_FLAG}).</p>" + _summary_html(df) + "</section>"
    )
    from mindscope._version import __version__

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{_plotly_js()}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><div class='meta'>{meta_html}</div></header>"
        f"<nav>{nav}</nav><main>{''.join(parts)}</main>"
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
