"""Load contrast pairs from JSONL, CSV or a Hugging Face dataset; write them as JSONL.

Two record shapes are understood:

* pair records, the JSONL format of :meth:`ContrastPair.to_dict`:
  ``{"prompt": ..., "completions": [" False", " True"], "label": 1, "meta": {...}}``;
* raw records (``{"statement": ..., "label": "true"}``), rendered with a template
  (:mod:`mindscope.data.templates`).

The ``datasets`` package is imported only by :func:`load_hf` (users with a hub).
"""

from __future__ import annotations

import csv
import json
import os
import random
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mindscope.data.pairs import ContrastPair
from mindscope.data.templates import Template, get_template, parse_label
from mindscope.errors import MindscopeError

__all__ = [
    "load_jsonl",
    "load_csv",
    "load_hf",
    "load_pairs",
    "save_jsonl",
    "pairs_from_records",
    "train_test_split",
]


def pairs_from_records(
    records: Iterable[Mapping[str, Any]],
    template: str | Template | None = None,
    *,
    source: str = "records",
) -> list[ContrastPair]:
    """Turn records into pairs: pair records directly, raw records via ``template``."""
    tpl = get_template(template)
    out = []
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise MindscopeError(f"{source}: record {i + 1} is not an object")
        try:
            if tpl is not None:
                out.append(tpl.render(rec))
            elif "prompt" in rec:
                comps = rec.get("completions") or (" False", " True")
                if isinstance(comps, str):
                    comps = json.loads(comps)
                meta = rec.get("meta") or {}
                if isinstance(meta, str):
                    meta = json.loads(meta) if meta else {}
                out.append(
                    ContrastPair(
                        prompt=str(rec["prompt"]),
                        completions=tuple(comps),  # type: ignore[arg-type]
                        label=parse_label(rec.get("label", -1)),
                        meta=meta,
                    )
                )
            else:
                raise MindscopeError(
                    f"record has no 'prompt' field (fields: {sorted(rec)}); pass a template"
                )
        except (ValueError, TypeError) as exc:
            raise MindscopeError(f"{source}: record {i + 1}: {exc}") from None
    return out


def load_jsonl(
    path: str | os.PathLike[str], template: str | Template | None = None
) -> list[ContrastPair]:
    """Pairs from a JSONL file (one JSON object a line; blank lines skipped)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no JSONL file at {p}")
    records = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise MindscopeError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from None
    return pairs_from_records(records, template, source=str(p))


def load_csv(
    path: str | os.PathLike[str], template: str | Template | None = None
) -> list[ContrastPair]:
    """Pairs from a CSV file with a header row (``prompt``/``label`` columns, or raw fields
    rendered with ``template``); a ``completions`` column, if any, holds a JSON list."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no CSV file at {p}")
    with p.open(encoding="utf-8", newline="") as fh:
        records = list(csv.DictReader(fh))
    return pairs_from_records(records, template, source=str(p))


def load_hf(
    name: str,
    template: str | Template,
    *,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    **load_kwargs: Any,
) -> list[ContrastPair]:
    """Pairs from a Hugging Face dataset (needs the optional ``datasets`` package).

    Args:
        name: hub id or local path understood by ``datasets.load_dataset``.
        template: how each row becomes a pair (e.g. ``Template("{question}", (" No", " Yes"))``).
        split: dataset split.
        config: dataset configuration name.
        limit: keep the first ``limit`` rows.
    """
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise MindscopeError(
            "loading a Hugging Face dataset needs the 'datasets' package: pip install datasets"
        ) from None
    ds = datasets.load_dataset(name, config, split=split, **load_kwargs)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return pairs_from_records(ds, template, source=f"hf:{name}")


def load_pairs(
    source: str | os.PathLike[str], template: str | Template | None = None, **kwargs: Any
) -> list[ContrastPair]:
    """Dispatch on ``source``: ``*.jsonl``/``*.json``, ``*.csv``, or ``hf:NAME[:SPLIT]``."""
    s = str(source)
    if s.startswith("hf:"):
        parts = s[3:].split(":")
        if template is None:
            raise MindscopeError("a Hugging Face dataset needs a template")
        split = parts[1] if len(parts) > 1 else kwargs.pop("split", "train")
        return load_hf(parts[0], template, split=split, **kwargs)
    suffix = Path(s).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return load_jsonl(s, template)
    if suffix == ".csv":
        return load_csv(s, template)
    raise MindscopeError(f"cannot tell the format of {s!r}: use .jsonl, .csv or hf:NAME")


def save_jsonl(pairs: Iterable[ContrastPair], path: str | os.PathLike[str]) -> Path:
    """Write pairs as JSONL (the format :func:`load_jsonl` reads back)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
    return p


def train_test_split(
    pairs: Sequence[ContrastPair], test_fraction: float = 0.25, *, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """Shuffle (seeded) and split pairs; the caller's list is not modified."""
    if not 0 < test_fraction < 1:
        raise MindscopeError(f"test_fraction must be in (0, 1), got {test_fraction}")
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    n_test = max(1, round(len(pairs) * test_fraction))
    test = [pairs[i] for i in sorted(idx[:n_test])]
    train = [pairs[i] for i in sorted(idx[n_test:])]
    return train, test
