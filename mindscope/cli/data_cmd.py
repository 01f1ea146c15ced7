"""``mindscope data``: the dataset format, and a check of your own file.

    mindscope data check FILE [--template T] [--label-field F] [--text-field F]
                              [--group-field F] [--split-field F]

A dataset is a JSONL file (one JSON object a line) or a CSV file (header row) of records. Three
record shapes are read:

1. Raw statements, rendered by a template (``--template truefalse``)::

       {"statement": "Paris is in France.", "label": true, "group": "paris"}
       {"statement": "Paris is not in France.", "label": false, "group": "paris"}

   CSV::

       statement,label,group
       Paris is in France.,true,paris
       Paris is not in France.,false,paris

2. Prompts: a ``prompt`` field (or the ``--text-field``) and a label, with the default
   completions " False" / " True"::

       {"prompt": "Is Paris in France? Answer:", "label": 1}

3. Contrast pairs, the format mindscope writes (``completions`` side 0 then side 1; label 1
   when side 1 is correct)::

       {"prompt": "2 + 2 = 4. Alice:", "completions": [" False", " True"], "label": 1,
        "meta": {"group": "g1"}}

Labels: 1/0, true/false, yes/no (any case); -1, "" or unknown for unlabelled records. Fields
(defaults in brackets): ``--label-field`` [label], ``--text-field`` [none: the template's own
fields; when set, its value is the template's {statement} or the prompt], ``--group-field``
[group: records sharing a group never straddle train and test], ``--split-field`` [split:
``train``/``test`` per record replaces the random split]. Every other field goes to the pair's
``meta`` and to ``predictions.parquet``.

Built-in templates (side 0 / side 1):

{templates}

or any ``str.format`` pattern over the record's fields, e.g.
``--template "Q: {question} A: {answer}. Correct?"`` (completions " False" / " True").

Splits: the split field when it says train/test; else by group when records carry one; else
a seeded random split (``--test-fraction``) that warns when a statement and its twin (the same
words but a negation) land on different sides: a probe can then score below chance. At least 8
labelled pairs are needed; fewer than 50 test examples gives flagged results.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from typing import Any

__all__ = ["register", "check_file", "templates_text"]


def templates_text() -> str:
    """Every built-in template, one a line, with what it renders."""
    from mindscope.data.templates import TEMPLATES

    lines = []
    for name, t in TEMPLATES.items():
        lines.append(
            f"  {name:<10} {t.prompt!r} + {t.completions[0]!r} / {t.completions[1]!r}"
            f"  (fields: {', '.join(t.fields)})"
        )
    return "\n".join(lines)


def check_file(
    path: str,
    template: str | None = None,
    *,
    fields: Any = None,
    test_fraction: float = 0.25,
    seed: int = 0,
) -> str:
    """The report ``mindscope data check`` prints: records, labels, groups, the split and the
    first rendered pair. Raises :class:`mindscope.errors.MindscopeError` on a bad file."""
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


def _check(args: argparse.Namespace) -> int:
    from mindscope.cli._args import fields_of

    fields = fields_of(args)
    print(
        check_file(
            args.file,
            args.template,
            fields=fields,
            test_fraction=args.test_fraction,
            seed=args.seed,
        )
    )
    return 0


def _help(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace) -> int:
        parser.print_help(sys.stdout)
        return 0

    return show


def register(subparsers: Any) -> None:
    """Add ``data`` and ``data check``."""
    doc = (__doc__ or "").replace("{templates}", templates_text())
    p = subparsers.add_parser(
        "data",
        help="the dataset format (JSONL/CSV) and `data check FILE`",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.set_defaults(func=_help(p))
    sub = p.add_subparsers(dest="data_command", metavar="{check}")
    c = sub.add_parser(
        "check",
        help="load FILE as elicit would: records, labels, groups, split, first pair",
        description="Load FILE exactly as `mindscope elicit --dataset FILE` would and print how "
        "many records, labels and groups it has, how it will be split, and the first rendered "
        "pair. Bad files get a one-line error naming the problem.",
    )
    c.add_argument("file", metavar="FILE", help="a .jsonl/.json/.csv file")
    c.add_argument("--template", default=None, help="template name or '{field}' pattern")
    c.add_argument("--label-field", default="label", help="field holding the label")
    c.add_argument("--text-field", default=None, help="field holding the statement")
    c.add_argument("--group-field", default="group", help="field grouping records")
    c.add_argument("--split-field", default="split", help="field saying train/test")
    c.add_argument("--test-fraction", type=float, default=0.25)
    c.add_argument("--seed", type=int, default=0)
    c.set_defaults(func=_check)
