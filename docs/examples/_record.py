"""Write a figures file of ``docs/figures`` in the format ``tests/test_docs_figures.py`` reads
(the same as ``benchmarks/_figures.record``): headline ``figures`` quoted by the docs, and the
full measurement under ``details``."""

from __future__ import annotations

import datetime
import json
import os
import sys
from pathlib import Path
from typing import Any


def write_figures(
    path: str | Path,
    figures: dict[str, tuple[float, str, str]],
    details: dict[str, Any],
    *,
    reps: int,
    notes: str = "",
) -> Path:
    """``figures``: ``{key: (value, unit, what)}``; writes ``path`` (its stem is the name)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "name": p.stem,
        "source": "run",
        "date": datetime.date.today().isoformat(),
        "command": "python " + " ".join(sys.argv),
        "reps": int(reps),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "idle": False,
        },
        "notes": notes,
        "figures": {
            k: {"value": float(v), "unit": unit, "what": what}
            for k, (v, unit, what) in figures.items()
        },
        "details": details,
    }
    p.write_text(json.dumps(data, indent=1) + "\n")
    return p
