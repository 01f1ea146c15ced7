"""Named datasets -> train/test contrast pairs: the ONE loading path of ``mindscope elicit``
and ``mindscope run`` (so the same name, seed and sizes always give the same pairs).

A dataset is named by

* ``quirky-arith``: generated; ``n`` training pairs (default 1000) from the train split of
  operand pairs (seed ``seed``) and ``max(64, n // 4)`` test pairs from the disjoint test split
  (seed ``seed + 1``); the number ranges are the ``organism:quirky-arith`` ones;
* ``facts``: the 200 built-in true/false facts, shuffled with ``seed``;
* a ``.jsonl``/``.json``/``.csv`` file of contrast pairs (raw records need a ``template``);
* ``hf:NAME[:SPLIT]`` (needs the ``datasets`` package and a ``template``).

For every source but ``quirky-arith``, at most ``n`` pairs are kept (default: all), then split
into train/test by their ``meta.split`` (the split field) when it says ``train``/``test``, else
by group when pairs carry a ``meta.group`` (the group field: a group never straddles train and
test), else by a seeded shuffle (``test_fraction``) that warns when a statement's twin lands on
the other side. :func:`load_dataset_split` also says which split was used and what it warned.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from mindscope.data.fields import DEFAULT_FIELDS, Fields
from mindscope.data.loaders import SplitWarning, load_pairs, split_pairs
from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError

__all__ = [
    "BUILTIN_DATASETS",
    "DATASET_SUFFIXES",
    "QUIRKY_DEFAULT_N",
    "load_split",
    "load_dataset_split",
    "DatasetSplit",
    "dataset_name",
    "check_pairs",
]

BUILTIN_DATASETS = ("quirky-arith", "facts")
"""Dataset names understood besides files and ``hf:NAME``."""

DATASET_SUFFIXES = (".jsonl", ".json", ".csv")
"""File suffixes of contrast-pair files."""

QUIRKY_DEFAULT_N = 1000
"""Training pairs drawn from ``quirky-arith`` when ``n`` is not given."""

MIN_PAIRS = 8


def quirky_test_size(n: int) -> int:
    """Test pairs drawn alongside ``n`` quirky training pairs."""
    return max(64, n // 4)


def dataset_name(name: str) -> str:
    """Short name of a dataset for the results table: a file's stem, else the name itself."""
    if Path(name).suffix.lower() in DATASET_SUFFIXES:
        return Path(name).stem
    return name


def check_pairs(pairs: list[ContrastPair], name: str) -> None:
    """Raise :class:`MindscopeError` unless ``pairs`` can train and score reporters."""
    if len(pairs) < MIN_PAIRS:
        raise MindscopeError(f"{name}: need at least {MIN_PAIRS} contrast pairs, got {len(pairs)}")
    bad = next((i for i, p in enumerate(pairs) if p.label not in (0, 1)), None)
    if bad is not None:
        raise MindscopeError(
            f"{name}: pair {bad + 1} has no 0/1 label (got {pairs[bad].label}); every pair "
            "needs one to score reporters"
        )


@dataclass
class DatasetSplit:
    """A dataset's train/test pairs and how they were split.

    Attributes:
        train: training pairs.
        test: test pairs.
        method: ``"generated"`` (quirky-arith), ``"field"`` (the split field), ``"grouped"``
            (the group field) or ``"random"``.
        warnings: what the split warned about (e.g. twins across train/test).
    """

    train: list[ContrastPair]
    test: list[ContrastPair]
    method: str
    warnings: list[str] = field(default_factory=list)


def load_split(
    name: str,
    *,
    n: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
    template: str | None = None,
    fields: Fields = DEFAULT_FIELDS,
) -> tuple[list[ContrastPair], list[ContrastPair]]:
    """``(train, test)`` contrast pairs of dataset ``name`` (see the module docstring); the
    split's warnings are re-emitted as :class:`mindscope.data.loaders.SplitWarning`.

    Raises:
        MindscopeError: unknown name, unreadable file, records without the fields the template
            (or the pair format) needs, no label field, fewer than 8 pairs, or pairs without
            0/1 labels.
    """
    ds = load_dataset_split(
        name, n=n, seed=seed, test_fraction=test_fraction, template=template, fields=fields
    )
    for msg in ds.warnings:
        warnings.warn(msg, SplitWarning, stacklevel=2)
    return ds.train, ds.test


def load_dataset_split(
    name: str,
    *,
    n: int | None = None,
    seed: int = 0,
    test_fraction: float = 0.25,
    template: str | None = None,
    fields: Fields = DEFAULT_FIELDS,
    n_test: int | None = None,
) -> DatasetSplit:
    """:func:`load_split` returning a :class:`DatasetSplit` (pairs, split method, warnings).

    ``n_test`` sets quirky-arith's test size (default ``max(64, n // 4)``); other datasets
    ignore it (their test split is ``test_fraction`` of the pairs)."""
    if n is not None and n < 1:
        raise MindscopeError(f"{name}: n must be >= 1, got {n}")
    if n_test is not None and n_test < 1:
        raise MindscopeError(f"{name}: n_test must be >= 1, got {n_test}")
    if name == "quirky-arith":
        from mindscope.data.quirky import quirky_arith

        size = n or QUIRKY_DEFAULT_N
        train = quirky_arith(size, seed=seed, split="train")
        test = quirky_arith(n_test or quirky_test_size(size), seed=seed + 1, split="test")
        return DatasetSplit(train, test, "generated")
    if name == "facts":
        from mindscope.data.facts import facts

        pairs = facts(seed=seed)
    else:
        is_file = Path(name).suffix.lower() in DATASET_SUFFIXES
        if not name.startswith("hf:") and not is_file:
            raise MindscopeError(
                f"unknown dataset {name!r}: use {', '.join(BUILTIN_DATASETS)}, a "
                f"{'/'.join(DATASET_SUFFIXES)} file or hf:NAME[:SPLIT]"
            )
        if is_file and not Path(name).is_file():
            raise MindscopeError(f"dataset file not found: {name}")
        pairs = load_pairs(name, template, fields=fields, require_label=True)
    if n is not None:
        pairs = pairs[:n]
    check_pairs(pairs, dataset_name(name))
    splits = [str(p.meta.get("split", "")).strip().lower() for p in pairs]
    if "train" in splits and "test" in splits:
        return DatasetSplit(
            [p for p, s in zip(pairs, splits) if s == "train"],
            [p for p, s in zip(pairs, splits) if s == "test"],
            "field",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SplitWarning)
        train, test, method = split_pairs(pairs, test_fraction, seed=seed)
    return DatasetSplit(train, test, method, [str(w.message) for w in caught])
