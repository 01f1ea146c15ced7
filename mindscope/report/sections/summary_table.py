"""Summary: the best value of every measured series, last on the page.

Rows: every row of the table but per-position and transfer-matrix rows (see
:func:`mindscope.report.summary.summarize`); the section is always drawn (an empty table says so).
"""

from __future__ import annotations

import pandas as pd

from mindscope.report.registry import Content, register
from mindscope.report.summary import SUMMARY_NOTE, summarize

__all__: list[str] = []


def _render(df: pd.DataFrame) -> Content:
    summary = summarize(df)
    if summary.empty:
        return Content(caption="The results table is empty.")
    return Content(table=summary)


register(
    "summary",
    order=1000,
    title="Summary: best value of each metric per split",
    caption=SUMMARY_NOTE,
    select=lambda df: df,
    render=_render,
    applies=lambda df: True,
)
