"""The summary table: one line per measured series, its best layer and value.

Used both by the HTML report and by the CLI, which prints it after a run.
"""

from __future__ import annotations

import math

import pandas as pd

from mindscope.report.conventions import aggregate_rows, is_transfer_cell, lower_is_better

__all__ = ["summarize", "format_summary", "headline", "HEADLINE_METRICS"]

KEYS = ["model", "dataset", "split", "method", "metric"]

HEADLINE_METRICS = ("kl", "auroc", "transfer_auroc", "gap_recovered_best", "pgr")
"""Metrics the terminal summary shows (plus every ``audit*`` metric)."""


def headline(summary: pd.DataFrame) -> pd.DataFrame:
    """The lines of :func:`summarize` worth printing after a run (see :data:`HEADLINE_METRICS`)."""
    m = summary["metric"].astype("string").str.lower()
    keep = m.isin(HEADLINE_METRICS) | m.str.startswith("audit").fillna(False)
    return summary[keep.fillna(False)].reset_index(drop=True)


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Summarise a results table: per (model, dataset, split, method, metric) the best value.

    "Best" is the minimum for metrics where lower is better (KL, losses) and the maximum otherwise;
    ``layer`` and ``step`` say where it was reached, ``ci_low``/``ci_high`` are that row's CI and
    ``mean`` is the mean over the series' rows (e.g. over layers: the usual lens comparison) and
    ``rows`` counts them. Per-position (trajectory) rows and transfer-matrix cells (shown in
    their own sections) are left out. For a lens's ``kl`` the last layer is left out of both: there
    every lens is the model's own output, so its KL is 0 by construction and says nothing.
    """
    cols = [*KEYS, "best", "layer", "step", "ci_low", "ci_high", "mean", "n", "rows"]
    body = aggregate_rows(df)
    body = body[~is_transfer_cell(body)].dropna(subset=["value"])
    out = []
    for keys, grp in body.groupby(KEYS, dropna=False, sort=True):
        lower = lower_is_better(str(keys[-1]))
        if str(keys[-1]).lower() == "kl" and grp["layer"].nunique() > 1:
            grp = grp[grp["layer"] < grp["layer"].max()]
        best = grp.loc[grp["value"].idxmin() if lower else grp["value"].idxmax()]
        out.append(
            {
                **dict(zip(KEYS, keys)),
                "best": float(best["value"]),
                "layer": int(best["layer"]),
                "step": int(best["step"]),
                "ci_low": float(best["ci_low"]),
                "ci_high": float(best["ci_high"]),
                "mean": float(grp["value"].mean()),
                "n": int(best["n"]),
                "rows": len(grp),
            }
        )
    table = pd.DataFrame(out, columns=cols)
    return table.sort_values(["model", "dataset", "metric", "method"], kind="stable").reset_index(
        drop=True
    )


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
        data = f"{r.dataset} {r.split}".strip()
        lines.append((str(r.metric), str(r.method), data, _fmt(r.best), ci, where, _fmt(r.mean)))
    header = ("metric", "method", "data", "best", "95% CI", "where", "mean")
    widths = [max(len(x[i]) for x in [header, *lines]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    text = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    text += [fmt.format(*line) for line in lines]
    if len(summary) > max_rows:
        text.append(f"... {len(summary) - max_rows} more in the report")
    return "\n".join(line.rstrip() for line in text)
