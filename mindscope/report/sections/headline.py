"""Headline results: the few numbers a reader came for, first on the page.

Rows: the summary (:func:`mindscope.report.summary.summarize`) lines of :data:`HEADLINE`
(metric, split): each with its metric and split named, its best-layer value, 95% CI, n and
flag, the random baseline next to the reporters.
"""

from __future__ import annotations

import pandas as pd

from mindscope.report.registry import Content, register
from mindscope.report.summary import summarize

__all__ = ["HEADLINE", "headline_table"]

HEADLINE = (
    ("auroc", "test", "AUROC vs truth, test split"),
    ("auroc", "bob-hard", "AUROC vs truth, Bob-hard (train Alice-easy)"),
    ("auroc_disagree", "test", "AUROC vs truth, test examples where the persona lies"),
    ("gap_recovered_best", "bob-hard", "fraction of the AUROC gap recovered, Bob-hard"),
    ("kl", "", "lens KL to the final layer (nats), best layer"),
)
"""(metric, split or "" for any, label) of each headline line, in order."""

COLUMNS = ["result", "dataset", "method", "value", "95% CI", "n", "where", "flag"]


def headline_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The headline lines (columns :data:`COLUMNS`, text cells) of a summary table
    (:func:`mindscope.report.summary.summarize` of the results table)."""
    rows = []
    for metric, split, label in HEADLINE:
        sub = summary[summary["metric"] == metric]
        if split:
            sub = sub[sub["split"] == split]
        for r in sub.itertuples(index=False):
            ci = "" if r.ci_low != r.ci_low else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            where = f"layer {r.layer}" if r.layer >= 0 else ""
            value = f"{r.best:.3f}"
            rows.append([label, str(r.dataset), str(r.method), value, ci, r.n, where, r.flag])
    return pd.DataFrame(rows, columns=COLUMNS)


def _render(df: pd.DataFrame) -> Content:
    summary = summarize(df)
    table = headline_table(summary)
    if table.empty:
        return Content()
    n_flag = int((summary["flag"] != "").sum())
    warn = (
        f"{n_flag} result(s) flagged: do not read them as evidence without more test examples "
        "or a clearer margin over the random baseline."
        if n_flag
        else ""
    )
    return Content(table=table, warning=warn)


register(
    "headline",
    order=0,
    title="Headline results",
    caption="Metric and split named in each row; value at the best layer chosen on that same "
    "split (optimistic); 95% bootstrap CI; n = examples scored; 'random' = random-direction "
    "baseline.",
    select=lambda df: df,
    render=_render,
)
