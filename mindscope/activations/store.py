"""The content-addressed activation store.

One folder per (model weights hash + revision + dtype + tokenizer, dataset hash, position rule,
kind); one ``.npy`` shard per layer (memory-mappable, float32, ``[n, d]`` for prompts or
``[n, 2, d]`` for contrast pairs), and ``manifest.json`` describing them. Shards are written
row-by-row with positioned writes (so resident memory stays bounded by the batch, not the
dataset) into ``layer_XXX.npy.partial`` files; ``progress.json`` records finished batches so an
interrupted extraction resumes; a finished shard is hashed, renamed into place and added to the
manifest, which is always replaced atomically. Nothing complete is ever overwritten.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mindscope import io
from mindscope.errors import StoreError

__all__ = ["StoreKey", "StoreFolder", "ShardWriter", "atomic_write_json"]

MANIFEST = "manifest.json"
PROGRESS = "progress.json"
FORMAT_VERSION = 1
KIND = "activations"
"""The ``kind`` of a store folder's manifest (:func:`mindscope.io.read_manifest`)."""
MANIFEST_FORMAT = io.ManifestFormat(KIND, FORMAT_VERSION)
"""The store folder's manifest (:class:`mindscope.io.ManifestFormat`)."""


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` as JSON to ``path`` atomically (:func:`mindscope.io.atomic_write_json`)."""
    io.atomic_write_json(path, obj, indent=1)


@dataclass(frozen=True)
class StoreKey:
    """What an activation set depends on; its digest names the store folder.

    Attributes:
        model: the model's name (informative; not part of the digest).
        weights_hash: content hash of the weights.
        revision: model revision (``""`` for none).
        dtype: compute dtype of the model.
        tokenizer_hash: hash of the tokenizer.
        dataset_hash: content hash of the prompts or pairs.
        position: position rule spec.
        kind: ``"text"`` or ``"pairs"``.
        n: number of items.
    """

    model: str
    weights_hash: str
    revision: str
    dtype: str
    tokenizer_hash: str
    dataset_hash: str
    position: str
    kind: str
    n: int

    @property
    def digest(self) -> str:
        """Hex digest over every field but ``model``."""
        fields = [
            self.weights_hash,
            self.revision,
            self.dtype,
            self.tokenizer_hash,
            self.dataset_hash,
            self.position,
            self.kind,
            str(self.n),
        ]
        return io.hash_bytes("\x1f".join(fields).encode())[:20]

    def folder_name(self) -> str:
        """``<model-slug>-<digest>``."""
        slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in self.model)[-40:]
        return f"{slug.strip('-.') or 'model'}-{self.digest}"

    def as_dict(self) -> dict[str, Any]:
        """JSON form, stored in the manifest."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _shard_name(layer: int) -> str:
    return f"layer_{layer:03d}.npy"


def _npy_data_offset(path: Path) -> tuple[int, tuple[int, ...], np.dtype]:
    """Header length, shape and dtype of an .npy file (raises StoreError if unreadable)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            return f.tell(), tuple(shape), np.dtype(dtype)
    except (ValueError, OSError, EOFError) as exc:
        raise StoreError(f"activation shard {path} is unreadable ({exc})") from exc


class StoreFolder:
    """One folder of the store: the shards of one (model, dataset, position, kind)."""

    def __init__(self, root: Path, key: StoreKey) -> None:
        self.key = key
        self.path = Path(root) / key.folder_name()

    # ------------------------------------------------------------------ manifest
    def manifest(self) -> dict[str, Any] | None:
        """The manifest, validated against the key, or ``None`` if the folder has none yet."""
        mpath = self.path / MANIFEST
        if not mpath.exists():
            return None
        try:
            m = MANIFEST_FORMAT.read(mpath)
        except io.ManifestError as exc:
            raise StoreError(f"store folder {self.path}: {exc}") from exc
        if m.get("key", {}).get("digest") != self.key.digest:
            raise StoreError(
                f"store manifest {mpath} does not match this model/dataset/position; "
                "the folder belongs to something else (move it away to re-extract)"
            )
        return m

    def stored_layers(self) -> dict[int, dict[str, Any]]:
        """``{layer: shard info}`` of complete, size-checked shards."""
        m = self.manifest()
        if m is None:
            return {}
        out = {}
        for name, info in m.get("shards", {}).items():
            layer = int(name)
            self.check_shard(layer, info)
            out[layer] = info
        return out

    def check_shard(self, layer: int, info: dict[str, Any], *, full: bool = False) -> None:
        """Check a shard exists with the manifest's shape/dtype and full size (and hash if full)."""
        path = self.path / _shard_name(layer)
        if not path.exists():
            raise StoreError(f"activation shard {path} listed in the manifest is missing")
        offset, shape, dtype = _npy_data_offset(path)
        if list(shape) != list(info["shape"]) or str(dtype) != info["dtype"]:
            raise StoreError(
                f"activation shard {path} has shape {list(shape)} {dtype}, manifest says "
                f"{info['shape']} {info['dtype']}"
            )
        expected = offset + int(np.prod(shape)) * dtype.itemsize
        size = path.stat().st_size
        if size != expected:
            raise StoreError(
                f"activation shard {path} is truncated ({size} of {expected} bytes); "
                "move the store folder away to re-extract"
            )
        if full and io.hash_file(path, "blake2b") != info["hash"]:
            raise StoreError(f"activation shard {path} does not match its hash in the manifest")

    def open_shard(self, layer: int) -> np.ndarray:
        """Memory-map a complete shard read-only."""
        return np.load(self.path / _shard_name(layer), mmap_mode="r")

    # ------------------------------------------------------------------ writing
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the folder (concurrent extractions wait)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with io.locked(self.path / ".lock"):
            yield

    def read_progress(self, plan: str, layers: Sequence[int]) -> set[int]:
        """Finished batch ids of an interrupted extraction with the same plan and layers."""
        ppath = self.path / PROGRESS
        if not ppath.exists():
            return set()
        try:
            p = json.loads(ppath.read_text())
        except (OSError, json.JSONDecodeError):
            return set()
        if p.get("plan") != plan or p.get("layers") != list(layers):
            return set()
        for layer in layers:
            if not (self.path / (_shard_name(layer) + ".partial")).exists():
                return set()
        return set(p.get("done", []))

    def write_progress(self, plan: str, layers: Sequence[int], done: set[int]) -> None:
        """Record finished batches."""
        atomic_write_json(
            self.path / PROGRESS, {"plan": plan, "layers": list(layers), "done": sorted(done)}
        )

    def shard_writers(
        self, layers: Sequence[int], row_shape: tuple[int, ...], resume: bool
    ) -> dict[int, ShardWriter]:
        """Open (or create) the partial shards of ``layers``, each ``[n, *row_shape]`` float32."""
        shape = (self.key.n, *row_shape)
        return {
            layer: ShardWriter(self.path / (_shard_name(layer) + ".partial"), shape, resume)
            for layer in layers
        }

    def commit(self, writers: dict[int, ShardWriter], version: str) -> dict[str, Any]:
        """Close, hash and move partial shards into place; update the manifest atomically."""
        m = self.manifest() or {
            "mindscope_version": version,
            "key": {**self.key.as_dict(), "digest": self.key.digest},
            "shards": {},
        }
        for layer, w in sorted(writers.items()):
            w.close()
            final = self.path / _shard_name(layer)
            if final.exists():
                raise StoreError(f"refusing to overwrite existing shard {final}")
            info = {
                "shape": list(w.shape),
                "dtype": "float32",
                "hash": io.hash_file(w.path, "blake2b"),
                "file": final.name,
            }
            io.move_into_place(w.path, final)
            m["shards"][str(layer)] = info
        m["mindscope_version"] = version
        MANIFEST_FORMAT.write(self.path / MANIFEST, m)
        with contextlib.suppress(FileNotFoundError):
            (self.path / PROGRESS).unlink()
        return m


class ShardWriter:
    """Writes rows of a float32 ``.npy`` file in place with ``os.pwrite`` (no memory map)."""

    def __init__(self, path: Path, shape: tuple[int, ...], resume: bool) -> None:
        self.path = path
        self.shape = shape
        self.row_bytes = int(np.prod(shape[1:])) * 4
        if not (resume and path.exists()):
            header = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=shape)
            header.flush()
            del header
        self.offset, got_shape, _ = _npy_data_offset(path)
        if got_shape != shape:
            raise StoreError(f"partial shard {path} has shape {got_shape}, expected {shape}")
        self._fd: int | None = os.open(path, os.O_RDWR)

    def write_rows(self, rows: np.ndarray, values: np.ndarray) -> None:
        """Write ``values[i]`` (``[k, *row_shape]``) to row ``rows[i]``."""
        assert self._fd is not None
        values = np.ascontiguousarray(values, dtype=np.float32)
        order = np.argsort(rows)
        rows, values = rows[order], values[order]
        # coalesce consecutive rows into single writes
        start = 0
        for i in range(1, len(rows) + 1):
            if i == len(rows) or rows[i] != rows[i - 1] + 1:
                buf = values[start:i].tobytes()
                os.pwrite(self._fd, buf, self.offset + int(rows[start]) * self.row_bytes)
                start = i

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
