"""Weak-to-strong generalization: PGR per supervisor x student method, slices, misfit vs gain.

Rows: the ``w2s`` stage's seed-aggregated test rows (``extra.supervisor`` set, ``extra.seed ==
"all"``, ``split == "test"``): ``pgr_auroc`` (with its bootstrap interval, NaN and
``extra.refused`` when refused), ``auroc_weak``/``auroc_student``/``auroc_ceiling``,
``acc_weak_right``/``acc_weak_wrong``, ``misfit``/``gain``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.results import extras

__all__ = ["W2S_METRICS", "w2s_rows", "w2s_render"]

W2S_METRICS = frozenset(
    {
        "pgr_auroc",
        "auroc_weak",
        "auroc_student",
        "auroc_ceiling",
        "acc_weak_right",
        "acc_weak_wrong",
        "misfit",
        "gain",
    }
)
"""Metrics of the weak-to-strong section."""


def w2s_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Seed-aggregated test rows of the ``w2s`` stage."""
    if df.empty:
        return df
    ex = list(extras(df))
    keep = [
        "supervisor" in e and e.get("seed") == "all" and m in W2S_METRICS and s == "test"
        for e, m, s in zip(ex, df["metric"], df["split"], strict=True)
    ]
    return df[np.array(keep, dtype=bool)]


def w2s_render(rows: pd.DataFrame) -> Content:
    """A bar per supervisor x method (PGR with its interval) and the table of every cell."""
    ex = list(extras(rows))
    d = rows.assign(
        supervisor=[e.get("supervisor", "") for e in ex],
        refused=[e.get("refused", "") for e in ex],
    )
    g = plot.go()
    fig = g.Figure()
    pgr = d[d["metric"] == "pgr_auroc"]
    for method, grp in pgr.groupby("method", sort=True):
        fig.add_trace(
            g.Bar(
                name=str(method),
                x=list(grp["supervisor"]),
                y=grp["value"],
                marker={"color": plot.method_colour(str(method))},
                error_y=plot.ci_error_bars(grp),
            )
        )
    fig.add_hline(y=1.0, line={"dash": "dot", "color": "#888"}, annotation_text="ceiling")
    fig.add_hline(y=0.0, line={"color": "#888"})
    plot.layout(fig, "Performance gap recovered (test AUROC)", "supervisor", "PGR", barmode="group")
    wide = d.pivot_table(
        index=["supervisor", "method"], columns="metric", values="value", aggfunc="first"
    )
    table = []
    for (sup, method), r in wide.iterrows():
        p = pgr[(pgr["supervisor"] == sup) & (pgr["method"] == method)].iloc[0]
        shown = (
            f"{p['value']:.2f} [{p['ci_low']:.2f}, {p['ci_high']:.2f}]"
            if np.isfinite(p["value"])
            else f"refused: {p['refused']}"[:150]
        )
        table.append(
            {
                "supervisor": sup,
                "method": method,
                "weak": round(float(r.get("auroc_weak", np.nan)), 3),
                "student": round(float(r.get("auroc_student", np.nan)), 3),
                "ceiling": round(float(r.get("auroc_ceiling", np.nan)), 3),
                "PGR [95% CI]": shown,
                "acc weak-right": round(float(r.get("acc_weak_right", np.nan)), 3),
                "acc weak-wrong": round(float(r.get("acc_weak_wrong", np.nan)), 3),
                "misfit": round(float(r.get("misfit", np.nan)), 3),
                "gain": round(float(r.get("gain", np.nan)), 3),
            }
        )
    n_refused = int(pgr["value"].isna().sum())
    warning = f"{n_refused} PGR value(s) refused (see the table)" if n_refused else ""
    return Content(figures=(fig,), table=pd.DataFrame(table), warning=warning)


register(
    "w2s",
    order=55,
    title="Weak-to-strong: gap recovered by supervisor and student",
    caption="A strong model learns from a weak supervisor's labels; every score is against "
    "the truth on the test split. PGR = (student - weak) / (ceiling - weak) on AUROC, the "
    "ceiling being the same student fitted on the truth; bars are 95% bootstrap intervals "
    "over seeds and test examples, and a PGR whose gap is within noise (or whose ceiling is "
    "below the weak supervisor) is refused, not drawn. In the table, 'acc weak-wrong' is the "
    "student's accuracy where the supervisor is wrong (low: it imitates the error); misfit "
    "and gain are Charikar et al.'s squared-loss quantities (their theorem predicts gain >= "
    "misfit).",
    select=w2s_rows,
    render=w2s_render,
)
