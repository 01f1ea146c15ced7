"""The results table: the one format every analysis emits and every report reads.

Each row is one measured number::

    model, revision, step, dataset, split, layer, method, metric, value, ci_low, ci_high, n

``layer`` is an int (the sentinel ``-1`` when a metric is not per layer, e.g. a best-layer
summary or the model's own output; the embedding is layer 0 of ``resid_pre``, i.e. sites are
numbered so that ``layer = k`` means the residual stream *after* ``k`` blocks). ``step`` is the
training step (the sentinel ``-1`` when unknown: a final model, not a checkpoint). Both stay
``int64`` so that ``layer >= 0`` selects per-layer rows; in SQL write ``NULLIF(layer, -1)``.
``ci_low``/``ci_high`` are a 95% interval or NaN. Extra, analysis-specific context goes in the
optional ``extra`` column as a JSON string (e.g. the train/eval split of a transfer matrix cell).
``weights_hash`` is the content hash of the weights the row was measured on. Every text column
is written as a Parquet string column (never mixed types, never all-null).

The tables on disk (:func:`write_table`) also carry the common ``extra`` keys as typed columns,
derived from ``extra`` (:data:`TYPED_EXTRA`): ``best_layer`` (nullable int: the layer a
best-layer row was taken at), ``selection`` (how a layer was chosen: ``oracle``,
``validation``), ``train``/``eval`` (a transfer cell's distributions) and ``labels`` (what a
row is scored against: ``truth``, ``bob``); null where ``extra`` lacks the key. They make
queries over many runs' tables (DuckDB over ``runs/*/results.parquet``) plain SQL.

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

__all__ = [
    "COLUMNS",
    "TYPED_EXTRA",
    "TEXT_COLUMNS",
    "Row",
    "to_frame",
    "stamp",
    "parse_step",
    "write_table",
    "read_table",
    "with_typed_extra",
    "extra_of",
    "extras",
    "extra_values",
    "with_extra",
]

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
TEXT_COLUMNS = (
    "model",
    "revision",
    "dataset",
    "split",
    "method",
    "metric",
    "weights_hash",
    "extra",
)
"""Columns of dtype ``string``."""
TYPED_EXTRA = {
    "best_layer": "Int64",
    "selection": "string",
    "train": "string",
    "eval": "string",
    "labels": "string",
}
"""Common ``extra`` keys written as typed columns next to :data:`COLUMNS` (null if absent)."""
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


def stamp(
    df: pd.DataFrame,
    h: Any = None,
    *,
    model: str | None = None,
    revision: str | None = None,
    step: int | None = None,
    weights_hash: str | None = None,
) -> pd.DataFrame:
    """A copy of a results table with the provenance of model handle ``h`` on every row.

    Sets ``model`` (``h.name``), ``revision`` (``h.revision`` or ``""``), ``step`` (parsed from
    the revision by :func:`parse_step`) and ``weights_hash`` (``h.weights_hash``). This is the
    one place those columns are written. Keyword arguments override what ``h`` says (a sweep
    names its series and checkpoint steps itself; ``h`` may then be ``None``).
    """
    if revision is None:
        revision = (getattr(h, "revision", None) or "") if h is not None else ""
    if model is None:
        if h is None:
            raise ValueError("stamp needs a model handle or model=")
        model = str(h.name)
    if step is None:
        step = parse_step(revision)
    if weights_hash is None:
        weights_hash = str(getattr(h, "weights_hash", "") or "") if h is not None else ""
    out = df.copy()
    out["model"] = pd.Series([str(model)] * len(out), index=out.index, dtype="string")
    out["revision"] = pd.Series([str(revision)] * len(out), index=out.index, dtype="string")
    out["step"] = pd.Series([int(step)] * len(out), index=out.index, dtype="int64")
    out["weights_hash"] = pd.Series([weights_hash] * len(out), index=out.index, dtype="string")
    return out


def write_table(df: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write a results table to Parquet atomically (temp file + rename); returns the path."""
    from mindscope.io import atomic_path

    path = Path(path)
    df = _with_optional(df)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"results table is missing columns: {missing}")
    out = with_typed_extra(df[list(COLUMNS)])
    with atomic_path(path) as tmp:
        out.to_parquet(tmp, index=False)
    return path


def extra_of(value: Any) -> dict[str, Any]:
    """The ``extra`` JSON of one row as a dict (``{}`` when empty, missing or not an object).

    This and :func:`extras`, :func:`extra_values` and :func:`with_extra` are the only readers
    and writers of the ``extra`` column: nothing else parses it by hand."""
    if isinstance(value, Row):
        value = value.as_dict()["extra"]
    if not isinstance(value, str) or not value.strip():
        return {}
    try:
        d = json.loads(value)
    except json.JSONDecodeError:
        return {}
    return d if isinstance(d, dict) else {}


_extra_dict = extra_of


def extras(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Every row's ``extra`` as a dict, in row order (``[]`` for a table without the column)."""
    if "extra" not in df.columns:
        return [{} for _ in range(len(df))]
    return [extra_of(v) for v in df["extra"].tolist()]


def extra_values(df: pd.DataFrame, key: str, default: Any = None) -> pd.Series:
    """One ``extra`` key as a column (``default`` where a row lacks it), indexed like ``df``."""
    return pd.Series([e.get(key, default) for e in extras(df)], index=df.index, dtype=object)


def with_extra(df: pd.DataFrame, **more: Any) -> pd.DataFrame:
    """A copy of ``df`` with ``more`` merged into every row's ``extra`` (``more`` wins)."""
    out = df.copy()
    vals = [json.dumps({**e, **more}, sort_keys=True) for e in extras(df)]
    out["extra"] = pd.Series(vals, index=out.index, dtype="string")
    return out


def with_typed_extra(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` (with :data:`COLUMNS`) plus the :data:`TYPED_EXTRA` columns derived from
    ``extra``; text columns as ``string`` dtype (``None`` -> ``""``)."""
    out = df.copy()
    for col in TEXT_COLUMNS:
        out[col] = out[col].fillna("").astype(str).astype("string")
    extras = [_extra_dict(v) for v in out["extra"]]
    for key, dtype in TYPED_EXTRA.items():
        vals = [e.get(key) for e in extras]
        typed: list[Any]
        if dtype == "Int64":
            typed = [int(v) if isinstance(v, int | float) and v == v else None for v in vals]
        else:
            typed = [None if v is None else str(v) for v in vals]
        out[key] = pd.Series(typed, index=out.index, dtype=dtype)
    return out


def _with_optional(df: pd.DataFrame) -> pd.DataFrame:
    missing = {c: v for c, v in _OPTIONAL.items() if c not in df.columns}
    if not missing:
        return df
    return df.assign(
        **{c: pd.Series([v] * len(df), index=df.index, dtype="string") for c, v in missing.items()}
    )


def read_table(path: str | os.PathLike[str], *, typed: bool = False) -> pd.DataFrame:
    """Read a results table written by :func:`write_table`; checks its columns.

    Returns :data:`COLUMNS` (text columns as ``string``), plus the :data:`TYPED_EXTRA` columns
    when ``typed``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results table at {path}")
    df = _with_optional(pd.read_parquet(path))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a mindscope results table (missing columns {missing})")
    out = with_typed_extra(df[list(COLUMNS)])
    return out if typed else out[list(COLUMNS)]
