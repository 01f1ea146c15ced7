"""Erasure audit: probe AUROCs before and after LEACE, distortion against the oracle, answers.

Rows (written by the ``erase`` stage): ``linear_auroc_before/after``, ``mlp_auroc_before/after``,
``distortion_ratio`` per layer; ``answer_follows`` per layer (``method`` ``none`` = before).
"""

from __future__ import annotations

import pandas as pd

from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["erasure_rows", "erasure_content"]

_AUDIT = ["linear_auroc_before", "linear_auroc_after", "mlp_auroc_after", "distortion_ratio"]


def erasure_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the erasure section (the ``erase`` stage's)."""
    stage = extra_values(df, "stage")
    return df[(stage == "erase") & metric_names(df).isin([*_AUDIT, "answer_follows"])]


def _cell(r: pd.Series) -> str:
    return f"{r['value']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def erasure_content(rows: pd.DataFrame) -> Content:
    """One table row per layer: the audit figures with their CIs, and which labels the answers
    follow after erasure (all prompts, where the reference labels differ)."""
    audit = rows[rows["metric"].isin(_AUDIT)]
    table = pd.DataFrame({"layer": sorted(audit["layer"].unique())})
    for metric in _AUDIT:
        m = audit[audit["metric"] == metric].set_index("layer")
        table[metric] = [_cell(m.loc[lay]) if lay in m.index else "" for lay in table["layer"]]
    fol = rows[rows["metric"] == "answer_follows"].copy()
    fol["reference"] = extra_values(fol, "reference")
    fol["prompts"] = extra_values(fol, "prompts")
    fol = fol[fol["prompts"] == "all"]
    for ref in sorted(fol["reference"].dropna().unique()):
        f = fol[fol["reference"] == ref].set_index("layer")
        table[f"follows {ref}"] = [
            f"{f.loc[lay, 'value']:.3f}" if lay in f.index else "" for lay in table["layer"]
        ]
    before = fol[fol["layer"] < 0]
    warn = ""
    if not before.empty:
        warn = "Before erasure: " + ", ".join(
            f"follows {r.reference} {r.value:.3f}" for r in before.itertuples()
        )
    concept = extra_values(audit, "concept").dropna()
    caption = f"Concept erased: {concept.iloc[0]}." if not concept.empty else ""
    return Content((), caption=caption, table=table, warning=warn)


register(
    "erasure-audit",
    order=81,
    title="Concept erasure: LEACE audit",
    caption="Per layer: a logistic probe's held-out AUROC for the concept before and after "
    "LEACE (after: 0.5, its CI covering it, when erasure works), a one-hidden-layer MLP "
    "probe's after (what a non-linear reader still finds), the mean squared edit over the "
    "oracle LEACE's (about 1 or more: the oracle is the least-squares floor), and the share "
    "of answers equal to each reference label with the eraser inside the forward pass.",
    select=erasure_rows,
    render=erasure_content,
)
