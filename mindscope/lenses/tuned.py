"""The tuned lens (Belrose et al. 2023): one learned affine translator per layer.

Translator ``k`` maps layer ``k``'s residual ``h`` to ``h + A_k h + b_k`` (``A_k = 0``, ``b_k = 0``
at init, so an untrained tuned lens is the logit lens); the result is decoded with the model's
final norm and unembedding. All translators live in one ``[n_layers, d_model, d_model]``
parameter so every layer is translated (and trained) in one batched matrix product. At
``k = n_layers`` the lens is the identity: the model's own output.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mindscope.errors import MindscopeError
from mindscope.lenses import compat
from mindscope.lenses.base import check_layer, require_causal
from mindscope.models import ModelHandle

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Sequence

    from mindscope.lenses.train import TrainConfig

__all__ = ["TunedLens", "FORMAT", "CONFIG_FILE", "PARAMS_FILE"]

FORMAT = "mindscope.tuned_lens"
"""Value of ``config.json``'s ``format`` key for lenses saved by mindscope."""
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.safetensors"
_VERSION = 1


class TunedLens(nn.Module):
    """Affine translators for layers ``0..n_layers-1`` of one model, bound to its handle.

    Attributes:
        weight: ``[n_layers, d_model, d_model]`` the ``A_k`` (translator ``k`` adds ``A_k h``).
        bias: ``[n_layers, d_model]`` the ``b_k``.
        handle: the model the lens decodes with.
        info: provenance saved in ``config.json`` (model name, training config and losses).
    """

    method = "tuned_lens"

    def __init__(self, h: ModelHandle, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        require_causal(h)
        self.handle = h
        n, d = h.n_layers, h.d_model
        self.weight = nn.Parameter(torch.zeros(n, d, d, dtype=dtype, device=h.device))
        self.bias = nn.Parameter(torch.zeros(n, d, dtype=dtype, device=h.device))
        self.info: dict[str, Any] = {}

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self) -> int:
        """Number of blocks of the model (translators exist for ``k < n_layers``)."""
        return int(self.weight.shape[0])

    @property
    def d_model(self) -> int:
        """Residual width."""
        return int(self.weight.shape[-1])

    # ------------------------------------------------------------------ maths
    def transform(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """Translate layer ``k``'s residual: ``[..., d_model]`` -> ``[..., d_model]``.

        Identity at ``k = n_layers``. Computed in the lens dtype (float32 by default).
        """
        k = check_layer(layer, self.n_layers)
        if k == self.n_layers:
            return resid
        x = resid.to(self.weight.dtype)
        return x + x @ self.weight[k].T + self.bias[k]

    def transform_all(self, resid: torch.Tensor) -> torch.Tensor:
        """Translate every layer at once.

        Args:
            resid: ``[n_layers, n, d_model]``, row ``k`` from layer ``k`` (``k < n_layers``).

        Returns:
            ``[n_layers, n, d_model]``.
        """
        if resid.ndim != 3 or resid.shape[0] != self.n_layers:
            raise MindscopeError(
                f"transform_all expects [n_layers={self.n_layers}, n, d_model], "
                f"got {list(resid.shape)}"
            )
        x = resid.to(self.weight.dtype)
        # x + x @ A_k^T + b_k for every k, as one batched product: [L, n, d] @ [L, d, d]
        return x + torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))

    def logits(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """``[..., d_model]`` residual at layer ``k`` -> ``[..., vocab]`` logits."""
        x = self.transform(resid, layer)
        return self.handle.logits_from_resid(x.to(self.handle.dtype))

    def forward(self, resid: torch.Tensor, layer: int) -> torch.Tensor:
        """Same as :meth:`logits`."""
        return self.logits(resid, layer)

    # --------------------------------------------------------------- training
    @classmethod
    def fit(
        cls,
        h: ModelHandle,
        texts: Sequence[str],
        config: TrainConfig | None = None,
        **overrides: Any,
    ) -> TunedLens:
        """Train a tuned lens for ``h`` on ``texts`` (see :class:`mindscope.lenses.TrainConfig`).

        ``overrides`` replace config fields, e.g. ``TunedLens.fit(h, texts, num_steps=50)``.
        """
        from mindscope.lenses.train import TrainConfig, train

        cfg = config or TrainConfig()
        if overrides:
            cfg = cfg.replace(**overrides)
        return train(cls(h), texts, cfg)

    # ------------------------------------------------------------------- I/O
    def save(self, directory: str | os.PathLike[str], *, force: bool = False) -> Path:
        """Write ``config.json`` + ``params.safetensors`` into ``directory``.

        Refuses a non-empty existing directory unless ``force``. Returns the directory.
        """
        from safetensors.torch import save_file

        out = Path(directory)
        if out.exists() and not out.is_dir():
            raise MindscopeError(f"{out} exists and is not a directory")
        if out.is_dir() and any(out.iterdir()) and not force:
            raise MindscopeError(f"{out} already exists and is not empty; pass force to overwrite")
        out.mkdir(parents=True, exist_ok=True)
        h = self.handle
        config = {
            "format": FORMAT,
            "version": _VERSION,
            "n_layers": self.n_layers,
            "d_model": self.d_model,
            "unembed_hash": h.unembed_hash,
            "model": h.name,
            "revision": h.revision,
            "weights_hash": h.weights_hash,
            "dtype": str(self.weight.dtype).removeprefix("torch."),
            **({"info": self.info} if self.info else {}),
        }
        tensors = {
            "weight": self.weight.detach().cpu().contiguous(),
            "bias": self.bias.detach().cpu().contiguous(),
        }
        save_file(tensors, str(out / PARAMS_FILE), metadata={"format": FORMAT})
        (out / CONFIG_FILE).write_text(json.dumps(config, indent=2, default=str) + "\n")
        return out

    @classmethod
    def load(cls, directory: str | os.PathLike[str], h: ModelHandle) -> TunedLens:
        """Load a lens saved by :meth:`save`, or by the tuned-lens package (``params.pt``).

        Raises:
            MindscopeError: the lens was trained on a model with another unembedding, layer
                count or width.
        """
        d = Path(directory)
        if not d.is_dir():
            raise MindscopeError(f"no lens directory at {d}")
        cfg_path = d / CONFIG_FILE
        if not cfg_path.is_file():
            raise MindscopeError(f"{d} has no {CONFIG_FILE}: not a saved lens")
        try:
            config = json.loads(cfg_path.read_text())
        except json.JSONDecodeError as exc:
            raise MindscopeError(f"{cfg_path} is not valid JSON ({exc.msg})") from None
        require_causal(h)
        if config.get("format") == FORMAT:
            return cls._load_native(d, config, h)
        if (d / compat.PARAMS_PT).is_file():
            weight, bias = compat.load_tuned_lens_package(d, config, h)
            lens = cls(h)
            with torch.no_grad():
                lens.weight.copy_(weight)
                lens.bias.copy_(bias)
            lens.info = {"source": "tuned-lens package", "config": config}
            return lens
        raise MindscopeError(f"{d} holds neither {PARAMS_FILE} nor {compat.PARAMS_PT}")

    @classmethod
    def _load_native(cls, d: Path, config: dict[str, Any], h: ModelHandle) -> TunedLens:
        from safetensors.torch import load_file

        _check_shape(config.get("n_layers"), config.get("d_model"), h, d)
        if config.get("unembed_hash") != h.unembed_hash:
            raise MindscopeError(
                f"lens {d} was trained for another model ({config.get('model')!r}): its "
                f"unembedding hash {config.get('unembed_hash')} differs from {h.name}'s "
                f"{h.unembed_hash}"
            )
        p = d / PARAMS_FILE
        if not p.is_file():
            raise MindscopeError(f"{d} has no {PARAMS_FILE}")
        tensors = load_file(str(p))
        want = (h.n_layers, h.d_model, h.d_model)
        if tuple(tensors["weight"].shape) != want:
            raise MindscopeError(f"{p}: weight shape {list(tensors['weight'].shape)} != {want}")
        lens = cls(h, dtype=tensors["weight"].dtype)
        with torch.no_grad():
            lens.weight.copy_(tensors["weight"])
            lens.bias.copy_(tensors["bias"])
        lens.info = dict(config.get("info", {}))
        return lens

    def extra_repr(self) -> str:
        return f"model={self.handle.name!r}, n_layers={self.n_layers}, d_model={self.d_model}"


def _check_shape(n_layers: Any, d_model: Any, h: ModelHandle, where: Path) -> None:
    if n_layers != h.n_layers:
        raise MindscopeError(
            f"lens {where} has {n_layers} layers but {h.name} has {h.n_layers}: "
            "it was trained for another model"
        )
    if d_model != h.d_model:
        raise MindscopeError(
            f"lens {where} has width {d_model} but {h.name} has d_model {h.d_model}"
        )
