"""A steering vector: a direction at one site, tied to the model it was read from."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = ["SteeringVector", "load_vector"]


@dataclass(frozen=True)
class SteeringVector:
    """A direction ``[d_model]`` added at ``site``.

    Attributes:
        site: canonical site name (``"resid_post.3"``).
        vector: ``[d_model]`` float32 on the CPU.
        model_hash: ``weights_hash`` of the model it was read from (refused on another model).
        method: how it was made (``"caa"``, ``"pca"``, or an algebra expression).
        meta: plain JSON facts (number of pairs, ...).
    """

    site: str
    vector: torch.Tensor
    model_hash: str
    method: str = "caa"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def d(self) -> int:
        """Width."""
        return int(self.vector.shape[-1])

    def _same(self, other: SteeringVector) -> None:
        if not isinstance(other, SteeringVector):
            raise TypeError(f"cannot combine a steering vector with {type(other).__name__}")
        if other.site != self.site or other.model_hash != self.model_hash:
            raise MindscopeError(
                f"cannot combine vectors of {self.site}@{self.model_hash} and "
                f"{other.site}@{other.model_hash}: same site and model needed"
            )

    def __add__(self, other: SteeringVector) -> SteeringVector:
        self._same(other)
        return SteeringVector(
            self.site,
            self.vector + other.vector,
            self.model_hash,
            f"({self.method}+{other.method})",
        )

    def __sub__(self, other: SteeringVector) -> SteeringVector:
        self._same(other)
        return SteeringVector(
            self.site,
            self.vector - other.vector,
            self.model_hash,
            f"({self.method}-{other.method})",
        )

    def __mul__(self, k: float) -> SteeringVector:
        k = float(k)
        if not math.isfinite(k):
            raise MindscopeError(f"steering multiplier must be finite, got {k}")
        return SteeringVector(self.site, self.vector * k, self.model_hash, f"{k:g}*{self.method}")

    __rmul__ = __mul__

    def __neg__(self) -> SteeringVector:
        return self * -1.0

    def normalized(self) -> SteeringVector:
        """Unit-norm copy."""
        norm = float(self.vector.norm())
        if norm == 0:
            raise MindscopeError("cannot normalise a zero steering vector")
        return SteeringVector(
            self.site, self.vector / norm, self.model_hash, self.method, self.meta
        )

    def cosine(self, other: SteeringVector | torch.Tensor) -> float:
        """Cosine similarity with another vector (or a ``[d]`` tensor)."""
        v = other.vector if isinstance(other, SteeringVector) else torch.as_tensor(other)
        return float(torch.nn.functional.cosine_similarity(self.vector.float(), v.float(), dim=0))

    def check_model(self, h: Any) -> None:
        """Refuse a model other than the one this vector was read from (hash and width)."""
        if self.model_hash != h.weights_hash:
            raise MindscopeError(
                f"steering vector was read from model {self.model_hash}, not {h.weights_hash} "
                f"({h.name}); read it again on this model"
            )
        if self.d != h.d_model:
            raise MindscopeError(f"steering vector has width {self.d}, the model {h.d_model}")

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` + ``vector.safetensors`` into a new folder ``path``."""
        from safetensors.torch import save_file

        from mindscope.io import atomic_path, atomic_write_json

        out = Path(path)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise MindscopeError(f"{out} already exists; refusing to overwrite it")
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "vector.safetensors") as tmp:
            save_file({"vector": self.vector.detach().float().contiguous().cpu()}, str(tmp))
        cfg = {
            "kind": "steering_vector",
            "site": self.site,
            "model_hash": self.model_hash,
            "method": self.method,
            "d_model": self.d,
            "meta": self.meta,
        }
        atomic_write_json(out / "config.json", cfg)
        return out


def load_vector(path: str | Path, h: Any | None = None) -> SteeringVector:
    """Read a vector saved by :meth:`SteeringVector.save`; with ``h``, refuse another model."""
    from safetensors.torch import load_file

    folder = Path(path)
    cfg_p, w_p = folder / "config.json", folder / "vector.safetensors"
    if not cfg_p.exists() or not w_p.exists():
        raise MindscopeError(
            f"no steering vector at {folder} (need config.json + vector.safetensors)"
        )
    cfg = json.loads(cfg_p.read_text())
    if cfg.get("kind") != "steering_vector":
        raise MindscopeError(f"{folder} does not hold a steering vector")
    vec = SteeringVector(
        cfg["site"], load_file(str(w_p))["vector"], cfg["model_hash"], cfg["method"], cfg["meta"]
    )
    if h is not None:
        vec.check_model(h)
    return vec
