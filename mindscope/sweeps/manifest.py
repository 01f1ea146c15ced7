"""The sweep manifest: what is finished, per checkpoint x stage, so a restart recomputes nothing.

``<out>/manifest.json`` (:data:`MANIFEST_FORMAT`, ``kind: "sweep"``)::

    {"kind": "sweep", "format_version": 2, "created": ..., "updated": ...,
     "stages": {"lens": "<config hash>", ...}, "seed": 0,
     "checkpoints": {"step8": {"step": 8, "weights_hash": "...", "duplicate_of": null}},
     "done": {"step8": {"lens": {"rows": "rows/step8.lens.parquet",
                                 "state": "state/step8.lens.safetensors", "seconds": 1.2,
                                 "forwards": 40, "init_from": "step4"}}}}

Rows go to ``rows/<revision>.<stage>.parquet`` and stage states (a tuned lens's translators) to
``state/<revision>.<stage>.safetensors``; each file is written before the manifest entry that
names it, and every write is atomic (temporary file + rename), so a sweep killed at any moment
leaves only finished entries behind. Manifests of format 1 (``"format": 1``, no kind) still
read, and are rewritten as format 2 on the next update.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mindscope import io
from mindscope.errors import ConfigError

__all__ = ["Manifest", "MANIFEST_FORMAT", "config_hash"]

MANIFEST_FORMAT = io.ManifestFormat("sweep", 2, indent=1)
"""The sweep manifest (:class:`mindscope.io.ManifestFormat`); format 1 had the same content."""


def config_hash(obj: Any) -> str:
    """16-hex-digit hash of a JSON-ready object (:func:`mindscope.io.config_hash`)."""
    return io.config_hash(obj)


class Manifest:
    """The manifest of one sweep folder (created on first use)."""

    def __init__(self, root: Path, stage_hashes: dict[str, str], seed: int) -> None:
        self.root = Path(root)
        self.path = self.root / "manifest.json"
        data: dict[str, Any] | None = None
        if self.path.is_file():
            try:
                data = MANIFEST_FORMAT.read(self.path)
            except io.ManifestUnreadable:
                raise ConfigError(
                    f"{self.path} is not valid JSON; move it away to restart"
                ) from None
            except io.ManifestError as exc:
                raise ConfigError(f"{exc}; choose another out") from None
        elif self.root.is_dir() and any(self.root.iterdir()):
            raise ConfigError(f"{self.root} exists and is not a sweep folder; choose another out")
        if data is None:
            data = {"stages": {}, "seed": seed, "checkpoints": {}, "done": {}}
        data.setdefault("created", io.utc_now())
        if data.get("seed", seed) != seed:
            raise ConfigError(
                f"{self.root} holds a sweep with seed {data.get('seed')}, not {seed}; "
                "choose another out"
            )
        for name, h in stage_hashes.items():
            old = data["stages"].get(name)
            if old is not None and old != h:
                raise ConfigError(
                    f"{self.root} holds a sweep whose {name!r} stage had another config; "
                    "choose another out (finished results are never overwritten)"
                )
            data["stages"][name] = h
        self.data = data

    # ------------------------------------------------------------- queries
    def is_done(self, revision: str, stage: str) -> bool:
        """Whether ``stage`` finished on ``revision`` (and its rows file exists)."""
        e = self.data["done"].get(revision, {}).get(stage)
        return e is not None and (self.root / e["rows"]).is_file()

    def rows(self, revision: str, stage: str) -> pd.DataFrame:
        """The stored rows of a finished (revision, stage)."""
        return pd.read_parquet(self.root / self.data["done"][revision][stage]["rows"])

    def state(self, revision: str, stage: str) -> dict[str, Any] | None:
        """The stored state of a finished (revision, stage), or ``None``."""
        e = self.data["done"].get(revision, {}).get(stage)
        if e is None or not e.get("state"):
            return None
        from safetensors.torch import load_file

        return dict(load_file(str(self.root / e["state"])))

    # ------------------------------------------------------------- updates
    def note_checkpoint(self, revision: str, step: int, weights_hash: str, dup: str | None) -> None:
        """Record a planned checkpoint (its hash, and which one it duplicates)."""
        self.data["checkpoints"][revision] = {
            "step": step,
            "weights_hash": weights_hash,
            "duplicate_of": dup,
        }

    def record(
        self,
        revision: str,
        stage: str,
        rows: pd.DataFrame,
        state: dict[str, Any] | None,
        info: dict[str, Any],
    ) -> None:
        """Store a finished (revision, stage): rows, state, then the manifest entry."""
        rel_rows = f"rows/{revision}.{stage}.parquet"
        with io.atomic_path(self.root / rel_rows) as tmp:
            rows.to_parquet(tmp, index=False)
        rel_state = None
        if state is not None:
            from safetensors.torch import save_file

            rel_state = f"state/{revision}.{stage}.safetensors"
            tensors = {k: v.contiguous() for k, v in state.items()}
            with io.atomic_path(self.root / rel_state) as tmp:
                save_file(tensors, str(tmp))
        self.data["done"].setdefault(revision, {})[stage] = {
            "rows": rel_rows,
            "state": rel_state,
            **{k: v for k, v in info.items() if isinstance(v, int | float | str) or v is None},
        }
        self.save()

    def save(self) -> None:
        """Write the manifest atomically (:data:`MANIFEST_FORMAT`)."""
        MANIFEST_FORMAT.write(self.path, self.data)
