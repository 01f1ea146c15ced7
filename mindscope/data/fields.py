"""Which record fields hold the label, the text, the group and the split.

A researcher's file rarely uses mindscope's field names. :class:`Fields` names them, once, for
every loader (``--label-field``, ``--text-field``, ``--group-field``, ``--split-field`` on the
command line; ``elicit.label_field`` ... in a run config):

* ``label``: the 0/1 label (``1``/``0``, ``true``/``false``, ``yes``/``no``; default ``label``);
* ``text``: the statement; when set, its value is used as ``{statement}`` by templates and as the
  prompt of records without a ``prompt`` field (default: none, the template's own fields);
* ``group``: records sharing a group (a statement and its negation) are never split between
  train and test (default ``group``);
* ``split``: ``train``/``test`` per record, used instead of a random split (default ``split``).

Group and split values end up in each pair's ``meta`` as ``group`` and ``split``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Fields", "DEFAULT_FIELDS", "apply_fields"]


@dataclass(frozen=True)
class Fields:
    """Record field names (see the module docstring).

    Attributes:
        label: field holding the 0/1 label.
        text: field holding the statement (copied to ``statement``), or None.
        group: field naming the group a record belongs to (kept together by splits).
        split: field saying ``train``/``test``.
    """

    label: str = "label"
    text: str | None = None
    group: str = "group"
    split: str = "split"


DEFAULT_FIELDS = Fields()


def apply_fields(record: Mapping[str, Any], fields: Fields) -> dict[str, Any]:
    """A copy of ``record`` with the text field copied to ``statement`` and the group/split
    fields copied to ``group``/``split``; the label field is left where it is."""
    rec = dict(record)
    if fields.text is not None and fields.text in rec:
        rec["statement"] = rec[fields.text]
    for key, name in (("group", fields.group), ("split", fields.split)):
        if name != key and name in rec:
            rec[key] = rec[name]
    return rec
