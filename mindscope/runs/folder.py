"""Run folders: ``<output_dir>/<timestamp>-<name>/`` holding everything one run produced.

Layout::

    config.yaml       the fully resolved config (``mindscope run`` accepts it again)
    results.parquet   the results table (mindscope.results), written atomically
    artefacts/        lenses, reporters, ... saved by their own ``save()``
    manifest.json     hashes of weights, data and files; seeds; versions; status (written last)
    run.log           the run's log
    report.html       the self-contained report

A new run always gets a new folder (:meth:`RunFolder.create` never reuses one). A folder is only
read back (:meth:`RunFolder.open`) when its manifest says ``complete``, it was written by this or
an older mindscope, and its results file matches the hash in the manifest.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import MindscopeError
from mindscope.io import ManifestError
from mindscope.results import read_table, write_table
from mindscope.runs.manifest import Manifest, file_sha256, version_tuple, write_text_atomic

__all__ = ["RunFolder", "RunFolderError", "LOGGER_NAME"]

LOGGER_NAME = "mindscope"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class RunFolderError(MindscopeError):
    """A run folder is missing, incomplete, corrupted or from a newer mindscope."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _version() -> str:
    from mindscope._version import __version__

    return __version__


@dataclass
class RunFolder:
    """One run's folder on disk and its manifest (see the module docstring for the layout)."""

    path: Path
    manifest: Manifest

    # ------------------------------------------------------------------ paths
    @property
    def results_path(self) -> Path:
        """``results.parquet``."""
        return self.path / "results.parquet"

    @property
    def report_path(self) -> Path:
        """``report.html``."""
        return self.path / "report.html"

    @property
    def config_path(self) -> Path:
        """``config.yaml``."""
        return self.path / "config.yaml"

    @property
    def manifest_path(self) -> Path:
        """``manifest.json``."""
        return self.path / "manifest.json"

    @property
    def log_path(self) -> Path:
        """``run.log``."""
        return self.path / "run.log"

    @property
    def artefacts(self) -> Path:
        """``artefacts/`` (created on first use)."""
        p = self.path / "artefacts"
        p.mkdir(exist_ok=True)
        return p

    # ------------------------------------------------------------------ create
    @classmethod
    def create(
        cls,
        output_dir: str | os.PathLike[str],
        name: str,
        *,
        seed: int = 0,
        now: datetime | None = None,
    ) -> RunFolder:
        """Make a new, empty run folder ``<output_dir>/<YYYYmmdd-HHMMSS>-<name>``.

        Never reuses a folder: if the name is taken (two runs in the same second), a ``-2``,
        ``-3``, ... suffix is added. The manifest is written at once with status ``running``.
        """
        root = Path(output_dir)
        if root.exists() and not root.is_dir():
            raise RunFolderError(f"output folder {root} exists and is not a folder")
        root.mkdir(parents=True, exist_ok=True)
        clean = _NAME.sub("-", name).strip("-.") or "run"
        stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
        for i in range(1, 1000):
            path = root / (f"{stamp}-{clean}" if i == 1 else f"{stamp}-{clean}-{i}")
            try:
                path.mkdir()
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover - a thousand runs in one second
            raise RunFolderError(f"cannot find a free run folder name under {root}")
        manifest = Manifest(name=clean, mindscope_version=_version(), created=_now(), seed=seed)
        manifest.environment = {
            "python": platform.python_version(),
            "platform": platform.platform(),
        }
        folder = cls(path, manifest)
        folder.write_manifest()
        return folder

    # ------------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str | os.PathLike[str], *, require_complete: bool = True) -> RunFolder:
        """Open an existing run folder, checking it can be trusted.

        Raises :class:`RunFolderError` (one line) if there is no manifest, it was written by a
        newer mindscope, the run did not complete (``require_complete``), or a file no longer
        matches its recorded hash.
        """
        path = Path(path)
        if not path.is_dir():
            raise RunFolderError(f"no run folder at {path}")
        mpath = path / "manifest.json"
        if not mpath.is_file():
            raise RunFolderError(f"{path} is not a mindscope run folder (no manifest.json)")
        try:
            manifest = Manifest.read(mpath)
        except ManifestError as exc:
            raise RunFolderError(str(exc)) from None
        mine = _version()
        if version_tuple(manifest.mindscope_version) > version_tuple(mine):
            raise RunFolderError(
                f"{path} was written by mindscope {manifest.mindscope_version} (folder format "
                f"{manifest.format_version}), newer than this mindscope {mine}; upgrade "
                "mindscope to read it"
            )
        folder = cls(path, manifest)
        if require_complete:
            if manifest.status != "complete":
                why = f": {manifest.error}" if manifest.error else ""
                raise RunFolderError(
                    f"run {path} is incomplete (status {manifest.status!r}){why}; "
                    "it crashed, failed or is still running"
                )
            folder.verify()
        return folder

    def verify(self) -> None:
        """Check every file listed in the manifest exists and matches its hash."""
        for rel, digest in sorted(self.manifest.files.items()):
            if rel == "report.html":
                continue  # derived from the table; `mindscope report` rebuilds it in place
            p = self.path / rel
            if not p.is_file():
                raise RunFolderError(f"run {self.path} is missing {rel}, listed in its manifest")
            if file_sha256(p) != digest:
                raise RunFolderError(
                    f"{p} does not match the hash in its manifest (modified or half-written)"
                )

    # ------------------------------------------------------------------ write
    def write_manifest(self) -> Path:
        """Write ``manifest.json`` atomically."""
        return self.manifest.write(self.manifest_path)

    def write_config(self, config: Mapping[str, Any]) -> Path:
        """Write the resolved config as ``config.yaml`` and record its hash."""
        import yaml

        text = "# resolved config of this run; `mindscope run` accepts it again\n" + yaml.safe_dump(
            dict(config), sort_keys=False
        )
        write_text_atomic(self.config_path, text)
        self.manifest.config_sha256 = file_sha256(self.config_path)
        return self.config_path

    def write_results(self, df: pd.DataFrame) -> Path:
        """Write the results table atomically (may be called after each stage)."""
        return write_table(df, self.results_path)

    def read_results(self) -> pd.DataFrame:
        """Read the results table."""
        if not self.results_path.is_file():
            raise RunFolderError(f"run {self.path} has no results.parquet")
        return read_table(self.results_path)

    def write_report(self, df: pd.DataFrame | None = None) -> Path:
        """Build ``report.html`` from the results table (``df`` or the one on disk)."""
        from mindscope.report import write_report

        table = self.read_results() if df is None else df
        meta = {
            "run": self.path.name,
            "models": ", ".join(
                f"{m.get('name')}" + (f"@{m['revision']}" if m.get("revision") else "")
                for m in self.manifest.models
            ),
            "seed": self.manifest.seed,
            "created": self.manifest.created,
        }
        return write_report(
            table,
            self.report_path,
            title=f"mindscope · {self.manifest.name}",
            meta={k: v for k, v in meta.items() if v != ""},
        )

    def finish(self, status: str = "complete", error: str = "") -> None:
        """Record file hashes and write the final manifest (status ``complete`` goes last)."""
        if status not in ("complete", "failed"):
            raise ValueError(f"status must be 'complete' or 'failed', got {status!r}")
        files = {}
        for p in sorted(self.path.rglob("*")):
            rel = p.relative_to(self.path).as_posix()
            if (
                p.is_file()
                and rel not in ("manifest.json", "run.log")
                and not p.name.startswith(".tmp-")
            ):
                files[rel] = file_sha256(p)
        self.manifest.files = files
        self.manifest.status = status
        self.manifest.error = " ".join(error.split())[:500]
        self.manifest.finished = _now()
        self.write_manifest()

    @contextmanager
    def logging(self, level: int = logging.INFO) -> Iterator[logging.Logger]:
        """Send the ``mindscope`` logger's records to ``run.log`` while the block runs."""
        logger = logging.getLogger(LOGGER_NAME)
        handler = logging.FileHandler(self.log_path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(level)
        old_level = logger.level
        logger.addHandler(handler)
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        try:
            yield logger
        finally:
            logger.removeHandler(handler)
            logger.setLevel(old_level)
            handler.close()
