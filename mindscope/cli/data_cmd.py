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
from typing import Any

__all__ = ["register"]


def _check(args: argparse.Namespace) -> int:
    from mindscope.cli._args import fields_of

    fields = fields_of(args)
    from mindscope.data.check import describe_dataset

    print(
        describe_dataset(
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
    from mindscope.data.check import describe_templates

    doc = (__doc__ or "").replace("{templates}", describe_templates())
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
