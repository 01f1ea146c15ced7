"""The summary table: one line per measured series, its best layer and value.

Used both by the HTML report and by the CLI, which prints it after a run.
"""

from __future__ import annotations

import math

import pandas as pd

from mindscope.metrics_catalog import TIE_RULE, best, better_direction
from mindscope.report.rows import aggregate_rows, is_transfer_cell

__all__ = [
    "summarize",
    "format_summary",
    "headline",
    "HEADLINE_METRICS",
    "MIN_TEST_EXAMPLES",
    "CHANCE_FLAG",
    "flag_line",
    "SUMMARY_NOTE",
]

MIN_TEST_EXAMPLES = 50
"""Results scored on fewer examples than this are flagged (their CI is too wide to trust)."""

CHANCE_FLAG = "not distinguishable from chance"
"""The flag of an AUROC whose 95% CI reaches the random baseline's value (or 0.5)."""

KEYS = ["model", "dataset", "split", "method", "metric"]

SUMMARY_NOTE = (
    "Best value of every measured series over layers, on the split named in its row, and where "
    "it was reached. 'Best' follows each metric's direction (mindscope.metrics_catalog): lowest "
    "for KL, losses and calibration error, highest for AUROC and accuracy, closest to the "
    f"target for an interval coverage; {TIE_RULE}; a metric with no better side (an estimate, "
    "a count) shows its mean only. The best layer is chosen on that same split (optimistic). "
    f"Flags: fewer than {MIN_TEST_EXAMPLES} examples, or a CI reaching the random baseline or "
    f"0.5 ({CHANCE_FLAG})."
)
"""What the summary table shows (its caption in the report)."""

HEADLINE_METRICS = ("kl", "auroc", "transfer_auroc", "gap_recovered_best", "pgr")
"""Metrics the terminal summary shows (plus every ``audit*`` metric)."""


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """The lines of :func:`summarize` worth printing after a run (see :data:`HEADLINE_METRICS`)."""
    m = summary["metric"].astype("string").str.lower()
    keep = m.isin(HEADLINE_METRICS) | m.str.startswith("audit").fillna(False)
    return summary[keep.fillna(False)].reset_index(drop=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Summarise a results table: per (model, dataset, split, method, metric) the best value.

    "Best" follows each metric's direction in :mod:`mindscope.metrics_catalog` (lowest KL, loss
    or ECE; highest AUROC or accuracy; closest to its target for a coverage) with its one tie
    rule (the lowest layer, then the earliest step); a metric with no better side (an estimate,
    a count) gets ``best`` NaN and ``layer``/``step`` -1. ``layer`` and ``step`` say where the
    best was reached, ``ci_low``/``ci_high`` are that row's CI and ``mean`` is the mean over the
    series' rows (e.g. over layers: the usual lens comparison) and ``rows`` counts them.
    Per-position (trajectory) rows and transfer-matrix cells (shown in their own sections) are
    left out. For a lens's ``kl`` the last layer is left out of both: there every lens is the
    model's own output, so its KL is 0 by construction and says nothing.
    """
    cols = [*KEYS, "best", "layer", "step", "ci_low", "ci_high", "mean", "n", "rows", "flag"]
    body = aggregate_rows(df)
    body = body[~is_transfer_cell(body)].dropna(subset=["value"])
    out = []
    for keys, grp in body.groupby(KEYS, dropna=False, sort=True):
        metric = str(keys[-1])
        if metric.lower() == "kl" and grp["layer"].nunique() > 1:
            grp = grp[grp["layer"] < grp["layer"].max()]
        if better_direction(metric) == "none":
            top = {"value": math.nan, "layer": -1, "step": -1, "ci_low": math.nan,
                   "ci_high": math.nan, "n": int(grp["n"].max())}  # fmt: skip
        else:
            top = best(grp, metric).to_dict()
        out.append(
            {
                **dict(zip(KEYS, keys)),
                "best": float(top["value"]),
                "layer": int(top["layer"]),
                "step": int(top["step"]),
                "ci_low": float(top["ci_low"]),
                "ci_high": float(top["ci_high"]),
                "mean": float(grp["value"].mean()),
                "n": int(top["n"]),
                "rows": len(grp),
                "flag": "",
            }
        )
    table = pd.DataFrame(out, columns=cols)
    table["flag"] = _flags(table)
    return table.sort_values(["model", "dataset", "metric", "method"], kind="stable").reset_index(
        drop=True
    )


def _is_auroc(metric: str) -> bool:
    m = metric.lower()
    return m.startswith("auroc") or m == "transfer_auroc"


def flag_line(
    metric: str,
    method: str,
    best: float,
    ci_low: float,
    ci_high: float,
    n: int,
    random_best: float | None,
) -> str:
    """Why an AUROC result should not be trusted as it stands ("" when it can be):
    fewer than :data:`MIN_TEST_EXAMPLES` examples, a CI reaching the random baseline's best
    value or 0.5 (:data:`CHANCE_FLAG`), or a CI entirely below 0.5 (anti-predictive: usually a
    statement's twin on the other side of the split)."""
    if not _is_auroc(metric) or method in ("random", "lm"):
        return ""
    flags = []
    if 0 < n < MIN_TEST_EXAMPLES:
        flags.append(f"only {n} test examples (< {MIN_TEST_EXAMPLES})")
    lo = ci_low if not math.isnan(ci_low) else best
    hi = ci_high if not math.isnan(ci_high) else best
    if hi < 0.5:
        flags.append("below chance: twins across train/test? split by group")
    elif random_best is not None and not math.isnan(random_best) and lo <= random_best:
        flags.append(f"{CHANCE_FLAG} (random baseline {random_best:.3f} within the CI)")
    elif lo <= 0.5:
        flags.append(f"{CHANCE_FLAG} (CI reaches 0.5)")
    return "; ".join(flags)


def _flags(table: pd.DataFrame) -> list[str]:
    rand = {
        (r.model, r.dataset, r.split, r.metric): float(r.best)
        for r in table.itertuples(index=False)
        if r.method == "random"
    }
    return [
        flag_line(
            str(r.metric),
            str(r.method),
            float(r.best),
            float(r.ci_low),
            float(r.ci_high),
            int(r.n),
            rand.get((r.model, r.dataset, r.split, r.metric)),
        )
        for r in table.itertuples(index=False)
    ]


def _fmt(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_summary(summary: pd.DataFrame, max_rows: int = 40) -> str:
    """A plain-text rendering of :func:`summarize`'s table for the terminal."""
    if summary.empty:
        return "(no results)"
    lines = []
    for r in summary.head(max_rows).itertuples(index=False):
        ci = f"[{_fmt(r.ci_low)}, {_fmt(r.ci_high)}]" if not math.isnan(r.ci_low) else ""
        where = f"layer {r.layer}" if r.layer >= 0 else ""
        if r.step >= 0:
            where = f"{where} step {r.step}".strip()
        flag = str(getattr(r, "flag", "") or "")
        lines.append(
            (
                str(r.metric),
                str(r.method),
                str(r.dataset) or "-",
                str(r.split) or "-",
                _fmt(r.best),
                ci,
                where,
                _fmt(r.mean),
                flag,
            )
        )
    header = ("metric", "method", "dataset", "split", "best", "95% CI", "where", "mean", "flag")
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    text = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    text += [fmt.format(*line) for line in lines]
    if len(summary) > max_rows:
        text.append(f"... {len(summary) - max_rows} more in the report")
    return "\n".join(line.rstrip() for line in text)
