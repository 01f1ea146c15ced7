"""Config schemas: pydantic models whose fields carry their own docs, with one-line errors.

Every config of mindscope (``mindscope run`` configs, tuned-lens training options) subclasses
:class:`Schema`: unknown keys are refused (with a "did you mean" from :mod:`difflib`), types are
checked strictly (``True`` is not an int, ``"5"`` is not a number), and each field's
``Field(description=...)`` is its documentation, from which the ``mindscope run --template``
YAML and the command-line options are generated.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from mindscope.errors import ConfigError

__all__ = ["Schema", "parse", "field_docs", "type_name", "yaml_template", "one_line"]

S = TypeVar("S", bound="Schema")


class Schema(BaseModel):
    """Base of every config: unknown keys refused, strict types, assignments re-checked."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_assignment=True)


def type_name(tp: Any) -> str:
    """A short human name of an annotation (``int or null``, ``list of str``, ``mapping``)."""
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {type_name(typing.get_args(tp)[0])}"
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _given(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _field_path(cls: type[BaseModel], loc: tuple[Any, ...]) -> tuple[list[str], Any, Any]:
    """The part of a pydantic error location that names fields, the last model and field."""
    names: list[str] = []
    model: Any = cls
    annotation: Any = None
    for item in loc:
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            break
        if not isinstance(item, str) or item not in model.model_fields:
            names.append(str(item))
            annotation = None
            break
        names.append(item)
        annotation = model.model_fields[item].annotation
        model = annotation
    return names, model if annotation is None else None, annotation


def one_line(exc: ValidationError, cls: type[BaseModel], data: Any, prefix: str = "") -> str:
    """The first error of a pydantic validation, as ``prefix path: problem``."""
    err = exc.errors()[0]
    loc = tuple(err["loc"])
    names, _, annotation = _field_path(cls, loc)
    path = ".".join(names)
    if err["type"] == "extra_forbidden":
        parent: Any = cls
        for name in names[:-1]:
            parent = parent.model_fields[name].annotation
        known = list(parent.model_fields)
        key = names[-1]
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return f"{prefix}{path}: unknown key {key!r}{hint}"
    value: Any = data
    for name in names:
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
    if annotation is not None and err["type"] not in ("value_error", "assertion_error"):
        return f"{prefix}{path}: expected {type_name(annotation)}, got {_given(value)}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{prefix}{path or 'config'}: {msg}"


def parse(cls: type[S], data: Any, source: str = "") -> S:
    """Build ``cls`` from plain data; raises :class:`ConfigError` with a one-line message.

    ``source`` (e.g. the file name) prefixes the message.
    """
    prefix = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}a config must be a mapping, got {_given(data)}")
    try:
        return cls.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(one_line(exc, cls, data, prefix)) from None


def field_docs(cls: type[BaseModel]) -> dict[str, str]:
    """``{field: description}`` of a schema (its ``Field(description=...)`` texts)."""
    return {name: " ".join((f.description or "").split()) for name, f in cls.model_fields.items()}


def yaml_template(obj: BaseModel, indent: int = 0) -> str:
    """A commented YAML document with every field of ``obj`` (nested schemas as mappings)."""
    import yaml

    lines: list[str] = []
    pad = "  " * indent
    docs = field_docs(type(obj))
    for name in type(obj).model_fields:
        value = getattr(obj, name)
        lines.append(f"{pad}# {docs.get(name, '').replace('``', '')}")
        if isinstance(value, BaseModel):
            lines.append(f"{pad}{name}:")
            lines.append(yaml_template(value, indent + 1).rstrip("\n"))
        else:
            dumped = yaml.safe_dump({name: value}, default_flow_style=True, width=1000)
            lines.append(pad + dumped.strip().removeprefix("{").removesuffix("}"))
    return "\n".join(lines) + "\n"
