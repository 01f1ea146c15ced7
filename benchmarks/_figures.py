"""One place where benchmarks write their figures: ``benchmarks/results/<name>.json``.

Every benchmark ends with ``record(name, figures, reps=..., command=...)``. The file holds the
figures with their units, the repetitions, the machine's load average and whether it looked idle,
the date and the command, so that README.md and docs/*.md quote figures from a file a test can
read (``tests/test_docs_figures.py``) instead of copying them by hand.

A figure is ``{"value": float, "unit": str, "what": str}``; ``figures`` may give a bare
``(value, unit)`` or ``(value, unit, what)`` tuple instead.
"""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["RESULTS", "load", "machine", "record"]

RESULTS = Path(__file__).resolve().parent / "results"


def machine(idle: bool | None = None) -> dict[str, Any]:
    """The machine as the figures were taken: CPU count, load averages, idle or not.

    ``idle`` defaults to "the 5-minute load average is at most the CPU count" (the benchmark's
    own threads, nothing else): a loaded machine slows wall-clock figures, not the code.
    """
    cpus = os.cpu_count() or 1
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # not available on this platform
        load = []
    if idle is None:
        idle = bool(load) and load[1] <= cpus
    return {"cpus": cpus, "load_average": load, "idle": idle}


def _figure(key: str, spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict):
        fig = dict(spec)
    elif isinstance(spec, (tuple, list)) and len(spec) in (2, 3):
        fig = {"value": spec[0], "unit": spec[1]}
        if len(spec) == 3:
            fig["what"] = spec[2]
    else:
        raise ValueError(f"figure {key!r}: give {{'value', 'unit'}} or (value, unit[, what])")
    if "value" not in fig or "unit" not in fig:
        raise ValueError(f"figure {key!r} needs a value and a unit")
    fig["value"] = float(fig["value"])
    return fig


def record(
    name: str,
    figures: dict[str, Any],
    *,
    reps: int,
    command: str | None = None,
    idle: bool | None = None,
    notes: str = "",
    path: Path | None = None,
) -> Path:
    """Write ``figures`` to ``benchmarks/results/<name>.json`` (replacing the last run's file).

    ``command`` defaults to this process's command line; ``idle`` to :func:`machine`'s guess.
    Returns the path written.
    """
    if not figures:
        raise ValueError(f"{name}: no figures to record")
    out = path or RESULTS / f"{name}.json"
    data = {
        "name": name,
        "source": "run",
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        "command": command or "python " + " ".join(sys.argv),
        "reps": int(reps),
        "machine": machine(idle),
        "notes": notes,
        "figures": {k: _figure(k, v) for k, v in figures.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(out)
    print(f"figures written to {out}")
    return out


def load(name: str) -> dict[str, Any]:
    """The recorded figures of benchmark ``name`` (the parsed JSON file)."""
    return json.loads((RESULTS / f"{name}.json").read_text())
