"""One kind of output folder: everything that writes results can be reported and listed.

Three commands write results, all into a folder holding ``results.parquet``:

* ``mindscope run`` / ``demo``: a run folder (``manifest.json``, ``config.yaml``, artefacts);
* ``mindscope elicit --out DIR``: ``results.parquet``, ``predictions.parquet``, ``run.json``,
  ``reporters/``;
* ``mindscope lens eval --out DIR``: ``results.parquet`` and ``run.json`` (``--out FILE.parquet``
  still writes the bare table).

:func:`open_output` reads any of them (a run folder is verified against its manifest first);
:func:`report_target` picks where a rebuilt report goes (never over an existing one unless
``force``); :func:`list_outputs` finds them under a root for ``mindscope runs``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError

__all__ = ["Output", "open_output", "report_target", "list_outputs", "headline_numbers"]


@dataclass
class Output:
    """A folder of results.

    Attributes:
        path: the folder.
        kind: ``run``, ``sweep``, ``elicit``, ``lens-eval`` or ``table`` (a bare
            ``results.parquet``).
        results: the results table.
        meta: what the folder says about itself (shown in the report header).
        status: ``complete`` unless a run folder's manifest says otherwise.
    """

    path: Path
    kind: str
    results: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    status: str = "complete"


def _kind_from_json(path: Path) -> tuple[str, dict[str, Any]]:
    info_path = path / "run.json"
    if not info_path.is_file():
        return "table", {}
    try:
        info = json.loads(info_path.read_text())
    except (OSError, json.JSONDecodeError):
        return "table", {}
    command = str(info.get("command", ""))
    kind = {"elicit": "elicit", "lens eval": "lens-eval"}.get(command, command or "table")
    return kind, info if isinstance(info, dict) else {}


def open_output(path: str | os.PathLike[str], *, require_complete: bool = True) -> Output:
    """Read the results folder at ``path`` (or a bare ``.parquet`` results table).

    Raises:
        MindscopeError: no such folder, no results table, or (run folders) an incomplete or
            tampered run.
    """
    from mindscope.results import read_table

    p = Path(path)
    if p.is_file() and p.suffix == ".parquet":
        return Output(p.parent, "table", read_table(p), {"run": p.name})
    if not p.is_dir():
        raise MindscopeError(f"no output folder at {p}")
    sweep = _sweep_manifest(p / "manifest.json") if (p / "manifest.json").is_file() else None
    if sweep is not None:
        return _open_sweep(p, sweep)
    if (p / "manifest.json").is_file():
        from mindscope.runs.folder import RunFolder

        folder = RunFolder.open(p, require_complete=require_complete)
        meta = {
            "run": p.name,
            "models": ", ".join(
                f"{m.get('name')}" + (f"@{m['revision']}" if m.get("revision") else "")
                for m in folder.manifest.models
            ),
            "seed": folder.manifest.seed,
            "created": folder.manifest.created,
        }
        results = folder.read_results() if folder.results_path.is_file() else pd.DataFrame()
        return Output(p, "run", results, meta, folder.manifest.status)
    if not (p / "results.parquet").is_file():
        raise MindscopeError(
            f"{p} holds no results.parquet: give a folder written by `mindscope run`, "
            "`elicit --out` or `lens eval --out`"
        )
    kind, info = _kind_from_json(p)
    meta = {"run": p.name, "kind": kind}
    for key in ("model", "dataset", "split", "seed"):
        if info.get(key) not in (None, ""):
            meta[key] = info[key]
    if info.get("split_warnings"):
        meta["split warnings"] = " | ".join(map(str, info["split_warnings"]))
    return Output(p, kind, read_table(p / "results.parquet"), meta)


def _sweep_manifest(manifest: Path) -> dict[str, Any] | None:
    """The content of ``manifest`` if it is a sweep's (``kind: "sweep"``, or format 1's
    checkpoint/done layout; see :mod:`mindscope.sweeps.manifest`), else ``None``."""
    try:
        data = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "sweep" or ("checkpoints" in data and "done" in data):
        return data
    return None


def _open_sweep(p: Path, data: dict[str, Any]) -> Output:
    """A sweep folder: its manifest ``data`` and its ``results.parquet`` (every checkpoint x
    stage)."""
    from mindscope.results import read_table

    if not (p / "results.parquet").is_file():
        raise MindscopeError(
            f"{p} is a sweep folder without results.parquet: run `mindscope sweep` to finish it"
        )
    checkpoints = data.get("checkpoints") or {}
    done = data.get("done") or {}
    complete = all(done.get(rev) for rev in checkpoints)
    meta = {
        "run": p.name,
        "kind": "sweep",
        "checkpoints": len(checkpoints),
        "created": data.get("created", ""),
        "shown": "across-time sections: every checkpoint; the others: the final checkpoint",
    }
    status = "complete" if complete else "partial"
    return Output(p, "sweep", read_table(p / "results.parquet"), meta, status)


def report_target(folder: Path, *, force: bool = False) -> Path:
    """Where a rebuilt report goes: ``report.html`` when absent (or ``force``), else the first
    free ``report-2.html``, ``report-3.html``, ... (an existing report is never overwritten
    silently)."""
    first = folder / "report.html"
    if force or not first.exists():
        return first
    for i in range(2, 10_000):
        p = folder / f"report-{i}.html"
        if not p.exists():
            return p
    raise MindscopeError(f"{folder}: too many reports; pass --force to overwrite report.html")


def headline_numbers(df: pd.DataFrame) -> dict[str, str]:
    """The few numbers ``mindscope runs`` shows per folder, each labelled with how it was
    chosen: best test AUROC (method, layer: the best layer on the test split), the Bob-hard
    AUROC and gap recovered of the reporters fitted on Alice-easy at the layer chosen on
    validation data, with the random-direction null (the report's headline lines,
    :func:`mindscope.report.sections.headline.bob_hard_lines`), and the tuned lens's mean KL
    over layers (per-position trajectory rows and the last layer left out). A sweep's table
    shows its final checkpoint. "Best" is :func:`mindscope.metrics_catalog.best` (the
    report's rule, ties to the lowest layer)."""
    from mindscope.metrics_catalog import best
    from mindscope.report.rows import aggregate_rows, final_step
    from mindscope.report.sections.headline import bob_hard_lines, test_lines
    from mindscope.results import extras

    out: dict[str, str] = {}
    if df.empty:
        return out
    df = final_step(df)
    auc = df[(df.metric == "auroc") & (df.layer >= 0) & ~df.method.isin(["random", "lm"])]
    test = auc[auc.split == "test"].dropna(subset=["value"])
    chosen = test_lines(df)
    for r in chosen[chosen.method != "random"].itertuples(index=False):
        out[f"test auroc, {r.method}"] = (
            f"{r.auroc:.3f} (L{r.layer} chosen on held-out training pairs, n={r.n}; "
            f"random-direction p95 {r.null_p95:.3f}, p={r.p_value:.3f})"
        )
    if len(test) and chosen.empty:
        r = best(test, "auroc")
        out["best test auroc"] = (
            f"{r.value:.3f} ({r.method} L{int(r.layer)}, best layer on the test split, "
            f"n={int(r.n)})"
        )
    lines = bob_hard_lines(df)
    for r in lines[lines.method != "random"].itertuples(index=False):
        out[f"{r.eval} auroc, {r.method}"] = (
            f"{r.auroc:.3f} (fitted on {r.train}, L{r.layer} chosen on validation, n={r.n}; "
            f"random-direction p95 {r.null_p95:.3f}, p={r.p_value:.3f})"
        )
        if r.gap == r.gap:
            out[f"{r.eval} gap recovered, {r.method}"] = (
                f"{r.gap:.2f} (L{r.layer}; constant probe {r.gap_chance:.2f})"
            )
    if lines.empty:  # a table from before the validation choice: say what the number is
        bob = auc[auc.split == "bob-hard"].dropna(subset=["value"])
        ex = extras(bob)
        bob = bob[[e.get("train") == "alice-easy" and e.get("labels", "truth") == "truth"
                   for e in ex]]  # fmt: skip
        if len(bob):
            r = best(bob, "auroc")
            out["bob-hard auroc"] = (
                f"{r.value:.3f} ({r.method} L{int(r.layer)} fitted on alice-easy; best layer "
                "on bob-hard itself: optimistic)"
            )
        gap = df[df.metric == "gap_recovered_best"].dropna(subset=["value"])
        if len(gap):
            r = best(gap, "gap_recovered_best")
            out["gap recovered"] = f"{r.value:.2f} ({r.method}, oracle layer)"
    kl = df[(df.metric == "kl") & df.method.isin(["tuned_lens", "tuned"]) & (df.layer >= 0)]
    kl = aggregate_rows(kl)  # not a trajectory's per-position rows
    if len(kl) and kl.layer.nunique() > 1:
        kl = kl[kl.layer < kl.layer.max()]
        out["tuned kl"] = f"{kl.value.mean():.3f} nats (mean over layers)"
    return out


def list_outputs(root: str | os.PathLike[str]) -> list[Output]:
    """Every results folder directly under ``root`` (and ``root`` itself if it is one), newest
    name last; folders that cannot be read are listed with status ``unreadable: ...``."""
    base = Path(root)
    if not base.is_dir():
        raise MindscopeError(f"no folder at {base}")
    candidates = [base] + sorted(c for c in base.iterdir() if c.is_dir())
    out = []
    for c in candidates:
        if not ((c / "results.parquet").is_file() or (c / "manifest.json").is_file()):
            continue
        try:
            out.append(open_output(c, require_complete=False))
        except (MindscopeError, ValueError, OSError) as exc:
            msg = " ".join(str(exc).split())[:80]
            out.append(Output(c, "?", pd.DataFrame(), {}, f"unreadable: {msg}"))
    return out
