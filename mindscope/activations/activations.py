"""``Activations``: a store-backed view of extracted residual activations."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mindscope.errors import MindscopeError

if TYPE_CHECKING:
    from mindscope.activations.store import StoreFolder

__all__ = ["Activations"]


class Activations:
    """Residual activations of one dataset, one shard per layer on disk.

    ``acts[k]`` is a float32 tensor ``[n, d_model]`` (prompts) or ``[n, 2, d_model]`` (contrast
    pairs, side 0 then side 1) for layer ``k`` (0 = embeddings, ``k`` = after block ``k``).
    ``acts.stack()`` is ``[layers, n, ...]``. Shards are memory-mapped; only what is indexed is
    read.
    """

    def __init__(self, folder: StoreFolder, layers: Sequence[int]) -> None:
        self._folder = folder
        self.layers: list[int] = list(layers)

    @property
    def path(self) -> Path:
        """The store folder holding the shards."""
        return self._folder.path

    @property
    def kind(self) -> str:
        """``"text"`` or ``"pairs"``."""
        return self._folder.key.kind

    @property
    def n(self) -> int:
        """Number of items (prompts or pairs)."""
        return self._folder.key.n

    @property
    def manifest(self) -> dict[str, Any]:
        """The store manifest (shapes, dtypes, hashes, mindscope version)."""
        m = self._folder.manifest()
        assert m is not None
        return m

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one layer: ``(n, d)`` or ``(n, 2, d)``."""
        return tuple(self.manifest["shards"][str(self.layers[0])]["shape"])

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(self.layers)

    def numpy(self, layer: int) -> np.ndarray:
        """Read-only memory map of one layer's shard."""
        if layer not in self.layers:
            raise MindscopeError(f"layer {layer} was not extracted; available: {self.layers}")
        return self._folder.open_shard(layer)

    def __getitem__(self, layer: int) -> torch.Tensor:
        """One layer as a tensor ``[n, d]`` or ``[n, 2, d]``."""
        return torch.from_numpy(np.array(self.numpy(layer)))

    def stack(self, layers: Sequence[int] | None = None) -> torch.Tensor:
        """Several layers as one tensor ``[layers, n, ...]`` (default: every extracted layer)."""
        layers = self.layers if layers is None else list(layers)
        return torch.from_numpy(np.stack([np.asarray(self.numpy(k)) for k in layers]))

    def verify(self) -> None:
        """Re-hash every shard against the manifest (raises StoreError on a mismatch)."""
        for layer in self.layers:
            self._folder.check_shard(layer, self.manifest["shards"][str(layer)], full=True)

    def __repr__(self) -> str:
        return (
            f"Activations(kind={self.kind!r}, n={self.n}, layers={self.layers}, path={self.path})"
        )
