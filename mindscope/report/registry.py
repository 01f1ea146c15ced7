"""The registry of report sections.

A section is one module of :mod:`mindscope.report.sections` that calls :func:`register` once:
its name (the page anchor), its order on the page, a title and caption, ``select`` (the rows it
reads, from the results table), optionally ``applies`` (whether it is drawn; default: ``select``
found rows) and ``render`` (its rows -> :class:`Content`: figures, a caption, an optional table).
:func:`build_sections` imports every module of that package, asks each registered section
whether it applies and renders those that do, in order. Adding a section is adding one module
with one :func:`register` call; nothing else changes.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.report import plot
from mindscope.report.rows import aggregate_rows

__all__ = [
    "Content",
    "SectionSpec",
    "Section",
    "register",
    "unregister",
    "registered",
    "build_sections",
    "SECTIONS_PACKAGE",
]


@dataclass(frozen=True)
class Content:
    """What a section's ``render`` returns.

    Attributes:
        figures: Plotly figures, in order.
        caption: replaces the registered caption when not empty.
        table: a small table shown under the figures (one HTML row per row; a ``flag`` column
            is highlighted; ``layer``/``step`` of -1 are left blank).
        warning: a highlighted line above the figures (e.g. how many results are flagged).
    """

    figures: tuple[Any, ...] = ()
    caption: str = ""
    table: pd.DataFrame | None = None
    warning: str = ""


Render = Callable[[pd.DataFrame], "Content | Sequence[Any]"]


@dataclass(frozen=True)
class SectionSpec:
    """A registered section (see the module docstring)."""

    name: str
    order: int
    title: str
    caption: str
    select: Callable[[pd.DataFrame], pd.DataFrame]
    render: Render
    applies_to: Callable[[pd.DataFrame], bool] | None = None
    positions: bool = False

    def rows(self, df: pd.DataFrame) -> pd.DataFrame:
        """The rows of the results table ``df`` this section reads (per-position trajectory
        rows only when the section was registered with ``positions=True``)."""
        return self.select(df if self.positions else aggregate_rows(df))

    def applies(self, df: pd.DataFrame) -> bool:
        """Whether the section is drawn for the results table ``df``."""
        if self.applies_to is not None:
            return bool(self.applies_to(df))
        return not self.rows(df).empty


@dataclass(frozen=True)
class Section:
    """One rendered section: anchor id, title, caption (``note``), figures, optional table."""

    id: str
    title: str
    note: str
    figures: tuple[Any, ...]
    table: pd.DataFrame | None = field(default=None, compare=False)
    warning: str = ""


SECTIONS_PACKAGE = "mindscope.report.sections"
"""The package whose every module is imported (and so registered) before the page is built."""

_REGISTRY: dict[str, SectionSpec] = {}
_DISCOVERED = False


def register(
    name: str,
    *,
    order: int,
    title: str,
    caption: str,
    select: Callable[[pd.DataFrame], pd.DataFrame],
    render: Render,
    applies: Callable[[pd.DataFrame], bool] | None = None,
    positions: bool = False,
) -> SectionSpec:
    """Register a section of the report; returns its spec.

    Args:
        name: the page anchor (``[a-z0-9-]``), unique.
        order: position on the page (smaller first; the built-in sections use multiples of 10,
            the headline 0 and the summary 1000).
        title: the heading (the part before ``:`` is the navigation link).
        caption: the paragraph under the heading: what is drawn and how to read it.
        select: results table -> the rows the section reads.
        render: those rows -> :class:`Content` (or just a list of figures).
        applies: results table -> whether to draw the section (default: ``select`` found rows).
        positions: the section reads per-position (trajectory) rows; others never see them.

    Raises:
        MindscopeError: the name is taken or not a valid anchor.
    """
    if not name or not all(c.isalnum() or c == "-" for c in name) or name != name.lower():
        raise MindscopeError(f"section name {name!r}: use lower-case letters, digits and '-'")
    if name in _REGISTRY:
        raise MindscopeError(f"section {name!r} is already registered")
    spec = SectionSpec(name, order, title, caption, select, render, applies, positions)
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> SectionSpec:
    """Remove the section ``name`` from the registry (e.g. to replace a built-in one); returns
    its spec.

    Raises:
        MindscopeError: no such section.
    """
    registered()
    if name not in _REGISTRY:
        raise MindscopeError(f"no section {name!r}; registered: {sorted(_REGISTRY)}")
    return _REGISTRY.pop(name)


def registered() -> list[SectionSpec]:
    """Every registered section in page order (the modules of :mod:`mindscope.report.sections`
    are imported first, so each has registered itself)."""
    global _DISCOVERED
    if not _DISCOVERED:
        package = importlib.import_module(SECTIONS_PACKAGE)
        for mod in sorted(m.name for m in pkgutil.iter_modules(package.__path__)):
            importlib.import_module(f"{SECTIONS_PACKAGE}.{mod}")
        _DISCOVERED = True
    return sorted(_REGISTRY.values(), key=lambda s: (s.order, s.name))


def _content(out: Content | Sequence[Any]) -> Content:
    return out if isinstance(out, Content) else Content(tuple(out))


def build_sections(df: pd.DataFrame) -> list[Section]:
    """The sections that apply to the results table ``df``, rendered, in page order; every
    method of ``df`` keeps one colour in all of them (:func:`plot.method_palette`)."""
    methods = df["method"].dropna().astype(str).unique() if "method" in df else []
    out = []
    with plot.method_palette(methods):
        whole = aggregate_rows(df)  # parsed once for all sections
        for spec in registered():
            given = df if spec.positions else whole
            rows = spec.select(given)
            drawn = spec.applies_to(given) if spec.applies_to is not None else not rows.empty
            if not drawn:
                continue
            content = _content(spec.render(rows))
            has_table = content.table is not None
            if not content.figures and not has_table and not content.caption:
                continue
            out.append(
                Section(
                    spec.name,
                    spec.title,
                    content.caption or spec.caption,
                    tuple(content.figures),
                    content.table,
                    content.warning,
                )
            )
    return out
