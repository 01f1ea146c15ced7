"""Command-line options generated from a stage config, and running one stage from the CLI.

Every field of a :class:`~mindscope.analyses.StageConfig` becomes one option
(``n_boot`` -> ``--n-boot``) with the field's description as help; lists are comma-separated,
booleans take ``--x/--no-x``, ``null`` clears an optional value. Only options the user gave
override the config's defaults, so the CLI, a run config and the Python API share one default.
"""

from __future__ import annotations

import argparse
import types
import typing
from collections.abc import Iterable
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["add_config_args", "config_from_args"]

_BASE_SKIP = ("enabled", "model")


def _scalar(tp: Any, text: str, flag: str) -> Any:
    if tp is str:
        return text
    try:
        return tp(text)
    except ValueError:
        raise MindscopeError(f"{flag}: expected {tp.__name__}, got {text!r}") from None


def _parse(hint: Any, text: str, flag: str) -> Any:
    """Parse ``text`` into the annotation ``hint`` (str, int, float, list of those, optionals
    and unions such as ``str | list[int]``)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and text.strip().lower() in ("null", "none"):
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _parse(a, text, flag)
            except MindscopeError as exc:
                errors.append(str(exc))
        raise MindscopeError(errors[-1] if errors else f"{flag}: cannot parse {text!r}")
    if origin is list:
        inner = args[0] if args else str
        items = [t.strip() for t in text.split(",") if t.strip()]
        if not items:
            raise MindscopeError(f"{flag}: give at least one comma-separated value")
        return [_parse(inner, t, flag) for t in items]
    if origin is typing.Literal:
        if text not in args:
            raise MindscopeError(f"{flag}: choose from {', '.join(map(str, args))}, got {text!r}")
        return text
    if hint in (str, int, float):
        if hint is not str and text.strip() in ("",):
            raise MindscopeError(f"{flag}: empty value")
        return _scalar(hint, text, flag)
    return text


def add_config_args(
    p: argparse.ArgumentParser,
    cls: Any,
    *,
    skip: Iterable[str] = (),
    title: str = "options (from the stage config)",
) -> None:
    """One option per field of config class ``cls`` (typed and documented from the schema)."""
    g = p.add_argument_group(title)
    skipped = set(skip) | set(_BASE_SKIP)
    for name, f in cls.model_fields.items():
        if name in skipped:
            continue
        flag = "--" + name.replace("_", "-")
        default = f.default if f.default_factory is None else f.default_factory()
        shown = ",".join(map(str, default)) if isinstance(default, list) else default
        help_text = f"{' '.join((f.description or '').split())} (default {shown})".replace(
            "``", ""
        ).replace("%", "%%")
        if f.annotation is bool:
            g.add_argument(
                flag,
                dest=f"cfg_{name}",
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        g.add_argument(flag, dest=f"cfg_{name}", metavar=name.upper(), default=None, help=help_text)


def config_from_args(args: argparse.Namespace, cls: Any, **fixed: Any) -> Any:
    """A ``cls`` config from the options the user gave (others keep the config's defaults) and
    ``fixed`` values; every problem is one :class:`MindscopeError` line naming the option."""
    from mindscope.schema import parse

    data: dict[str, Any] = {}
    for name, f in cls.model_fields.items():
        value = getattr(args, f"cfg_{name}", None)
        if value is None:
            continue
        flag = "--" + name.replace("_", "-")
        data[name] = value if isinstance(value, bool) else _parse(f.annotation, value, flag)
    data.update({k: v for k, v in fixed.items() if v is not None})
    try:
        return parse(cls, data)
    except MindscopeError as exc:
        # "field: problem" -> "--field: problem"
        msg = str(exc)
        head, sep, tail = msg.partition(":")
        if sep and head.split(".")[0] in cls.model_fields:
            return_msg = f"--{head.split('.')[0].replace('_', '-')}:{tail}"
            raise MindscopeError(return_msg) from None
        raise
