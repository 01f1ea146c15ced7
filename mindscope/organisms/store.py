"""On-disk layout of trained organisms: checkpoint folders plus a manifest of content hashes.

``<organisms_dir>/<name>/seed<S>/`` holds one Hugging Face folder per revision (``step0``,
``step1``, ...) and ``manifest.json`` (:data:`MANIFEST_FORMAT`: ``kind: "organism"``)::

    {"kind": "organism", "format_version": 2, "created", "updated", "status": "complete",
     "name", "seed", "config", "config_hash", "final", "train_seconds", "versions",
     "revisions": {"step0": {"step": 0, "files": {"model.safetensors": "<sha256>", ...},
                             "metrics": {...}}, ...},
     "info": {...}}

Manifests of format 1 (``"format": 1``, no kind, no status; the shipped organisms) still read.

Training writes into the sibling folder :func:`partial_root` (``.partial-seed<S>``) and
renames it into place when it ends, so a crash never leaves a half-written organism behind a
valid manifest; meanwhile that folder's manifest has ``status: "training"`` and a ``progress``
entry, and a rerun of the same training resumes from it. A file whose hash no longer matches
the manifest marks the organism as corrupted.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from mindscope import io
from mindscope.paths import organisms_dir

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "NOT_HASHED",
    "organism_root",
    "partial_root",
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


def _upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1 (no kind, no status, written only once training had finished) -> 2."""
    data.setdefault("status", "complete")
    return data


MANIFEST_FORMAT = io.ManifestFormat("organism", 2, _upgrade, sort_keys=False, indent=1)
"""The organism manifest (:class:`mindscope.io.ManifestFormat`); format 1 reads as complete."""


def organism_root(name: str, seed: int) -> Path:
    """Cache folder of organism ``name`` trained with ``seed``."""
    return organisms_dir() / name / f"seed{seed}"


def partial_root(root: Path) -> Path:
    """Where the training of ``root`` keeps its unfinished work (``<parent>/.partial-<name>``);
    renamed onto ``root`` when training ends."""
    return root.parent / f".partial-{root.name}"


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
    return io.config_hash(payload)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (:func:`mindscope.io.hash_file`)."""
    return io.hash_file(path)


def hash_dir(directory: Path) -> dict[str, str]:
    """``{file name: sha256}`` of every regular file in ``directory`` (not recursive)."""
    return {p.name: io.hash_file(p) for p in sorted(directory.iterdir()) if p.is_file()}


def read_manifest(root: Path, *, finished: bool = True) -> dict[str, Any] | None:
    """The manifest in ``root`` (format 1 migrated), or ``None`` when missing or unreadable.

    ``finished``: only a finished organism's manifest (one with ``revisions``); ``False`` also
    returns the ``status: "training"`` manifest of a :func:`partial_root`.

    Raises:
        mindscope.io.ManifestError: a manifest of another kind, or of a newer format.
    """
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        data = MANIFEST_FORMAT.read(path)
    except io.ManifestUnreadable:
        return None
    if finished and (data.get("status") != "complete" or "revisions" not in data):
        return None
    return data


def write_manifest(root: Path, manifest: Mapping[str, Any], *, status: str = "complete") -> None:
    """Write ``manifest.json`` into ``root`` atomically (status ``complete`` unless given)."""
    MANIFEST_FORMAT.write(root / MANIFEST, manifest, status=status)


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
    with io.locked(root.parent / f".{root.name}.lock"):
        yield


def replace_dir(tmp: Path, root: Path) -> None:
    """Move the finished folder ``tmp`` to ``root``, removing whatever was there."""
    io.replace_dir(tmp, root)
