"""The sweep manifest: what is finished, per checkpoint x stage, so a restart recomputes nothing.

``<out>/manifest.json``::

    {"format": 1, "stages": {"lens": "<config hash>", ...}, "seed": 0,
     "checkpoints": {"step8": {"step": 8, "weights_hash": "...", "duplicate_of": null}},
     "done": {"step8": {"lens": {"rows": "rows/step8.lens.parquet",
                                 "state": "state/step8.lens.safetensors", "seconds": 1.2,
                                 "forwards": 40, "init_from": "step4"}}}}

Rows go to ``rows/<revision>.<stage>.parquet`` and stage states (a tuned lens's translators) to
``state/<revision>.<stage>.safetensors``; each file is written before the manifest entry that
names it, and every write is atomic (temporary file + rename), so a sweep killed at any moment
leaves only finished entries behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.errors import ConfigError

__all__ = ["Manifest", "config_hash"]

FORMAT = 1


def config_hash(obj: Any) -> str:
    """16-hex-digit hash of a JSON-ready object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_bytes(path: Path, write: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


class Manifest:
    """The manifest of one sweep folder (created on first use)."""

    def __init__(self, root: Path, stage_hashes: dict[str, str], seed: int) -> None:
        self.root = Path(root)
        self.path = self.root / "manifest.json"
        data: dict[str, Any] | None = None
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except ValueError:
                raise ConfigError(
                    f"{self.path} is not valid JSON; move it away to restart"
                ) from None
        elif self.root.is_dir() and any(self.root.iterdir()):
            raise ConfigError(f"{self.root} exists and is not a sweep folder; choose another out")
        if data is None:
            data = {"format": FORMAT, "stages": {}, "seed": seed, "checkpoints": {}, "done": {}}
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
        _atomic_bytes(self.root / rel_rows, lambda t: rows.to_parquet(t, index=False))
        rel_state = None
        if state is not None:
            from safetensors.torch import save_file

            rel_state = f"state/{revision}.{stage}.safetensors"
            tensors = {k: v.contiguous() for k, v in state.items()}
            _atomic_bytes(self.root / rel_state, lambda t: save_file(tensors, t))
        self.data["done"].setdefault(revision, {})[stage] = {
            "rows": rel_rows,
            "state": rel_state,
            **{k: v for k, v in info.items() if isinstance(v, int | float | str) or v is None},
        }
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        text = json.dumps(self.data, indent=1, sort_keys=True) + "\n"
        _atomic_bytes(self.path, lambda t: Path(t).write_text(text))
