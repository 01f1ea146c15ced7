"""The user docs quote figures from machine-written files, and speak about the software only.

A quoted figure carries a marker right after it, ``**0.675**<!-- fig bench_extract.vs_causal
{:.3f} -->``: the file ``bench_extract.json`` (under ``benchmarks/results/`` or
``docs/figures/``), the figure's key, and a Python format string. The format string gets the
value as ``{}`` and scaled copies as ``{M}`` (millions), ``{k}`` (thousands) and ``{pct}``
(percent); the text right before the marker must end with the formatted value.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURE_DIRS = (ROOT / "benchmarks" / "results", ROOT / "docs" / "figures")
README = ROOT / "README.md"
USER_DOCS = [README, ROOT / "benchmarks" / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

MARKER = re.compile(r"<!--\s*fig\s+([\w-]+)\.(\w+)\s+(.*?)\s*-->")
BOLD_NUMBER = re.compile(r"\*\*[-+~]?\d[\d,.]*\s*(?:[%xMk]|ms|s)?\*\*")
PROCESS_WORDS = re.compile(
    r"\bsessions?\b|\bissues?\s*#?\d+|\(issue|\bthe issue\b|\bissue's\b|\bhelpers?\b"
    r"|\bthis turn\b",
    re.IGNORECASE,
)
MAX_README_LINES = 190
MAX_CELL = 150


def _figure_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for d in FIGURE_DIRS:
        for p in sorted(d.glob("*.json")):
            assert p.stem not in files, f"{p.stem}.json is in two figure folders"
            files[p.stem] = p
    return files


def _markers() -> list[tuple[Path, int, str, re.Match[str]]]:
    out = []
    for path in USER_DOCS:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            out.extend((path, i, line, m) for m in MARKER.finditer(line))
    return out


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(ROOT)}:{line}"


def _render(fmt: str, value: float) -> str:
    return fmt.format(value, M=value / 1e6, k=value / 1e3, pct=100 * value)


def _quotes(before: str, want: str) -> bool:
    """Whether the text ``before`` a marker ends with the figure ``want`` (a whole number)."""
    before = before.rstrip().rstrip("*`").rstrip()
    return before.endswith(want) and not re.search(r"[\d.,]$", before[: -len(want)])


def test_figure_files_are_well_formed() -> None:
    files = _figure_files()
    assert "demo" in files and len(files) > 10
    for name, path in files.items():
        data: dict[str, Any] = json.loads(path.read_text())
        assert data["name"] == name, path
        for key in ("source", "date", "command", "machine", "figures"):
            assert data.get(key), f"{path.name}: no {key}"
        assert isinstance(data["reps"], int) and data["reps"] >= 1, path.name
        if name != "demo":
            assert "idle" in data["machine"], f"{path.name}: idle or not?"
        for key, fig in data["figures"].items():
            assert isinstance(fig["value"], (int, float)), f"{path.name}: {key}"
            assert fig["unit"], f"{path.name}: {key} has no unit"


def test_every_quoted_figure_equals_its_file() -> None:
    files = _figure_files()
    bad = []
    for path, i, line, m in _markers():
        name, key, fmt = m.groups()
        if name not in files:
            bad.append(f"{_where(path, i)}: no figures file {name}.json")
            continue
        figs = json.loads(files[name].read_text())["figures"]
        if key not in figs:
            bad.append(f"{_where(path, i)}: {name}.json has no figure {key!r}")
            continue
        want = _render(fmt, figs[key]["value"])
        if not _quotes(line[: m.start()], want):
            said = line[: m.start()][-24:]
            bad.append(f"{_where(path, i)}: {name}.{key} is {want}, the text says {said!r}")
    assert not bad, "\n".join(bad)


def test_every_figures_file_is_quoted() -> None:
    quoted = {m.group(1) for *_, m in _markers()}
    assert set(_figure_files()) <= quoted, set(_figure_files()) - quoted


def test_readme_headline_figures_are_marked() -> None:
    """Every bold figure of the README comes from a figures file; each capability has one."""
    text = README.read_text()
    bad = [b.group(0) for b in BOLD_NUMBER.finditer(text) if not MARKER.match(text, b.end())]
    assert not bad, f"bold figures without a marker: {bad}"
    sections = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    unmarked = [s.splitlines()[0] for s in sections if "```" in s and not MARKER.search(s)]
    assert not unmarked, f"README sections with an example and no headline figure: {unmarked}"


def test_readme_is_short() -> None:
    n = len(README.read_text().splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (at most {MAX_README_LINES})"


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_user_docs_speak_about_the_software(path: Path) -> None:
    bad = [
        f"{_where(path, i)}: {m.group(0)!r}"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        for m in PROCESS_WORDS.finditer(line)
    ]
    assert not bad, "process language in user docs:\n" + "\n".join(bad)


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_table_cells_are_short(path: Path) -> None:
    bad = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.lstrip().startswith("|"):
            cells = re.sub(r"<!--.*?-->", "", line).split("|")
            bad += [
                f"{_where(path, i)}: {len(c.strip())}" for c in cells if len(c.strip()) > MAX_CELL
            ]
    assert not bad, f"table cells over {MAX_CELL} characters:\n" + "\n".join(bad)


def test_the_checker_catches_drift() -> None:
    """The checker itself: a correct figure passes; a stale, longer or missing one fails."""
    m = MARKER.search("x **5.5M**<!-- fig bench_sandbox.steps_per_s {M:.1f}M -->")
    assert m is not None and m.groups() == ("bench_sandbox", "steps_per_s", "{M:.1f}M")
    assert _render("{M:.1f}M", 5_535_500) == "5.5M"
    assert _render("{:,.0f}", 5_535_500) == "5,535,500"
    assert _render("{pct:.0f}%", 0.85) == "85%"
    assert _quotes("lr **0.675**", _render("{:.3f}", 0.675))
    assert _quotes("at `0.94`", "0.94")
    assert not _quotes("lr **0.696**", _render("{:.3f}", 0.675))  # stale figure
    assert not _quotes("lr 10.675", "0.675")  # a different, longer number
    assert not _quotes("lr 0.675 and more", "0.675")  # marker not right after the number


def test_benchmarks_record_their_figures(tmp_path: Path) -> None:
    """``benchmarks/_figures.record`` writes the file format the checks above read."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_figures", ROOT / "benchmarks" / "_figures.py")
    assert spec is not None and spec.loader is not None
    figures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(figures)
    out = figures.record(
        "bench_x",
        {"ratio": (0.5, "ratio", "a / b"), "n": {"value": 3, "unit": "count"}},
        reps=3,
        command="python benchmarks/bench_x.py",
        path=tmp_path / "bench_x.json",
    )
    data = json.loads(out.read_text())
    assert data["figures"]["ratio"] == {"value": 0.5, "unit": "ratio", "what": "a / b"}
    assert data["figures"]["n"]["value"] == 3.0 and data["reps"] == 3
    assert data["source"] == "run" and data["command"] == "python benchmarks/bench_x.py"
    assert set(data["machine"]) >= {"cpus", "load_average", "idle"}
    assert _render("{:.2f}", data["figures"]["ratio"]["value"]) == "0.50"
    with pytest.raises(ValueError, match="needs a value and a unit"):
        figures.record("bench_x", {"bad": {"value": 1}}, reps=1, path=tmp_path / "b.json")
    with pytest.raises(ValueError, match="no figures"):
        figures.record("bench_x", {}, reps=1, path=tmp_path / "b.json")
