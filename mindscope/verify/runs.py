"""Re-verify a run folder: its recorded hashes, then a re-execution compared row by row.

:func:`verify_run` reads ``manifest.json`` (hashes of every file the run wrote, the config's
hash, the models read with their weights hashes, the datasets' hashes, the environment),
checks the files against it, re-executes the run (or one stage) through the public pipeline
(:func:`mindscope.runs.pipeline.run_pipeline`) into a temporary folder, checks that the inputs
hash the same (weights, data) and compares the two results tables within stated tolerances,
listing every row that differs. It never writes into the folder it verifies.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError

__all__ = ["RunVerification", "verify_run", "KEY_COLUMNS", "VALUE_COLUMNS"]

KEY_COLUMNS = ("model", "revision", "step", "dataset", "split", "layer", "method", "metric")
"""Columns that identify a row of the results table."""
VALUE_COLUMNS = ("value", "ci_low", "ci_high", "n")
"""Columns compared within tolerance."""
STAGE_ALIASES = {"reporters": "elicit"}
"""Older names of stages (``--stage reporters`` is the ``elicit`` stage)."""


@dataclass
class RunVerification:
    """Result of :func:`verify_run`."""

    accepted: bool
    """The verdict."""
    reason: str
    """One line: why rejected, or what was checked."""
    checks: dict[str, str] = field(default_factory=dict)
    """Each check -> ``ok`` or what went wrong."""
    differing: pd.DataFrame | None = None
    """Rows whose values differ beyond tolerance (recorded and re-executed side by side)."""
    rows_compared: int = 0
    """Rows of the results table compared."""
    environment: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Environment entries that differ: ``key -> (recorded, now)``."""
    seconds: float = 0.0
    """Wall time."""

    def summary(self) -> str:
        """Printable checks, differing rows and the verdict."""
        lines = [f"check {k}: {v}" for k, v in self.checks.items()]
        for key, (was, now) in self.environment.items():
            lines.append(f"environment {key}: recorded {was!r}, now {now!r}")
        if self.differing is not None and len(self.differing):
            with pd.option_context("display.width", 160, "display.max_columns", 20):
                lines.append(f"{len(self.differing)} differing rows:")
                lines.append(self.differing.head(20).to_string(index=False))
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: ACCEPT/REJECT and the reason."""
        return f"{'ACCEPT' if self.accepted else 'REJECT'}: {self.reason}"


def _read_manifest(path: Path) -> dict[str, Any]:
    from mindscope.io import ManifestError
    from mindscope.runs.manifest import MANIFEST_FORMAT

    if not path.is_dir():
        raise MindscopeError(f"no run folder at {path}")
    mpath = path / "manifest.json"
    if not mpath.is_file():
        raise MindscopeError(f"{path} is not a mindscope run folder (no manifest.json)")
    try:
        data = MANIFEST_FORMAT.read(mpath)
    except ManifestError as exc:
        raise MindscopeError(str(exc)) from None
    if "files" not in data:
        raise MindscopeError(f"{mpath} is not a run manifest (no 'files')")
    return data


def compare_tables(
    recorded: pd.DataFrame, rerun: pd.DataFrame, atol: float, rtol: float
) -> tuple[pd.DataFrame, int, str]:
    """Rows of the two results tables that differ: ``(rows, compared, problem)``; ``problem``
    names a structural difference (rows present on one side only), else empty."""
    keys = list(KEY_COLUMNS)
    a = recorded.sort_values(keys, kind="stable").reset_index(drop=True)
    b = rerun.sort_values(keys, kind="stable").reset_index(drop=True)
    ka = a[keys].astype(str).agg("|".join, axis=1)
    kb = b[keys].astype(str).agg("|".join, axis=1)
    only_a, only_b = set(ka) - set(kb), set(kb) - set(ka)
    if only_a or only_b or len(a) != len(b):
        problem = (
            f"{len(only_a)} recorded rows missing from the re-execution, {len(only_b)} new "
            f"ones ({len(a)} vs {len(b)} rows)"
        )
        side = a[ka.isin(only_a)].assign(side="recorded only")
        new = b[kb.isin(only_b)].assign(side="re-executed only")
        return pd.concat([side, new], ignore_index=True), min(len(a), len(b)), problem
    bad = pd.Series(False, index=a.index)
    for col in VALUE_COLUMNS:
        x = pd.to_numeric(a[col], errors="coerce")
        y = pd.to_numeric(b[col], errors="coerce")
        both_nan = x.isna() & y.isna()
        far = (x - y).abs() > atol + rtol * y.abs()
        bad |= ~both_nan & (far | (x.isna() != y.isna()))
    rows = a.loc[bad, keys + ["value"]].copy()
    rows["rerun_value"] = b.loc[bad, "value"].to_numpy()
    rows["abs_diff"] = (rows["value"] - rows["rerun_value"]).abs()
    return rows, len(a), ""


def verify_run(
    run_dir: str | Path,
    *,
    stage: str | None = None,
    rerun: bool = True,
    atol: float = 1e-6,
    rtol: float = 1e-4,
    load_model: Callable[..., Any] | None = None,
) -> RunVerification:
    """Verify a run folder (see the module docstring).

    Args:
        run_dir: the run folder (``runs/<timestamp>-<name>``).
        stage: re-execute only this stage of the run (``"lens"``, ``"elicit"``, ...; default:
            the whole run).
        rerun: re-execute (``False``: check the recorded hashes only).
        atol, rtol: a value matches when ``|recorded - rerun| <= atol + rtol * |rerun|``.
        load_model: replaces :func:`mindscope.load_model` in the re-execution (tests).

    Raises:
        MindscopeError: not a run folder, no or unreadable manifest, unknown stage (input
            errors; a failed check is a REJECT verdict, not an exception).
    """
    from mindscope.runs.manifest import file_sha256

    t0 = time.perf_counter()
    path = Path(run_dir)
    manifest = _read_manifest(path)
    if stage is not None:
        from mindscope.analyses import stage_names

        stage = STAGE_ALIASES.get(stage, stage)
        if stage not in stage_names():
            raise MindscopeError(f"unknown stage {stage!r}; use one of {', '.join(stage_names())}")
    out = RunVerification(accepted=False, reason="")
    checks = out.checks

    def reject(why: str) -> RunVerification:
        out.reason = why
        out.seconds = time.perf_counter() - t0
        return out

    if manifest.get("status") != "complete":
        checks["status"] = str(manifest.get("status"))
        return reject(f"the run did not complete (status {manifest.get('status')!r})")
    checks["status"] = "complete"
    for rel, digest in sorted(manifest["files"].items()):
        if rel == "report.html":
            continue  # derived from the table; `mindscope report` rebuilds it in place
        p = path / rel
        if not p.is_file():
            checks["files"] = f"{rel} missing"
            return reject(f"{rel}, listed in the manifest, is missing")
        if file_sha256(p) != digest:
            checks["files"] = f"{rel} modified"
            return reject(f"{rel} does not match its hash in the manifest (edited after the run)")
    checks["files"] = f"ok ({len(manifest['files'])} files hash-checked)"
    config = path / "config.yaml"
    if manifest.get("config_sha256") and file_sha256(config) != manifest["config_sha256"]:
        checks["config"] = "modified"
        return reject("config.yaml does not match the config hash in the manifest")
    checks["config"] = "ok"
    if not rerun:
        out.accepted = True
        return reject("hashes consistent (not re-executed)")

    from mindscope.results import read_table
    from mindscope.runs.config import load_config
    from mindscope.runs.pipeline import run_pipeline

    cfg = load_config(config)
    if stage is not None:
        from mindscope.runs.config import run_stages

        if stage not in dict(run_stages(cfg)):
            raise MindscopeError(f"the run did not run stage {stage!r}")
        for name, sc in run_stages(cfg):
            if name != stage:
                sc.enabled = False
    with tempfile.TemporaryDirectory(prefix="mindscope-verify-") as tmp:
        cfg.output_dir = tmp
        folder = run_pipeline(cfg, progress=False, load_model=load_model)
        new_manifest = _read_manifest(folder.path)
        rerun_table = read_table(folder.results_path)
    recorded = read_table(path / "results.parquet")
    if stage is not None:
        from mindscope.results import extra_values

        tagged = extra_values(recorded, "stage")
        if tagged.notna().any():
            recorded = recorded[tagged == stage]
        else:  # tables written before rows named their stage
            recorded = recorded[recorded["method"].isin(set(rerun_table["method"]))]
    # inputs: the same weights and data as recorded
    was = {(m["name"], m.get("revision")): m.get("weights_hash") for m in manifest["models"]}
    now = {(m["name"], m.get("revision")): m.get("weights_hash") for m in new_manifest["models"]}
    for key, digest in now.items():
        if key in was and was[key] != digest:
            checks["inputs"] = f"weights of {key[0]} differ"
            return reject(f"the weights of {key[0]} hash differently from the recorded run")
    for key, digest in new_manifest.get("data", {}).items():
        if key in manifest.get("data", {}) and manifest["data"][key] != digest:
            checks["inputs"] = f"dataset {key} differs"
            return reject(f"dataset {key} hashes differently from the recorded run")
    checks["inputs"] = f"ok ({len(now)} models, {len(new_manifest.get('data', {}))} datasets)"
    env_was, env_now = manifest.get("environment", {}), new_manifest.get("environment", {})
    out.environment = {
        k: (str(env_was.get(k)), str(env_now.get(k)))
        for k in sorted(set(env_was) | set(env_now))
        if env_was.get(k) != env_now.get(k)
    }
    rows, compared, problem = compare_tables(recorded, rerun_table, atol, rtol)
    out.differing, out.rows_compared = rows, compared
    if problem:
        checks["results"] = problem
        return reject(f"the re-executed results table has other rows: {problem}")
    if len(rows):
        checks["results"] = f"{len(rows)} of {compared} rows differ"
        return reject(
            f"{len(rows)} of {compared} result rows differ beyond |diff| <= {atol:g} + "
            f"{rtol:g} x |value|"
        )
    checks["results"] = f"ok ({compared} rows within {atol:g} + {rtol:g} x |value|)"
    out.accepted = True
    what = f"stage {stage}" if stage else "the whole run"
    return reject(f"re-executed {what}; inputs, files and {compared} result rows match")
