"""A plain-text description of a dataset file: what ``mindscope data check`` prints."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["describe_dataset", "describe_templates"]


def describe_templates() -> str:
    """Every built-in template, one a line, with what it renders."""
    from mindscope.data.templates import TEMPLATES

    lines = []
    for name, t in TEMPLATES.items():
        lines.append(
            f"  {name:<10} {t.prompt!r} + {t.completions[0]!r} / {t.completions[1]!r}"
            f"  (fields: {', '.join(t.fields)})"
        )
    return "\n".join(lines)


def describe_dataset(
    path: str,
    template: str | None = None,
    *,
    fields: Any = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> str:
    """What ``mindscope data check`` prints about a dataset file: records, labels, groups, the
    split and the first rendered pair. Raises :class:`mindscope.errors.MindscopeError` on a bad
    file (the same checks every command makes when it loads the file)."""
    from mindscope.data.datasets import dataset_name, load_dataset_split
    from mindscope.data.fields import DEFAULT_FIELDS

    f = fields or DEFAULT_FIELDS
    ds = load_dataset_split(
        path, seed=seed, test_fraction=test_fraction, template=template, fields=f
    )
    pairs = ds.train + ds.test
    labels = Counter(p.label for p in pairs)
    groups = Counter(str(p.meta.get("group", "") or "") for p in pairs)
    groups.pop("", None)
    first = pairs[0]
    lines = [
        f"dataset {dataset_name(path)}: {len(pairs)} records",
        f"labels ({f.label!r}): {labels.get(1, 0)} true (1), {labels.get(0, 0)} false (0)"
        + (f", {labels[-1]} unlabelled" if labels.get(-1) else ""),
        f"groups ({f.group!r}): "
        + (
            f"{len(groups)} groups, largest {max(groups.values())} records"
            if groups
            else "none (each record is its own group)"
        ),
        f"split: {ds.method}, {len(ds.train)} train / {len(ds.test)} test",
    ]
    lines += [f"warning: {w}" for w in ds.warnings]
    if len(ds.test) < 50:
        lines.append(
            f"warning: {len(ds.test)} test examples (< 50): results will be flagged as too "
            "few to trust"
        )
    lines += [
        "first pair:",
        f"  side 0: {first.texts[0]!r}",
        f"  side 1: {first.texts[1]!r}",
        f"  label:  {first.label} (side {first.label} is correct)"
        if first.label in (0, 1)
        else "  label:  unknown",
    ]
    return "\n".join(lines)
