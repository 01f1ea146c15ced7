"""The results table: the one format every analysis emits and every report reads.

Each row is one measured number::

    model, revision, step, dataset, split, layer, method, metric, value, ci_low, ci_high, n

``layer`` is an int (``-1`` when a metric is not per layer; the embedding is layer 0 of
``resid_pre``, i.e. sites are numbered so that ``layer = k`` means the residual stream *after*
``k`` blocks). ``step`` is the training step (``-1`` when unknown). ``ci_low``/``ci_high`` are a
95% interval or NaN. Extra, analysis-specific context goes in the optional ``extra`` column as a
JSON string (e.g. the train/eval split of a transfer matrix cell), never in new columns.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["COLUMNS", "Row", "to_frame", "write_table", "read_table"]

COLUMNS = (
    "model",
    "revision",
    "step",
    "dataset",
    "split",
    "layer",
    "method",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "n",
    "extra",
)


@dataclass(frozen=True)
class Row:
    """One measured number of the results table (see module docstring for each column)."""

    metric: str
    value: float
    method: str = ""
    layer: int = -1
    model: str = ""
    revision: str = ""
    step: int = -1
    dataset: str = ""
    split: str = ""
    ci_low: float = math.nan
    ci_high: float = math.nan
    n: int = 0
    extra: str = ""
    _extra: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict with exactly :data:`COLUMNS` as keys."""
        d = asdict(self)
        extra = d.pop("_extra")
        if extra and not d["extra"]:
            d["extra"] = json.dumps(dict(extra), sort_keys=True)
        return {k: d[k] for k in COLUMNS}


def to_frame(rows: Iterable[Row | Mapping[str, Any]]) -> pd.DataFrame:
    """Build a results table (a DataFrame with :data:`COLUMNS`, typed) from rows or dicts."""
    recs = []
    for r in rows:
        rec = r.as_dict() if isinstance(r, Row) else dict(r)
        unknown = set(rec) - set(COLUMNS)
        if unknown:
            raise ValueError(f"results row has unknown columns: {sorted(unknown)}")
        if "metric" not in rec or "value" not in rec:
            raise ValueError("results row needs at least 'metric' and 'value'")
        recs.append({k: rec.get(k, Row.__dataclass_fields__[k].default) for k in COLUMNS})
    df = pd.DataFrame.from_records(recs, columns=list(COLUMNS))
    for col in ("model", "revision", "dataset", "split", "method", "metric", "extra"):
        df[col] = df[col].astype("string")
    for col in ("step", "layer", "n"):
        df[col] = df[col].astype("int64")
    for col in ("value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    return df


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a results table to Parquet atomically (temp file + rename); returns the path."""
    path = Path(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table is missing columns: {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        df[list(COLUMNS)].to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a results table written by :func:`write_table`; checks its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results table at {path}")
    df = pd.read_parquet(path)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a mindscope results table (missing columns {missing})")
    return df
