"""``manifest.json`` of a run folder: what ran, on what, with which seeds, and whether it finished.

The manifest is rewritten atomically (:data:`MANIFEST_FORMAT`, a
:class:`mindscope.io.ManifestFormat`: temp file + rename, ``kind: "run"``, ``format_version``,
``created``, ``updated``) at the start of a run (status ``"running"``) and once more
at the very end (status ``"complete"`` or ``"failed"``), after every other file is in place. A
reader trusts a run folder only when its manifest says ``"complete"`` and the hashes of the files
it lists match.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mindscope import io

__all__ = [
    "KIND",
    "FORMAT_VERSION",
    "MANIFEST_FORMAT",
    "STATUSES",
    "Manifest",
    "file_sha256",
    "version_tuple",
    "write_text_atomic",
]

FORMAT_VERSION = 1
"""Version of the run-folder layout; bumped when a reader of the old layout would misread it."""

STATUSES = ("running", "complete", "failed")

KIND = "run"
"""The ``kind`` of a run folder's manifest (:func:`mindscope.io.read_manifest`)."""

MANIFEST_FORMAT = io.ManifestFormat(KIND, FORMAT_VERSION)
"""The run manifest's kind and version (the first manifests' ``format`` key reads too)."""


@dataclass
class Manifest:
    """The content of ``manifest.json``."""

    name: str
    """The run's name (the folder is ``<timestamp>-<name>``)."""
    mindscope_version: str
    """Version of mindscope that wrote the run."""
    format_version: int = FORMAT_VERSION
    """Run-folder layout version (:data:`FORMAT_VERSION`)."""
    kind: str = KIND
    """Always ``"run"``."""
    status: str = "running"
    """``running`` until the run ends, then ``complete`` or ``failed``."""
    created: str = ""
    """ISO 8601 UTC time the run started."""
    finished: str = ""
    """ISO 8601 UTC time the run ended (empty while running)."""
    updated: str = ""
    """ISO 8601 UTC time the manifest was last written (set by :meth:`write`)."""
    seed: int = 0
    """The run's seed."""
    config_sha256: str = ""
    """Hash of the resolved ``config.yaml``."""
    models: list[dict[str, Any]] = field(default_factory=list)
    """One entry per model read: ``name``, ``revision``, ``weights_hash``."""
    data: dict[str, str] = field(default_factory=dict)
    """Dataset name -> content hash (e.g. :func:`mindscope.data.dataset_hash`)."""
    files: dict[str, str] = field(default_factory=dict)
    """Path inside the run folder -> SHA-256 of its bytes, for every file the run wrote."""
    environment: dict[str, str] = field(default_factory=dict)
    """Versions of python, torch, transformers, ... and the device used."""
    error: str = ""
    """One-line error message when ``status`` is ``failed``."""

    def to_json(self) -> str:
        """The manifest as pretty JSON text."""
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Manifest:
        """Build from parsed JSON, ignoring keys a newer writer may have added (and reading the
        ``format`` key of the first manifests as ``format_version``)."""
        known = {f.name for f in fields(cls)}
        data = dict(data)
        if "format" in data and "format_version" not in data:
            data["format_version"] = data.pop("format")
        return cls(**{k: v for k, v in data.items() if k in known})

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write ``manifest.json`` atomically (:data:`MANIFEST_FORMAT`)."""
        return MANIFEST_FORMAT.write(path, asdict(self))

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> Manifest:
        """Read and check ``manifest.json``; raises :class:`mindscope.io.ManifestError`."""
        data = MANIFEST_FORMAT.read(path)
        try:
            return cls.from_dict(data)
        except TypeError as exc:
            raise io.ManifestError(f"{path} is corrupted: {exc}") from None


def version_tuple(version: str) -> tuple[int, ...]:
    """``"0.10.2rc1"`` -> ``(0, 10, 2)``: the leading numeric release parts of a version."""
    parts = []
    for piece in version.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
        if m.end() != len(piece):
            break
    return tuple(parts)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (:func:`mindscope.io.hash_file`)."""
    return io.hash_file(path)


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) atomically (:func:`mindscope.io.atomic_write_text`)."""
    return io.atomic_write_text(path, text)
