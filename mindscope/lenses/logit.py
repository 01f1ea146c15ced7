"""The logit lens (nostalgebraist 2020): decode any layer with the model's own head."""

from __future__ import annotations

import torch

from mindscope.lenses.base import check_layer, require_causal
from mindscope.models import ModelHandle

__all__ = ["LogitLens"]


class LogitLens:
    """Decode layer ``k``'s residual stream through the final norm and unembedding, unchanged.

    At ``k = n_layers`` (the last block's output) it returns the model's own logits.
    """

    method = "logit_lens"

    def __init__(self, h: ModelHandle) -> None:
        require_causal(h)
        self.handle = h

    @property
    def n_layers(self) -> int:
        """Number of blocks of the model."""
        return self.handle.n_layers

    def transform(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """The identity: ``[..., d_model]`` -> ``[..., d_model]``."""
        check_layer(layer, self.n_layers)
        return resid

    def logits(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """``[..., d_model]`` residual at layer ``k`` -> ``[..., vocab]`` logits."""
        check_layer(layer, self.n_layers)
        return self.handle.logits_from_resid(resid.to(self.handle.dtype))

    def __call__(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        return self.logits(resid, layer)

    def __repr__(self) -> str:
        return f"LogitLens({self.handle.name!r}, n_layers={self.n_layers})"
