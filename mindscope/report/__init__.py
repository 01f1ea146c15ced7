"""Results table -> plots -> one self-contained HTML report.

The report reads only the results table (:mod:`mindscope.results`); it imports no model, store or
instrument. Which rows feed which section is described in :mod:`mindscope.report.conventions`.

    from mindscope.report import write_report
    write_report(read_table("runs/.../results.parquet"), "report.html", title="my run")
"""

from __future__ import annotations

from mindscope.report.example import example_table
from mindscope.report.page import Section, build_sections, render_html, write_report
from mindscope.report.summary import format_summary, headline, summarize

__all__ = [
    "Section",
    "build_sections",
    "render_html",
    "write_report",
    "summarize",
    "format_summary",
    "headline",
    "example_table",
]
