"""Results table -> one module per section -> one self-contained HTML report.

The report reads only the results table (:mod:`mindscope.results`); it imports no model, store or
instrument.

    from mindscope.report import write_report
    write_report(read_table("runs/.../results.parquet"), "report.html", title="my run")

How it is built:

- :mod:`mindscope.report.sections` holds one module per section (lens KL, trajectory, reporters,
  transfer, gap recovered, across time, audits, rare events, sandbox, headline, summary). Each
  registers itself with :func:`register`: name, order on the page, title and caption, the rows
  it reads, whether it applies, and a render function (rows -> figures, caption, optional
  table).
- :mod:`mindscope.report.page` only assembles: it asks the registry which sections apply to the
  table and lays them out in order.
- :mod:`mindscope.report.plot` is the plotting kit (palette, layout, one colour per method,
  figure helpers) and the only module that imports Plotly.
- :mod:`mindscope.report.rows` holds the row helpers sections share;
  :mod:`mindscope.report.summary` the summary table the CLI prints too;
  :mod:`mindscope.metrics_catalog` the one name and direction of every metric.

**Adding a section** (a new instrument's rows) is adding one module to
``mindscope/report/sections/`` that calls :func:`register` once; nothing else changes. It draws
through :mod:`mindscope.report.plot` and imports no other section.
"""

from __future__ import annotations

from mindscope.report.page import render_html, table_html, write_report
from mindscope.report.registry import (
    Content,
    Section,
    SectionSpec,
    build_sections,
    register,
    registered,
)
from mindscope.report.summary import format_summary, headline, summarize

__all__ = [
    "Content",
    "Section",
    "SectionSpec",
    "build_sections",
    "register",
    "registered",
    "render_html",
    "table_html",
    "write_report",
    "summarize",
    "format_summary",
    "headline",
]
