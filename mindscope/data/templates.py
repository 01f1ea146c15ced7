"""Prompt templates: turn raw records (dicts) into :class:`ContrastPair` objects.

A :class:`Template` is a ``str.format`` pattern over a record's fields plus the two
completions. ``Template("{statement} This statement is", (" false", " true"))`` renders
``{"statement": "Paris is in France.", "label": 1}`` as the pair
``"Paris is in France. This statement is" + " false" / " true"`` with label 1.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError

__all__ = ["Template", "TEMPLATES", "get_template", "render", "parse_label"]

_TRUE = {"1", "true", "t", "yes", "y"}
_FALSE = {"0", "false", "f", "no", "n"}
_UNKNOWN = {"-1", "", "none", "null", "nan", "unknown"}


def parse_label(value: Any, label_map: Mapping[str, int] | None = None) -> int:
    """A 0/1/-1 label from an int, bool or string (``"true"``, ``"yes"``, ``"1"``, ...)."""
    if label_map is not None and str(value) in label_map:
        return int(label_map[str(value)])
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1, -1):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    if text in _UNKNOWN:
        return -1
    raise MindscopeError(f"cannot read label {value!r} as 0/1 (give a label_map)")


@dataclass(frozen=True)
class Template:
    """How a record becomes a contrast pair.

    Attributes:
        prompt: ``str.format`` pattern over the record's fields, e.g. ``"{statement} It is"``.
        completions: side 0 then side 1 (side 1 is the positive, "true" side).
        label_field: record field holding the label (1: side 1 correct); missing -> -1.
        label_map: optional mapping of raw label strings to 0/1 (e.g. ``{"entailment": 1}``).
    """

    prompt: str
    completions: tuple[str, str] = (" False", " True")
    label_field: str = "label"
    label_map: Mapping[str, int] | None = field(default=None)

    def __post_init__(self) -> None:
        if len(self.completions) != 2:
            raise MindscopeError("a template needs exactly 2 completions")
        object.__setattr__(self, "completions", tuple(self.completions))

    @property
    def fields(self) -> list[str]:
        """The record fields the prompt pattern uses."""
        return [f for _, f, _, _ in string.Formatter().parse(self.prompt) if f]

    def render(self, record: Mapping[str, Any]) -> ContrastPair:
        """One record -> one :class:`ContrastPair`; other fields go to ``meta``."""
        missing = [f for f in self.fields if f not in record]
        if missing:
            raise MindscopeError(
                f"record lacks field(s) {missing} used by template {self.prompt!r}; "
                f"it has {sorted(record)}"
            )
        raw = record.get(self.label_field, -1)
        try:
            label = parse_label(raw, self.label_map)
        except MindscopeError:
            raise MindscopeError(
                f"cannot read label field {self.label_field!r} = {raw!r} as 0/1 (true/false, "
                "yes/no, 1/0; or give a label_map)"
            ) from None
        meta = {k: v for k, v in record.items() if k != self.label_field}
        return ContrastPair(
            prompt=self.prompt.format(**record),
            completions=self.completions,  # type: ignore[arg-type]
            label=label,
            meta=meta,
        )


TEMPLATES: dict[str, Template] = {
    "truefalse": Template("{statement} This statement is", (" false", " true")),
    "statement": Template("{statement}", (" False", " True")),
    "qa": Template("Question: {question}\nAnswer: {answer}\nCorrect?", (" No", " Yes")),
    "yesno": Template("{question}", (" No", " Yes")),
}
"""Built-in templates by name."""


def get_template(template: str | Template | None) -> Template | None:
    """A :class:`Template` from a name in :data:`TEMPLATES`, a pattern string, or itself."""
    if template is None or isinstance(template, Template):
        return template
    if template in TEMPLATES:
        return TEMPLATES[template]
    if "{" in template:
        return Template(template)
    raise MindscopeError(
        f"unknown template {template!r}; use one of {sorted(TEMPLATES)} or a '{{field}}' pattern"
    )


def render(records: Iterable[Mapping[str, Any]], template: str | Template) -> list[ContrastPair]:
    """Render every record with ``template`` (a name, a pattern or a :class:`Template`)."""
    tpl = get_template(template)
    assert tpl is not None
    return [tpl.render(r) for r in records]
