"""The results table: the one format every analysis emits and every report reads.

Each row is one measured number::

    model, revision, step, dataset, split, layer, method, metric, value, ci_low, ci_high, n

``layer`` is an int (``-1`` when a metric is not per layer; the embedding is layer 0 of
``resid_pre``, i.e. sites are numbered so that ``layer = k`` means the residual stream *after*
``k`` blocks). ``step`` is the training step (``-1`` when unknown). ``ci_low``/``ci_high`` are a
95% interval or NaN. Extra, analysis-specific context goes in the optional ``extra`` column as a
JSON string (e.g. the train/eval split of a transfer matrix cell), never in new columns.
``weights_hash`` is the content hash of the weights the row was measured on.

The provenance columns (``model``, ``revision``, ``step``, ``weights_hash``) are filled in one
place, :func:`stamp`, from the model handle; analyses leave them empty.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["COLUMNS", "Row", "to_frame", "stamp", "parse_step", "write_table", "read_table"]

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
    "weights_hash",
    "extra",
)
_OPTIONAL = {"weights_hash": "", "extra": ""}
"""Columns added after the first tables were written: filled in when an older table is read."""
_STEP = re.compile(r"^step(\d+)$")


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
    weights_hash: str = ""
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
    for col in (
        "model",
        "revision",
        "dataset",
        "split",
        "method",
        "metric",
        "weights_hash",
        "extra",
    ):
        df[col] = df[col].astype("string")
    for col in ("step", "layer", "n"):
        df[col] = df[col].astype("int64")
    for col in ("value", "ci_low", "ci_high"):
        df[col] = df[col].astype("float64")
    return df


def parse_step(revision: str | None) -> int:
    """The training step a revision names: ``"step1000" -> 1000`` (Pythia's and the organisms'
    checkpoint names); ``-1`` for anything else (``None``, ``"main"``, a commit hash)."""
    m = _STEP.match(revision.strip()) if isinstance(revision, str) else None
    return int(m.group(1)) if m else -1


def stamp(df: pd.DataFrame, h: Any) -> pd.DataFrame:
    """A copy of a results table with the provenance of model handle ``h`` on every row.

    Sets ``model`` (``h.name``), ``revision`` (``h.revision`` or ``""``), ``step`` (parsed from
    the revision by :func:`parse_step`) and ``weights_hash`` (``h.weights_hash``). This is the
    one place those columns are written.
    """
    revision = getattr(h, "revision", None) or ""
    out = df.copy()
    out["model"] = pd.Series([str(h.name)] * len(out), index=out.index, dtype="string")
    out["revision"] = pd.Series([str(revision)] * len(out), index=out.index, dtype="string")
    out["step"] = pd.Series([parse_step(revision)] * len(out), index=out.index, dtype="int64")
    weights = str(getattr(h, "weights_hash", "") or "")
    out["weights_hash"] = pd.Series([weights] * len(out), index=out.index, dtype="string")
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a results table to Parquet atomically (temp file + rename); returns the path."""
    from mindscope.io import atomic_path

    path = Path(path)
    df = _with_optional(df)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table is missing columns: {missing}")
    with atomic_path(path) as tmp:
        df[list(COLUMNS)].to_parquet(tmp, index=False)
    return path


def _with_optional(df: pd.DataFrame) -> pd.DataFrame:
    missing = {c: v for c, v in _OPTIONAL.items() if c not in df.columns}
    if not missing:
        return df
    return df.assign(
        **{c: pd.Series([v] * len(df), index=df.index, dtype="string") for c, v in missing.items()}
    )


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a results table written by :func:`write_table`; checks its columns."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results table at {path}")
    df = _with_optional(pd.read_parquet(path))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a mindscope results table (missing columns {missing})")
    return df[list(COLUMNS)]
