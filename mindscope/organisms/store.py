"""On-disk layout of trained organisms: checkpoint folders plus a manifest of content hashes.

``<organisms_dir>/<name>/seed<S>/`` holds one Hugging Face folder per revision (``step0``,
``step1``, ...) and ``manifest.json``::

    {"name", "seed", "config", "config_hash", "final", "train_seconds", "versions",
     "revisions": {"step0": {"step": 0, "files": {"model.safetensors": "<sha256>", ...},
                             "metrics": {...}}, ...},
     "info": {...}}

Training writes into a temporary sibling folder and renames it into place, so a crash never
leaves a half-written organism behind a valid manifest. A file whose hash no longer matches the
manifest marks the organism as corrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from mindscope.paths import organisms_dir

__all__ = [
    "MANIFEST",
    "NOT_HASHED",
    "organism_root",
    "shipped_root",
    "config_hash",
    "hash_dir",
    "file_sha256",
    "read_manifest",
    "write_manifest",
    "corrupted_files",
    "locked",
    "replace_dir",
]

MANIFEST = "manifest.json"


def organism_root(name: str, seed: int) -> Path:
    """Cache folder of organism ``name`` trained with ``seed``."""
    return organisms_dir() / name / f"seed{seed}"


NOT_HASHED = ("threads", "transcript_segments")
"""Config fields left out of :func:`config_hash`: they change how training runs (thread count:
the last bits of the weights; transcript: what is logged), not which model it trains."""


def shipped_root(name: str) -> Path:
    """Folder of organism ``name``'s weights shipped inside the package (seed 0, final step)."""
    return Path(__file__).parent / "shipped" / name


def config_hash(config: Any) -> str:
    """A 16-hex-digit hash of a (dataclass) config's JSON form, without :data:`NOT_HASHED`."""
    payload = asdict(config) if is_dataclass(config) and not isinstance(config, type) else config
    payload = {k: v for k, v in dict(payload).items() if k not in NOT_HASHED}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    return _sha256(path)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_dir(directory: Path) -> dict[str, str]:
    """``{file name: sha256}`` of every regular file in ``directory`` (not recursive)."""
    return {p.name: _sha256(p) for p in sorted(directory.iterdir()) if p.is_file()}


def read_manifest(root: Path) -> dict[str, Any] | None:
    """The manifest in ``root``, or ``None`` when missing or unreadable."""
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "revisions" in data else None


def write_manifest(root: Path, manifest: Mapping[str, Any]) -> None:
    """Write ``manifest.json`` into ``root``."""
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")  # keeps step order


def corrupted_files(root: Path, manifest: Mapping[str, Any], revision: str) -> list[str]:
    """Files of ``revision`` that are missing, extra or whose hash differs from the manifest."""
    expected = manifest["revisions"][revision]["files"]
    folder = root / revision
    if not folder.is_dir():
        return [f"{revision}/"]
    actual = hash_dir(folder)
    bad = [f for f, h in expected.items() if actual.get(f) != h]
    bad += [f for f in actual if f not in expected]
    return sorted(f"{revision}/{f}" for f in bad)


@contextlib.contextmanager
def locked(root: Path) -> Iterator[None]:
    """An exclusive inter-process lock on an organism folder (so two processes never both train)."""
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{root.name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def replace_dir(tmp: Path, root: Path) -> None:
    """Move the finished folder ``tmp`` to ``root``, removing whatever was there."""
    if root.exists():
        shutil.rmtree(root)
    os.replace(tmp, root)
