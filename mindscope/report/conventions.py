"""Which rows of the results table feed which section of the report.

The report reads only the tidy results table (:mod:`mindscope.results`). A section is drawn when
rows following its convention are present; every row, whatever its metric, also appears in the
summary table. The conventions (metric names are compared case-insensitively):

- **Per-position rows** (``extra`` has ``pos`` or ``position``) belong to a prediction
  trajectory: they are kept out of every other section and out of the summary.
- **Lens KL by layer**: ``metric`` in :data:`LENS_KL_METRICS`; ``method`` names the lens
  (``"logit_lens"``, ``"tuned_lens"``, ...); one row per ``layer`` with its CI.
- **Prediction trajectory**: ``metric`` in :data:`TRAJECTORY_METRICS` (``top_prob``) and
  ``extra`` ``{"pos": int, "top_token": str, "input_token": str}`` (as written by
  :meth:`mindscope.lenses.Trajectory.to_rows`); ``value`` is the top token's probability.
- **Reporter AUROC by layer**: ``metric == "auroc"`` with no ``train``/``eval`` in ``extra``;
  ``method`` names the reporter.
- **Quirky transfer matrix**: ``metric`` in :data:`TRANSFER_METRICS` (or ``"auroc"`` whose
  ``extra`` has ``train`` and ``eval``, and ``labels`` absent or ``"truth"``); one cell per
  ``(extra.train, extra.eval)``. Transfer cells stay out of the summary table. ``val_auroc``
  rows (``extra.train`` set, ``split == "validation"``: a held-out part of each training cell)
  choose the layer each method's matrix is drawn at.
- **Fraction of gap recovered**: ``metric`` in :data:`PGR_METRICS`, per ``method`` and ``layer``.
- **Across time**: any metric measured at two or more distinct training ``step`` values >= 0.
- **Worst-case audits**: ``metric`` starting with ``"audit"`` (e.g. ``audit_anomaly_auroc``,
  ``audit_disagreement_rate``) or ``split == "audit"``.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

__all__ = [
    "LENS_KL_METRICS",
    "TRAJECTORY_METRICS",
    "AUROC_METRICS",
    "TRANSFER_METRICS",
    "PGR_METRICS",
    "LOWER_IS_BETTER",
    "parse_extra",
    "per_position",
    "is_transfer_cell",
    "aggregate_rows",
    "lens_kl_rows",
    "trajectory_rows",
    "auroc_rows",
    "transfer_rows",
    "pgr_rows",
    "time_rows",
    "audit_rows",
    "lower_is_better",
]

LENS_KL_METRICS = frozenset({"kl", "kl_div", "kl_divergence", "kl_to_final", "lens_kl"})
TRAJECTORY_METRICS = frozenset({"top_prob", "trajectory_prob"})
AUROC_METRICS = frozenset({"auroc", "auc"})
TRANSFER_METRICS = frozenset({"transfer_auroc", "quirky_transfer_auroc"})
PGR_METRICS = frozenset(
    {
        "pgr",
        "fraction_gap_recovered",
        "gap_recovered",
        "gap_recovered_best",
        "fraction_of_gap_recovered",
    }
)
# Metrics where a smaller value is better (used to pick the "best" layer of the summary table).
LOWER_IS_BETTER = ("kl", "loss", "ce", "cross_entropy", "perplexity", "ppl", "ece", "brier", "err")


def _metric(df: pd.DataFrame) -> pd.Series:
    return df["metric"].astype("string").str.lower()


def parse_extra(value: Any) -> dict[str, Any]:
    """The ``extra`` column of one row as a dict (``{}`` when empty or not a JSON object)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return {}
    if isinstance(value, dict):
        return value
    try:
        out = json.loads(str(value)) if str(value).strip() else {}
    except json.JSONDecodeError:
        return {}
    return out if isinstance(out, dict) else {}


def _extras(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [parse_extra(v) for v in df["extra"]] if "extra" in df else [{} for _ in range(len(df))]


def per_position(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows measured at one token position (their ``extra`` has ``pos``)."""
    if "extra" not in df or df.empty:
        return pd.Series(False, index=df.index, dtype=bool)
    maybe = df["extra"].astype("string").str.contains("pos", regex=False).fillna(False)
    out = pd.Series(False, index=df.index, dtype=bool)
    for idx in df.index[maybe.to_numpy(bool)]:
        e = parse_extra(df.at[idx, "extra"])
        out.at[idx] = "pos" in e or "position" in e
    return out


def aggregate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that are not per-position (what every section but the trajectory reads)."""
    return df[~per_position(df)]


def is_transfer_cell(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows that are cells of a transfer matrix (``extra`` has train and eval)."""
    return pd.Series(
        [("train" in e and "eval" in e) for e in _extras(df)], index=df.index, dtype=bool
    )


def lens_kl_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the lens KL-by-layer section."""
    return df[_metric(df).isin(LENS_KL_METRICS) & (df["layer"] >= 0)]


def trajectory_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the prediction-trajectory heatmap, with ``position``/``token``/``input`` columns."""
    sub = df[_metric(df).isin(TRAJECTORY_METRICS)].copy()
    extras = _extras(sub)
    sub["position"] = [int(e.get("pos", e.get("position", -1))) for e in extras]
    sub["token"] = [str(e.get("top_token", e.get("token", ""))) for e in extras]
    sub["input"] = [str(e.get("input_token", e.get("input", ""))) for e in extras]
    sub = sub[sub["position"] >= 0]
    # the actual next token's probability and rank under the same lens (NaN where absent)
    nxt = df[_metric(df).isin(["next_prob", "next_rank"])]
    keys = ["method", "model", "layer", "position"]
    if nxt.empty or sub.empty:
        return sub.assign(next_prob=float("nan"), next_rank=float("nan"), next_token="")
    ex = _extras(nxt)
    nxt = nxt.assign(
        position=[int(e.get("pos", -1)) for e in ex],
        next_token=[str(e.get("next_token", "")) for e in ex],
        metric_name=_metric(nxt).to_numpy(),
    )
    wide = nxt.pivot_table(index=keys, columns="metric_name", values="value", aggfunc="first")
    tokens = nxt.groupby(keys)["next_token"].first()
    wide = wide.join(tokens).reset_index()
    for col in ("next_prob", "next_rank"):
        if col not in wide:
            wide[col] = float("nan")
    merged = sub.merge(wide[[*keys, "next_prob", "next_rank", "next_token"]], on=keys, how="left")
    merged["next_token"] = merged["next_token"].fillna("")
    merged.index = sub.index
    return merged


def auroc_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the reporter-AUROC-by-layer section (transfer cells excluded)."""
    return df[_metric(df).isin(AUROC_METRICS) & ~is_transfer_cell(df) & (df["layer"] >= 0)]


def transfer_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Cells of the quirky transfer matrix, with ``train``/``eval`` columns from ``extra``."""
    m = _metric(df)
    mask = m.isin(TRANSFER_METRICS) | (m.isin(AUROC_METRICS) & is_transfer_cell(df))
    sub = df[mask].copy()
    extras = _extras(sub)
    sub["train"] = [str(e.get("train", "")) for e in extras]
    sub["eval"] = [str(e.get("eval", "")) for e in extras]
    # cells scored against another label set than the truth (e.g. Bob's) are not the matrix
    truth = pd.Series([e.get("labels", "truth") == "truth" for e in extras], index=sub.index)
    cells = sub[(sub["train"] != "") & (sub["eval"] != "") & truth]
    val = df[m == "val_auroc"].copy()
    if val.empty:
        return cells
    val["train"] = [str(e.get("train", "")) for e in _extras(val)]
    val["eval"] = ""
    return pd.concat([cells, val])


def pgr_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the fraction-of-gap-recovered section."""
    return df[_metric(df).isin(PGR_METRICS)]


def time_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of metrics measured at two or more training steps (the across-time section).

    The sandbox's behaviour metrics and their training curves (``train_<metric>``) have their
    own section, also when one agent was trained at several budgets (``step``).
    """
    from mindscope.report.sandbox import BEHAVIOUR_METRICS

    metric = df["metric"].astype("string").fillna("")
    curves = metric.str.removeprefix("train_").isin(BEHAVIOUR_METRICS)
    sub = df[(df["step"] >= 0) & ~curves]
    if sub.empty:
        return sub
    keys = ["metric", "method", "model", "dataset"]
    n_steps = sub.groupby(keys, dropna=False)["step"].transform("nunique")
    return sub[n_steps >= 2]


def audit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the worst-case audit section."""
    split = df["split"].astype("string").str.lower()
    return df[_metric(df).str.startswith("audit").fillna(False) | (split == "audit").fillna(False)]


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (KL, losses, error rates)."""
    m = metric.lower()
    if m.startswith("audit"):
        m = m[len("audit") :].lstrip("_.")
    return any(m == k or m.startswith(k + "_") or m.endswith("_" + k) for k in LOWER_IS_BETTER)
