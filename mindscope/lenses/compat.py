"""Read lenses saved by the tuned-lens package (``config.json`` + ``params.pt``).

Its ``params.pt`` is the state dict of a ``ModuleList`` of ``nn.Linear(d, d)`` translators
(keys ``"{k}.weight"``, ``"{k}.bias"``) applied residually (``h + W_k h + b_k``), exactly the
parametrisation of :class:`mindscope.lenses.TunedLens`. Its ``unembed_hash`` hashes the printed
unembedding matrix; :func:`tuned_lens_hash` recomputes it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from mindscope.errors import MindscopeError
from mindscope.models import ModelHandle

__all__ = ["PARAMS_PT", "tuned_lens_hash", "load_tuned_lens_package"]

PARAMS_PT = "params.pt"


def tuned_lens_hash(weight: torch.Tensor) -> str:
    """The tuned-lens package's ``tensor_hash`` of an unembedding matrix ``[vocab, d_model]``."""
    arr = weight.detach().cpu().float().numpy()
    with np.printoptions(
        precision=8, threshold=1000, edgeitems=3, linewidth=75, suppress=False, legacy=False
    ):
        text = np.array_str(arr, precision=1)
    from mindscope.io import hash_bytes

    return hash_bytes(text.encode())


def load_tuned_lens_package(
    d: Path, config: dict[str, Any], h: ModelHandle
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read ``d/params.pt``; returns ``(weight [L, d, d], bias [L, d])`` after checking ``h``."""
    n, width = config.get("num_hidden_layers"), config.get("d_model")
    if n != h.n_layers:
        raise MindscopeError(
            f"lens {d} has {n} layers but {h.name} has {h.n_layers}: it was trained for "
            "another model"
        )
    if width != h.d_model:
        raise MindscopeError(f"lens {d} has width {width} but {h.name} has d_model {h.d_model}")
    want_hash = config.get("unembed_hash")
    weight_u = getattr(h.unembed, "weight", None)
    if want_hash and isinstance(weight_u, torch.Tensor) and tuned_lens_hash(weight_u) != want_hash:
        raise MindscopeError(
            f"lens {d} was trained for another model: its unembedding hash differs from {h.name}'s"
        )
    try:
        state = torch.load(d / PARAMS_PT, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file
        raise MindscopeError(f"cannot read {d / PARAMS_PT}: {type(exc).__name__}") from None
    if not isinstance(state, dict):
        raise MindscopeError(f"{d / PARAMS_PT} is not a state dict")
    weights, biases = [], []
    for k in range(h.n_layers):
        w = state.get(f"{k}.weight")
        if not isinstance(w, torch.Tensor) or tuple(w.shape) != (h.d_model, h.d_model):
            raise MindscopeError(f"{d / PARAMS_PT}: missing or misshapen translator {k}")
        b = state.get(f"{k}.bias")
        weights.append(w.float())
        biases.append(b.float() if isinstance(b, torch.Tensor) else torch.zeros(h.d_model))
    return torch.stack(weights), torch.stack(biases)  # [L, d, d], [L, d]
