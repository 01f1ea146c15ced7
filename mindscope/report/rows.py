"""Row helpers every section shares: per-position rows, transfer cells, metric names.

The report reads only the tidy results table (:mod:`mindscope.results`); each section module
(:mod:`mindscope.report.sections`) documents the rows it reads and selects them with these
helpers. Metric names are compared case-insensitively.
"""

from __future__ import annotations

import pandas as pd

from mindscope.results import extras

__all__ = [
    "BEHAVIOUR_METRICS",
    "metric_names",
    "per_position",
    "aggregate_rows",
    "is_transfer_cell",
    "time_rows",
]

BEHAVIOUR_METRICS = (
    "tamper_rate",
    "return_gap",
    "observed_return",
    "true_return",
    "first_tamper_step",
    "shortcut_rate_supervised",
    "shortcut_rate_unsupervised",
    "shortcut_rate_difference",
    "interruption_avoidance",
    "interrupted_rate",
    "wall_seconds_per_seed",
    "cpu_seconds_per_seed",
)
"""Sandbox behaviour metrics (:func:`mindscope.sandbox.metrics.episode_metrics`), in figure
order; their training curves are ``train_<metric>``. The sandbox section draws them, the
across-time sections leave them out."""


def metric_names(df: pd.DataFrame) -> pd.Series:
    """The ``metric`` column in lower case (``""`` where missing)."""
    return df["metric"].astype("string").str.lower().fillna("")


def per_position(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows measured at one token position (their ``extra`` has ``pos`` or
    ``position``): a prediction trajectory's rows."""
    if "extra" not in df or df.empty:
        return pd.Series(False, index=df.index, dtype=bool)
    maybe = df["extra"].astype("string").str.contains("pos", regex=False).fillna(False)
    out = pd.Series(False, index=df.index, dtype=bool)
    sub = df[maybe.to_numpy(bool)]
    for idx, e in zip(sub.index, extras(sub)):
        out.at[idx] = "pos" in e or "position" in e
    return out


def aggregate_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows that are not per-position (what every section but the trajectory reads)."""
    return df[~per_position(df)]


def is_transfer_cell(df: pd.DataFrame) -> pd.Series:
    """Boolean mask of rows that are cells of a transfer matrix (``extra`` has train and eval)."""
    return pd.Series(
        [("train" in e and "eval" in e) for e in extras(df)], index=df.index, dtype=bool
    )


def time_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of metrics measured at two or more distinct training ``step`` values >= 0 (per
    ``metric, method, model, dataset``), except the sandbox's behaviour metrics and their
    training curves (:data:`BEHAVIOUR_METRICS`): what the across-time sections read."""
    curves = metric_names(df).str.removeprefix("train_").isin(BEHAVIOUR_METRICS)
    sub = df[(df["step"] >= 0) & ~curves]
    if sub.empty:
        return sub
    keys = ["metric", "method", "model", "dataset"]
    n_steps = sub.groupby(keys, dropna=False)["step"].transform("nunique")
    return sub[n_steps >= 2]
