"""The one place for file I/O: content hashes, atomic writes, inter-process locks, manifests.

* :func:`hash_file` / :func:`hash_bytes`: hex digests (SHA-256 by default; BLAKE2b for the
  activation store's shard hashes), files read in 4 MiB chunks.
* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` and
  :func:`atomic_path`: write a temp file in the target's folder, fsync, rename over the target;
  a reader sees the old file or the new one, never half of one. Files get the usual ``0644``
  (``0666`` less the process umask), not ``tempfile.mkstemp``'s ``0600``.
* :func:`locked`: an exclusive lock between processes (the ``filelock`` library), so two
  extractions or trainings of the same thing never run at once.
* :func:`write_manifest` / :func:`read_manifest`: JSON manifests with a ``kind`` and a
  ``format_version``; a reader refuses another kind, and a version newer than it knows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = [
    "hash_file",
    "hash_bytes",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "locked",
    "ManifestError",
    "write_manifest",
    "read_manifest",
    "FILE_MODE",
]

_CHUNK = 1 << 22


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""Mode of every file written here: ``0666`` less the umask (``0644`` with the usual ``022``)."""


def _hasher(algorithm: str) -> Any:
    if algorithm == "blake2b":
        return hashlib.blake2b(digest_size=16)
    return hashlib.new(algorithm)


def hash_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Hex digest of ``data`` (``"blake2b"``: 16-byte BLAKE2b)."""
    h = _hasher(algorithm)
    h.update(data)
    return h.hexdigest()


def hash_file(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 4 MiB chunks (``"blake2b"``: 16-byte BLAKE2b)."""
    h = _hasher(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it is fsynced and renamed onto ``path``.

    For writers that want a file name (``DataFrame.to_parquet``, ``safetensors.save_file``).
    On an exception the temp file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=target.suffix, dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, FILE_MODE)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename); mode :data:`FILE_MODE`."""
    target = Path(path)
    with atomic_path(target) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(
    path: str | os.PathLike[str], obj: Any, *, indent: int | None = 2, sort_keys: bool = True
) -> Path:
    """Write ``obj`` as JSON (a trailing newline) to ``path`` atomically."""
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n"
    return atomic_write_text(path, text)


@contextlib.contextmanager
def locked(path: str | os.PathLike[str], timeout: float = -1) -> Iterator[None]:
    """Hold an exclusive inter-process lock on the lock file ``path`` while the block runs.

    ``timeout`` seconds to wait (``-1``: forever); a :class:`MindscopeError` when it runs out.
    The lock file itself is left in place (removing it would race with other waiters).
    """
    from filelock import FileLock, Timeout

    lock_path = Path(path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(lock_path), timeout=timeout, mode=FILE_MODE)
    try:
        lock.acquire()
    except Timeout:
        raise MindscopeError(
            f"{lock_path} is locked by another process (waited {timeout} s)"
        ) from None
    try:
        yield
    finally:
        lock.release()


class ManifestError(MindscopeError):
    """A manifest is missing, corrupted, of another kind, or from a newer format."""


def write_manifest(
    path: str | os.PathLike[str], data: Mapping[str, Any], *, kind: str, version: int
) -> Path:
    """Write a manifest atomically: ``data`` plus ``kind`` and ``format_version``."""
    return atomic_write_json(path, {**dict(data), "kind": kind, "format_version": version})


def read_manifest(
    path: str | os.PathLike[str],
    *,
    kind: str,
    version: int,
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Read a manifest written by :func:`write_manifest` (or an older writer).

    Args:
        kind: the kind expected; a manifest naming another kind is refused (one without a kind,
            from before kinds were written, is accepted).
        version: the newest ``format_version`` this reader understands.
        upgrade: turns an older manifest into the current layout.

    Raises:
        ManifestError: missing, not JSON, not an object, another kind, or a newer format.
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"no manifest at {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{p} is corrupted: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{p} is corrupted: not a JSON object")
    if data.get("kind", kind) != kind:
        raise ManifestError(f"{p} is a {data.get('kind')!r} manifest, not a {kind!r} one")
    got = data.get("format_version", data.get("format", 0))
    if not isinstance(got, int) or got > version:
        raise ManifestError(
            f"{p} has format version {got}, newer than this mindscope reads ({version}); "
            "upgrade mindscope"
        )
    return upgrade(data) if upgrade is not None else data
