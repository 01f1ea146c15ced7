"""The one place for file I/O: content hashes, atomic writes, inter-process locks, manifests.

* :func:`hash_file` / :func:`hash_bytes` / :func:`hasher`: hex digests (SHA-256 by default;
  BLAKE2b for the activation store's shard hashes), files read in 4 MiB chunks;
  :func:`config_hash`: a short hash of a JSON-ready object (configs, headers).
* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json` and
  :func:`atomic_path`: write a temp file in the target's folder, fsync, rename over the target;
  a reader sees the old file or the new one, never half of one. Files get the usual ``0644``
  (``0666`` less the process umask), not ``tempfile.mkstemp``'s ``0600``.
  :func:`move_into_place` renames a finished file; :func:`atomic_dir` / :func:`replace_dir` do
  the same for whole folders.
* :func:`locked`: an exclusive lock between processes (the ``filelock`` library), so two
  extractions or trainings of the same thing never run at once.
* :class:`ManifestFormat` (with :func:`write_manifest` / :func:`read_manifest` underneath): the
  one manifest layout. Every ``manifest.json`` (run folders, sweep folders, organisms, the
  activation store) carries ``kind``, ``format_version``, ``created`` and ``updated`` (plus
  ``status`` where a folder can be unfinished); a reader refuses another kind and a version
  newer than it knows, in one line, and migrates older files on read.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = [
    "hash_file",
    "hash_bytes",
    "hasher",
    "config_hash",
    "atomic_path",
    "move_into_place",
    "atomic_dir",
    "replace_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "locked",
    "ManifestError",
    "ManifestUnreadable",
    "write_manifest",
    "read_manifest",
    "ManifestFormat",
    "utc_now",
    "FILE_MODE",
]

_CHUNK = 1 << 22


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
"""Mode of every file written here: ``0666`` less the umask (``0644`` with the usual ``022``)."""


def hasher(algorithm: str = "sha256", *, digest_size: int = 16) -> Any:
    """A fresh ``hashlib`` object, for hashes fed piece by piece (``"blake2b"``:
    ``digest_size`` bytes, 16 by default)."""
    if algorithm == "blake2b":
        return hashlib.blake2b(digest_size=digest_size)
    return hashlib.new(algorithm)


def hash_bytes(data: bytes, algorithm: str = "sha256") -> str:
    """Hex digest of ``data`` (``"blake2b"``: 16-byte BLAKE2b)."""
    h = hasher(algorithm)
    h.update(data)
    return h.hexdigest()


def hash_file(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file's bytes, read in 4 MiB chunks (``"blake2b"``: 16-byte BLAKE2b)."""
    h = hasher(algorithm)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def config_hash(obj: Any, length: int = 16) -> str:
    """The first ``length`` hex digits of the SHA-256 of ``obj``'s JSON (sorted keys).

    The JSON is ``json.dumps(obj, sort_keys=True)`` exactly, so hashes recorded in existing
    manifests (organism configs, sweep stages) stay valid.
    """
    return hash_bytes(json.dumps(obj, sort_keys=True).encode())[:length]


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


def move_into_place(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Rename the finished file ``src`` onto ``dst`` (same file system) after an fsync."""
    with open(src, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(src, dst)
    return Path(dst)


def replace_dir(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Move the finished folder ``src`` to ``dst``, removing whatever was at ``dst``."""
    target = Path(dst)
    if target.exists():
        shutil.rmtree(target)
    os.replace(src, target)
    return target


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str], *, replace: bool = True) -> Iterator[Path]:
    """Yield a fresh temp folder next to ``path``; on success it is renamed onto ``path``.

    ``replace=False`` keeps a ``path`` that another process finished meanwhile (the temp folder
    is then dropped). On an exception the temp folder is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        yield tmp
        if replace:
            replace_dir(tmp, target)
        elif not target.exists():
            try:
                os.replace(tmp, target)
            except OSError:  # another process renamed its folder there first: keep that one
                if not target.is_dir():
                    raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


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


class ManifestUnreadable(ManifestError):
    """A manifest is missing or corrupted (not JSON, not an object)."""


def write_manifest(
    path: str | os.PathLike[str],
    data: Mapping[str, Any],
    *,
    kind: str,
    version: int,
    sort_keys: bool = True,
    indent: int | None = 2,
) -> Path:
    """Write a manifest atomically: ``data`` plus ``kind`` and ``format_version`` (``sort_keys``
    False: in ``data``'s order, after ``kind`` and ``format_version``)."""
    body = {"kind": kind, "format_version": version, **dict(data)}
    body["kind"], body["format_version"] = kind, version
    return atomic_write_json(path, body, indent=indent, sort_keys=sort_keys)


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
        raise ManifestUnreadable(f"no manifest at {p}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestUnreadable(f"{p} is corrupted: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ManifestUnreadable(f"{p} is corrupted: not a JSON object")
    if data.get("kind", kind) != kind:
        raise ManifestError(f"{p} is a {data.get('kind')!r} manifest, not a {kind!r} one")
    got = data.get("format_version", data.get("format", 0))
    if not isinstance(got, int) or got > version:
        raise ManifestError(
            f"{p} has format version {got}, newer than this mindscope reads ({version}); "
            "upgrade mindscope"
        )
    return upgrade(data) if upgrade is not None else data


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-01-31T12:00:00+00:00``)."""
    return _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat()


@dataclass(frozen=True)
class ManifestFormat:
    """One kind of ``manifest.json``: its ``kind``, newest ``format_version``, and how to read
    the older versions. Runs, sweeps, organisms and the activation store each declare one.

    Every manifest written through :meth:`write` carries ``kind``, ``format_version``,
    ``created`` (kept from the data when it has the key, else now) and ``updated`` (now), plus
    ``status`` when given. Older files read with what they had (no ``created`` before
    format 2 of sweeps and organisms).
    """

    kind: str
    """What the manifest describes (``"run"``, ``"sweep"``, ``"organism"``, ``"activations"``)."""
    version: int
    """The newest ``format_version`` this mindscope writes and reads."""
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None
    """Turns a manifest of an older version (its ``format_version`` still set) into the
    current layout."""
    sort_keys: bool = True
    """Write keys sorted (``False``: in the data's order, e.g. revisions in step order)."""
    indent: int | None = 2
    """JSON indentation of the written file."""

    def write(
        self,
        path: str | os.PathLike[str],
        data: Mapping[str, Any],
        *,
        status: str | None = None,
    ) -> Path:
        """Write ``data`` as this kind's manifest, atomically (see the class doc)."""
        body = {k: v for k, v in data.items() if k not in ("kind", "format_version", "format")}
        if "created" not in body:
            body["created"] = utc_now()
        body["updated"] = utc_now()
        if status is not None:
            body["status"] = status
        return write_manifest(
            path,
            body,
            kind=self.kind,
            version=self.version,
            sort_keys=self.sort_keys,
            indent=self.indent,
        )

    def read(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        """Read a manifest of this kind, migrating older versions to the current layout.

        Raises:
            ManifestError: missing, corrupted, another kind, or a newer version (one line).
        """
        data = read_manifest(path, kind=self.kind, version=self.version)
        got = data.pop("format", None)
        data["format_version"] = data.get("format_version", got if got is not None else 0)
        if data["format_version"] < self.version and self.upgrade is not None:
            data = self.upgrade(data)
        data["kind"] = self.kind
        data["format_version"] = self.version
        return data
