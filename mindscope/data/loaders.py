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
import dataclasses
import json
import os
import random
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mindscope.data.fields import DEFAULT_FIELDS, Fields, apply_fields
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
    "split_pairs",
    "SplitWarning",
    "twin_key",
]


def pairs_from_records(
    records: Iterable[Mapping[str, Any]],
    template: str | Template | None = None,
    *,
    source: str = "records",
    fields: Fields = DEFAULT_FIELDS,
    require_label: bool = False,
) -> list[ContrastPair]:
    """Turn records into pairs: pair records directly, raw records via ``template``.

    ``fields`` names the label/text/group/split fields (:class:`mindscope.data.fields.Fields`).
    With ``require_label``, a file where no record has the label field is refused with an
    error naming the field looked for and the fields the records do have.
    """
    tpl = get_template(template)
    if tpl is not None and fields.label != DEFAULT_FIELDS.label:
        tpl = dataclasses.replace(tpl, label_field=fields.label)
    label_field = tpl.label_field if tpl is not None else fields.label
    out = []
    seen_label = False
    first_fields: list[str] = []
    for i, raw in enumerate(records):
        if not isinstance(raw, Mapping):
            raise MindscopeError(f"{source}: record {i + 1} is not an object")
        rec = apply_fields(raw, fields)
        if not first_fields:
            first_fields = sorted(raw)
        seen_label = seen_label or label_field in rec
        try:
            if tpl is not None:
                out.append(tpl.render(rec))
            elif "prompt" in rec or (fields.text is not None and fields.text in rec):
                prompt = rec["prompt"] if "prompt" in rec else rec[str(fields.text)]
                comps = rec.get("completions") or (" False", " True")
                if isinstance(comps, str):
                    comps = json.loads(comps)
                meta = rec.get("meta") or {}
                if isinstance(meta, str):
                    meta = json.loads(meta) if meta else {}
                meta = dict(meta)
                for key in ("group", "split"):
                    if key in rec and key not in meta:
                        meta[key] = rec[key]
                out.append(
                    ContrastPair(
                        prompt=str(prompt),
                        completions=tuple(comps),  # type: ignore[arg-type]
                        label=_label(rec.get(fields.label, -1), fields.label),
                        meta=meta,
                    )
                )
            else:
                raise MindscopeError(
                    f"record has no 'prompt' field (fields: {sorted(raw)}); pass a template "
                    "(--template) or name the text field (--text-field)"
                )
        except (ValueError, TypeError) as exc:
            raise MindscopeError(f"{source}: record {i + 1}: {exc}") from None
        except MindscopeError as exc:
            raise MindscopeError(f"{source}: record {i + 1}: {exc}") from None
    if require_label and out and not seen_label:
        raise MindscopeError(
            f"{source}: no record has the label field {label_field!r} (fields: "
            f"{first_fields}); name the label column with --label-field (run config: "
            "elicit.label_field)"
        )
    return out


def _label(value: Any, field_name: str) -> int:
    try:
        return parse_label(value)
    except MindscopeError:
        raise MindscopeError(
            f"cannot read label field {field_name!r} = {value!r} as 0/1 (true/false, yes/no, 1/0)"
        ) from None


def load_jsonl(
    path: str | os.PathLike[str],
    template: str | Template | None = None,
    *,
    fields: Fields = DEFAULT_FIELDS,
    require_label: bool = False,
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
    return pairs_from_records(
        records, template, source=str(p), fields=fields, require_label=require_label
    )


def load_csv(
    path: str | os.PathLike[str],
    template: str | Template | None = None,
    *,
    fields: Fields = DEFAULT_FIELDS,
    require_label: bool = False,
) -> list[ContrastPair]:
    """Pairs from a CSV file with a header row (``prompt``/``label`` columns, or raw fields
    rendered with ``template``); a ``completions`` column, if any, holds a JSON list."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no CSV file at {p}")
    records = _csv_records(p)
    return pairs_from_records(
        records, template, source=str(p), fields=fields, require_label=require_label
    )


def _csv_records(p: Path) -> list[dict[str, Any]]:
    """The rows of a CSV file as dicts; a row with too few or too many fields, an unclosed
    quote or a field spanning lines is a one-line error naming its line."""
    records: list[dict[str, Any]] = []
    with p.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, strict=True)
        start = 2
        try:
            for rec in reader:
                line = reader.line_num
                # a quoted field may span lines, but one holding whole rows swallowed them
                swallowed = any(
                    isinstance(v, str) and any("," in part for part in v.splitlines()[1:])
                    for v in rec.values()
                )
                if None in rec or None in rec.values() or swallowed:
                    what = (
                        "a quoted field swallows the rows after it (a stray or unclosed quote?)"
                        if swallowed
                        else f"{len(reader.fieldnames or [])} columns expected"
                    )
                    raise MindscopeError(f"{p}: line {start}: malformed CSV row: {what}")
                records.append(rec)
                start = line + 1
        except csv.Error as exc:
            raise MindscopeError(
                f"{p}: line {start}: malformed CSV ({exc}; a stray or unclosed quote?)"
            ) from None
    return records


def load_hf(
    name: str,
    template: str | Template,
    *,
    split: str = "train",
    config: str | None = None,
    limit: int | None = None,
    fields: Fields = DEFAULT_FIELDS,
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
    from mindscope.extras import require

    require("datasets", what="loading a Hugging Face dataset")
    import datasets  # type: ignore[import-not-found]

    ds = datasets.load_dataset(name, config, split=split, **load_kwargs)
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return pairs_from_records(ds, template, source=f"hf:{name}", fields=fields)


def load_pairs(
    source: str | os.PathLike[str],
    template: str | Template | None = None,
    *,
    fields: Fields = DEFAULT_FIELDS,
    require_label: bool = False,
    **kwargs: Any,
) -> list[ContrastPair]:
    """Dispatch on ``source``: ``*.jsonl``/``*.json``, ``*.csv``, or ``hf:NAME[:SPLIT]``."""
    s = str(source)
    if s.startswith("hf:"):
        parts = s[3:].split(":")
        if template is None:
            raise MindscopeError("a Hugging Face dataset needs a template")
        split = parts[1] if len(parts) > 1 else kwargs.pop("split", "train")
        return load_hf(parts[0], template, split=split, fields=fields, **kwargs)
    suffix = Path(s).suffix.lower()
    if suffix in (".jsonl", ".json"):
        return load_jsonl(s, template, fields=fields, require_label=require_label)
    if suffix == ".csv":
        return load_csv(s, template, fields=fields, require_label=require_label)
    raise MindscopeError(f"cannot tell the format of {s!r}: use .jsonl, .csv or hf:NAME")


def save_jsonl(pairs: Iterable[ContrastPair], path: str | os.PathLike[str]) -> Path:
    """Write pairs as JSONL (the format :func:`load_jsonl` reads back)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("w", encoding="utf-8") as fh:
        for pair in pairs:
            fh.write(json.dumps(pair.to_dict(), ensure_ascii=False) + "\n")
    return p


class SplitWarning(UserWarning):
    """A split that may leak: a statement's twin (its negation, a paraphrase) landed on the
    other side of a random train/test split."""


_NEGATIONS = frozenset({"not", "no", "never", "isn't", "aren't", "doesn't", "don't", "false"})
_WORD = re.compile(r"[a-z0-9']+")


def twin_key(text: str) -> str:
    """A key shared by a statement and its plain negation (``"Paris is not in France."`` and
    ``"Paris is in France."``): its lower-cased words without negation words."""
    return " ".join(w for w in _WORD.findall(text.lower()) if w not in _NEGATIONS)


def _group_of(pair: ContrastPair) -> str:
    g = pair.meta.get("group")
    return "" if g is None or str(g).strip() == "" else str(g)


def _statement(pair: ContrastPair) -> str:
    s = pair.meta.get("statement")
    return str(s) if isinstance(s, str) else pair.prompt


def train_test_split(
    pairs: Sequence[ContrastPair], test_fraction: float = 0.25, *, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """Split pairs, seeded: by group when pairs carry a ``meta.group`` (a group never straddles
    train and test), else at random, warning (:class:`SplitWarning`) when a statement and its
    twin (same words but negations, :func:`twin_key`) land on different sides.

    The caller's list is not modified; see :func:`split_pairs` for the method used.
    """
    train, test, _ = split_pairs(pairs, test_fraction, seed=seed)
    return train, test


def split_pairs(
    pairs: Sequence[ContrastPair], test_fraction: float = 0.25, *, seed: int = 0
) -> tuple[list[ContrastPair], list[ContrastPair], str]:
    """``(train, test, method)``: as :func:`train_test_split`, plus how it split
    (``"grouped"`` or ``"random"``)."""
    if not 0 < test_fraction < 1:
        raise MindscopeError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = max(1, round(len(pairs) * test_fraction))
    groups = [_group_of(p) for p in pairs]
    if any(groups):
        # ungrouped pairs are groups of one
        keys = [g or f"\0{i}" for i, g in enumerate(groups)]
        order = sorted(set(keys))
        random.Random(seed).shuffle(order)
        size: dict[str, int] = {}
        for k in keys:
            size[k] = size.get(k, 0) + 1
        test_keys: set[str] = set()
        count = 0
        for k in order:
            if count >= n_test:
                break
            test_keys.add(k)
            count += size[k]
        if len(test_keys) == len(order):
            raise MindscopeError(
                f"grouped split: only {len(order)} group(s), cannot hold out "
                f"{test_fraction:.0%} of the pairs without emptying train"
            )
        test = [p for p, k in zip(pairs, keys) if k in test_keys]
        train = [p for p, k in zip(pairs, keys) if k not in test_keys]
        return train, test, "grouped"
    idx = list(range(len(pairs)))
    random.Random(seed).shuffle(idx)
    test_idx = set(idx[:n_test])
    test = [pairs[i] for i in sorted(test_idx)]
    train = [pairs[i] for i in sorted(set(idx[n_test:]))]
    by_key: dict[str, set[bool]] = {}
    for i, p in enumerate(pairs):
        by_key.setdefault(twin_key(_statement(p)), set()).add(i in test_idx)
    twins = [k for k, sides in by_key.items() if len(sides) == 2]
    if twins:
        warnings.warn(
            f"random split: {len(twins)} statement(s) and their twin (a negation or repeat) "
            f"are split between train and test (e.g. {twins[0]!r}); a probe can then score "
            "below chance. Give each statement and its twin the same group field "
            "(--group-field) to split by group",
            SplitWarning,
            stacklevel=3,
        )
    return train, test, "random"
