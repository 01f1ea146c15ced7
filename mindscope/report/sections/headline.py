"""Headline results: the few numbers a reader came for, first on the page.

Rows: the summary (:func:`mindscope.report.summary.summarize`) lines of :data:`HEADLINE`
(metric, split): each with its metric and split named, its best-layer value, 95% CI, n and
flag, the random baseline next to the reporters; and the quirky transfer headline
(:func:`bob_hard_lines`): the rows ``auroc_selected``, ``auroc_null_p95``, ``null_pvalue`` and
``gap_recovered_selected`` the elicit stage writes for the reporters fitted on Alice-easy and
scored on Bob-hard at the layer chosen on validation data, with the model's own answers.
"""

from __future__ import annotations

import math

import pandas as pd

from mindscope.report.registry import Content, register
from mindscope.report.rows import final_step
from mindscope.report.summary import MIN_TEST_EXAMPLES, summarize
from mindscope.results import extras

__all__ = ["HEADLINE", "headline_table", "selected_lines", "bob_hard_lines", "test_lines"]

HEADLINE = (
    ("auroc", "test", "AUROC vs truth, test split (best layer on that split)"),
    ("auroc_disagree", "test", "AUROC vs truth, test examples where the persona lies"),
    ("kl", "", "lens KL to the final layer (nats), best layer"),
)
"""(metric, split or "" for any, label) of each summary line in the headline, in order."""

COLUMNS = ["result", "dataset", "method", "value", "95% CI", "n", "where", "against chance", "flag"]

SELECTED = ("auroc_selected", "auroc_null_p95", "null_pvalue", "gap_recovered_selected")
"""Metrics of the quirky transfer headline (one row per method and selected layer)."""


def _num(v: float, fmt: str = "{:.3f}") -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else fmt.format(v)


def selected_lines(df: pd.DataFrame) -> pd.DataFrame:
    """The validation-chosen headline lines of a results table, one per (dataset, evaluation
    split, method): columns
    ``dataset, method, layer, auroc, ci_low, ci_high, n, null_p95, p_value, n_directions,
    gap, gap_chance, gap_null_p95, lm_auroc_bob, lm_auroc_alice, train, eval, selection``
    (NaN where a row is missing); empty when the table has no such rows. Read from the rows
    the elicit stage writes (:data:`SELECTED`), nothing recomputed; the terminal
    (``mindscope runs``) and the report both show these."""
    cols = ["dataset", "method", "layer", "auroc", "ci_low", "ci_high", "n", "null_p95",
            "p_value", "n_directions", "gap", "gap_chance", "gap_null_p95", "lm_auroc_bob",
            "lm_auroc_alice", "train", "eval", "selection"]  # fmt: skip
    sub = final_step(df[df["metric"].astype(str).isin(SELECTED)])  # a sweep: its final step
    out = []
    keys = ["dataset", "split", "method"]
    for (dataset, _split, method), grp in sub.groupby(keys, sort=True, dropna=False):
        by = {str(r.metric): (r, e) for r, e in zip(grp.itertuples(index=False), extras(grp))}
        if "auroc_selected" not in by:
            continue
        a, ex = by["auroc_selected"]
        g, gex = by.get("gap_recovered_selected", (None, {}))
        p95 = float(by["auroc_null_p95"][0].value) if "auroc_null_p95" in by else math.nan
        pval = float(by["null_pvalue"][0].value) if "null_pvalue" in by else math.nan
        out.append(
            {
                "dataset": dataset,
                "method": method,
                "layer": int(a.layer),
                "auroc": float(a.value),
                "ci_low": float(a.ci_low),
                "ci_high": float(a.ci_high),
                "n": int(a.n),
                "null_p95": p95,
                "p_value": pval,
                "n_directions": int(ex.get("n_directions", 0)),
                "gap": float(g.value) if g is not None else math.nan,
                "gap_chance": float(gex.get("chance", math.nan)),
                "gap_null_p95": float(gex.get("null_p95", math.nan)),
                "lm_auroc_bob": float(gex.get("lm_auroc_bob", math.nan)),
                "lm_auroc_alice": float(gex.get("lm_auroc_alice", math.nan)),
                "train": str(ex.get("train", "")),
                "eval": str(ex.get("eval", "")),
                "selection": str(ex.get("selection", "")),
            }
        )
    return pd.DataFrame(out, columns=cols)


def bob_hard_lines(df: pd.DataFrame) -> pd.DataFrame:
    """The transfer lines of :func:`selected_lines` (a reporter fitted on one quirky cell,
    scored on another, e.g. Alice-easy -> Bob-hard)."""
    lines = selected_lines(df)
    return lines[lines["eval"] != "test"].reset_index(drop=True)


def test_lines(df: pd.DataFrame) -> pd.DataFrame:
    """The test-split lines of :func:`selected_lines` (reporters fitted on the training split,
    scored on the test split, each at the layer chosen on held-out training pairs)."""
    lines = selected_lines(df)
    return lines[lines["eval"] == "test"].reset_index(drop=True)


def _bob_rows(lines: pd.DataFrame) -> list[list[object]]:
    rows: list[list[object]] = []
    for r in lines.itertuples(index=False):
        how = "held-out training pairs" if r.eval == "test" else "validation"
        where = f"layer {r.layer} (chosen on {how})"
        ci = "" if math.isnan(r.ci_low) else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
        chance = (
            f"0.5; {r.n_directions} random directions: p95 {_num(r.null_p95)}, "
            f"p = {_num(r.p_value)}"
        )
        flags = []
        if r.method != "random" and 0 < r.n < MIN_TEST_EXAMPLES:
            flags.append(f"only {r.n} test examples (< {MIN_TEST_EXAMPLES})")
        if r.method != "random" and not math.isnan(r.p_value) and r.p_value > 0.05:
            flags.append("not above the random-direction null (p > 0.05)")
        flag = "; ".join(flags)
        label = (
            "AUROC vs truth, test split"
            if r.eval == "test"
            else f"AUROC vs truth, {r.eval} test, reporter fitted on {r.train}"
        )
        rows.append([label, r.dataset, r.method, f"{r.auroc:.3f}", ci, r.n, where, chance, flag])
    for r in lines.itertuples(index=False):
        if math.isnan(r.gap):
            continue
        chance = f"constant probe {_num(r.gap_chance)}; random-direction p95 {_num(r.gap_null_p95)}"
        label = f"fraction of the gap recovered, {r.eval} test (same layer)"
        where = f"layer {r.layer} (chosen on validation)"
        rows.append([label, r.dataset, r.method, f"{r.gap:.3f}", "", r.n, where, chance, ""])
    first = lines.drop_duplicates("dataset")
    for r in first.itertuples(index=False):
        if not math.isnan(r.lm_auroc_bob):
            label = f"AUROC vs truth, {r.eval} test, the model's own answers"
            rows.append(
                [label, r.dataset, "model", f"{r.lm_auroc_bob:.3f}", "", r.n, "", "0.5", ""]
            )
    return rows


def headline_table(summary: pd.DataFrame, df: pd.DataFrame | None = None) -> pd.DataFrame:
    """The headline lines (columns :data:`COLUMNS`, text cells) of a summary table
    (:func:`mindscope.report.summary.summarize` of the results table ``df``), with the
    Bob-hard lines of ``df`` (:func:`bob_hard_lines`) after the first one."""
    rows: list[list[object]] = []
    chosen = test_lines(df) if df is not None else pd.DataFrame()
    for i, (metric, split, label) in enumerate(HEADLINE):
        if i == 0 and not chosen.empty:  # the layer chosen on validation, with its null
            rows += _bob_rows(chosen)
            sub = summary.iloc[0:0]
        else:
            sub = summary[summary["metric"] == metric]
        if split:
            sub = sub[sub["split"] == split]
        for r in sub.itertuples(index=False):
            ci = "" if r.ci_low != r.ci_low else f"[{r.ci_low:.3f}, {r.ci_high:.3f}]"
            where = f"layer {r.layer}" if r.layer >= 0 else ""
            chance = "0.5" if metric.startswith("auroc") else ""
            value = f"{r.best:.3f}"
            rows.append(
                [label, str(r.dataset), str(r.method), value, ci, r.n, where, chance, r.flag]
            )
        if i == 0 and df is not None:
            lines = bob_hard_lines(df)
            rows += _bob_rows(lines)
            if lines.empty:  # a table without the validation choice: its oracle gap, so named
                for r in summary[summary["metric"] == "gap_recovered_best"].itertuples():
                    label = (
                        f"fraction of the AUROC gap recovered, {r.split} (oracle: best layer "
                        f"on {r.split} itself)"
                    )
                    value = f"{r.best:.3f}"
                    rows.append([label, str(r.dataset), str(r.method), value, "", r.n, "", "",
                                 r.flag])  # fmt: skip
    return pd.DataFrame(rows, columns=COLUMNS)


def _render(df: pd.DataFrame) -> Content:
    df = final_step(df)  # a sweep: the final checkpoint's figures
    summary = summarize(df)
    table = headline_table(summary, df)
    if table.empty:
        return Content()
    n_flag = int((table["flag"] != "").sum())
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
    caption="Metric and split named in each row. Test-split AUROC lines: each reporter "
    "fitted on the "
    "training split, at the layer where a refit scores best against the truth on 20% of the "
    "training split held out, drawn like the test split (without such rows: the best layer on"
    " the test split itself, optimistic, so named). Transfer lines (reporter fitted on Alice-"
    "easy, scored on Bob-hard's test examples): one layer per method, chosen on validation "
    "data (held-out training examples scored against the truth), never on the test split. "
    "'Against chance' gives 0.5 and the 95th percentile of 200 seeded random directions at "
    "that layer (signs fitted on the same training examples) with the reporter's one-sided "
    "p-value against them. Fraction of gap recovered: 1 = reads the truth in Bob's contexts "
    "as well as the model answers for Alice, 0 = no better than the model's own answers; a "
    "constant probe scores the 'constant probe' value. 95% bootstrap CI; n = examples scored."
    " A sweep shows its final checkpoint.",
    select=lambda df: df,
    render=_render,
)
