"""The sparse-autoencoder contract shared by every architecture.

An SAE maps activations ``x [n, d]`` to sparse non-negative latents ``z [n, n_latents]`` and
back: ``x_hat = z @ W_dec_ + b_dec_`` with unit-norm decoder rows. Every architecture here is
decoder-normalised (rows renormalised after each step, the gradient's parallel part removed),
starts its encoder from the decoder's transpose, trains on inputs scaled so that
``E ||x||^2 = d`` (the scale is kept and undone on output) and runs the same step:

1. pre-activations ``pre = (x - b_dec_) @ W_enc_.T + b_enc_`` without gradients (one dense
   matmul, ``[B, n_latents]``);
2. the architecture picks the active entries (:meth:`SparseAutoencoder._select`);
3. only those entries are recomputed with gradients and decoded through ``embedding_bag``,
   so the backward pass costs ``O(nnz * d)`` instead of ``O(B * n_latents * d)``.

Contract (scikit-learn's): hyper-parameters only in ``__init__``; ``fit(x)`` returns ``self``;
``partial_fit(batch)`` is one streaming step; learned tensors end in ``_``; ``transform(x)``
gives the latents (so an SAE can feed reporters and anomaly detectors); ``save``/``load`` write
``config.json`` + ``model.safetensors`` and refuse an SAE saved for another model or site.
Given targets from another site (``fit(x, y)``, ``partial_fit(x, y)``), the same classes train
*transcoders*: the latents read ``x`` and the decoder predicts ``y`` (Dunefsky et al. 2024);
the encoder then starts from its own random unit rows and the input is not centred on the
decoder bias. Training is deterministic for a seed and resumable: ``fit(source,
checkpoint=dir)`` writes its whole state (weights, Adam moments, step, controllers) every
``checkpoint_every`` steps and picks up from it after a kill.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = ["SparseAutoencoder", "Active", "load_sae", "REGISTRY", "BatchSource"]

FORMAT_VERSION = 1
REGISTRY: dict[str, type[SparseAutoencoder]] = {}

BatchSource = Callable[[int], Tensor]
"""A training source: step number -> ``[batch, d]`` activations (the same batch for the same
step, so a resumed run sees what the killed one would have)."""


@dataclass
class Active:
    """The active entries of a batch's latents, row-major: ``rows``/``cols`` ``[nnz]`` (rows
    sorted), ``vals`` ``[nnz]`` (may carry gradients)."""

    rows: Tensor
    cols: Tensor
    vals: Tensor

    def dense(self, n: int, n_latents: int) -> Tensor:
        """``[n, n_latents]`` latents."""
        z = torch.zeros(n, n_latents, dtype=self.vals.dtype, device=self.vals.device)
        z[self.rows, self.cols] = self.vals
        return z


class SparseAutoencoder:
    """Base class: subclasses implement :meth:`_select` (and may add loss terms).

    Args:
        n_latents: dictionary width.
        k: target number of active latents per input (the L0): exact for TopK, the batch mean
            for BatchTopK and Matryoshka, the controller's target for JumpReLU and L1.
        lr: Adam learning rate; None: ``2e-4 * sqrt(16384 / n_latents)`` (Gao et al. 2024).
        batch_size: inputs per step when ``fit`` is given a tensor.
        n_steps: optimiser steps of ``fit``.
        decay: fraction of the steps at the end over which the learning rate decays to 0.
        aux_coef: weight of the AuxK dead-latent loss (0: off).
        dead_tokens: a latent that has not fired on this many training inputs is dead.
        seed: initialisation and batch order.
        device: ``"cpu"``, ``"cuda"`` ...

    Attributes set by ``fit``/``partial_fit``:
        W_enc_: ``[n_latents, d]`` encoder rows. W_dec_: ``[n_latents, d]`` unit decoder rows.
        b_enc_: ``[n_latents]``. b_dec_: ``[d]``. scale_: input scale (float).
        step_: optimiser steps taken. since_fired_: ``[n_latents]`` inputs since each latent
        last fired. d_in_: activation width. transcoder_: trained with targets (then
        ``W_dec_`` is ``[n_latents, d_out_]`` and ``out_scale_`` the targets' scale).
    """

    arch: ClassVar[str] = ""
    _params: ClassVar[tuple[str, ...]] = (
        "n_latents", "k", "lr", "batch_size", "n_steps", "decay", "aux_coef", "dead_tokens",
        "seed", "device",
    )  # fmt: skip
    _extra_tensors: ClassVar[tuple[str, ...]] = ()

    W_enc_: Tensor
    W_dec_: Tensor
    b_enc_: Tensor
    b_dec_: Tensor
    last_: dict[str, float]
    meta_: dict[str, Any]

    def __init__(
        self,
        n_latents: int = 1024,
        k: int = 16,
        *,
        lr: float | None = None,
        batch_size: int = 1024,
        n_steps: int = 2000,
        decay: float = 0.2,
        aux_coef: float = 1 / 32,
        dead_tokens: int = 100_000,
        seed: int = 0,
        device: str = "cpu",
    ) -> None:
        self.n_latents = n_latents
        self.k = k
        self.lr = lr
        self.batch_size = batch_size
        self.n_steps = n_steps
        self.decay = decay
        self.aux_coef = aux_coef
        self.dead_tokens = dead_tokens
        self.seed = seed
        self.device = device
        self._validate()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.arch:
            REGISTRY[cls.arch] = cls

    # ------------------------------------------------------------------ params
    def _validate(self) -> None:
        if not isinstance(self.n_latents, int) or self.n_latents < 1:
            raise MindscopeError(f"n_latents must be a positive int, got {self.n_latents!r}")
        if not isinstance(self.k, int) or self.k < 1:
            raise MindscopeError(f"k (the L0 target) must be a positive int, got {self.k!r}")
        if self.k > self.n_latents:
            raise MindscopeError(
                f"k={self.k} active latents cannot be met by a dictionary of {self.n_latents}"
            )
        if self.batch_size < 1 or self.n_steps < 0:
            raise MindscopeError("batch_size must be >= 1 and n_steps >= 0")
        if self.lr is not None and not self.lr > 0:
            raise MindscopeError(f"lr must be > 0, got {self.lr}")

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The ``__init__`` hyper-parameters (JSON-ready; scikit-learn's ``clone`` works)."""
        return {k: getattr(self, k) for k in self._params}

    def set_params(self, **params: Any) -> SparseAutoencoder:
        """Set hyper-parameters; unknown names are refused."""
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise MindscopeError(f"{type(self).__name__} has no hyper-parameter(s) {unknown}")
        for k, v in params.items():
            setattr(self, k, v)
        self._validate()
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """Whether the learned tensors exist."""
        return hasattr(self, "W_dec_")

    @property
    def learning_rate(self) -> float:
        """The learning rate in use (``lr`` or the width-scaled default)."""
        return self.lr if self.lr is not None else 2e-4 * math.sqrt(16384 / self.n_latents)

    # ------------------------------------------------------------------ init
    def _init(self, x: Tensor, y: Tensor | None = None) -> None:
        d = int(x.shape[-1])
        d_out = int(y.shape[-1]) if y is not None else d
        g = torch.Generator().manual_seed(self.seed)
        dev = torch.device(self.device)
        w = torch.randn(self.n_latents, d_out, generator=g)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec_ = w.to(dev)
        if y is None:
            self.W_enc_ = w.clone().to(dev)  # encoder = decoder transpose (rows here)
        else:  # a transcoder reads another space: its own random unit rows
            e = torch.randn(self.n_latents, d, generator=g)
            self.W_enc_ = (e / e.norm(dim=1, keepdim=True)).to(dev)
        self.b_enc_ = torch.zeros(self.n_latents, device=dev)
        self.b_dec_ = torch.zeros(d_out, device=dev)
        self.scale_ = _unit_scale(x)
        self.out_scale_ = _unit_scale(y) if y is not None else self.scale_
        self.d_in_ = d
        self.d_out_ = d_out
        self.transcoder_ = y is not None
        self.step_ = 0
        self.since_fired_ = torch.zeros(self.n_latents, dtype=torch.long, device=dev)
        self._init_extra()
        self._init_from_batch(x.float().to(dev) * self.scale_)
        self._adam: dict[str, tuple[Tensor, Tensor]] = {
            name: (torch.zeros_like(t), torch.zeros_like(t)) for name, t in self._trainable()
        }

    def _init_extra(self) -> None:
        """Architecture state beyond the shared tensors (thresholds, coefficients)."""

    def _init_from_batch(self, xn: Tensor) -> None:
        """Data-dependent initialisation from the first normalised batch ``[B, d]``."""

    def _trainable(self) -> list[tuple[str, Tensor]]:
        return [(n, getattr(self, n)) for n in ("W_enc_", "b_enc_", "W_dec_", "b_dec_")]

    # ------------------------------------------------------------------ the maths
    def _pre(self, xn: Tensor) -> Tensor:
        """Pre-activations ``[B, n_latents]`` of normalised inputs (no gradients)."""
        with torch.no_grad():
            centred = xn if self.transcoder_ else xn - self.b_dec_
            return torch.addmm(self.b_enc_, centred, self.W_enc_.T)

    def _vals(
        self, xn: Tensor, rows: Tensor, cols: Tensor, w_enc: Tensor, b_enc: Tensor, b_dec: Tensor
    ) -> Tensor:
        """Pre-activations of the entries ``(rows, cols)`` ``[nnz]``, with gradients (an SAE
        centres its input on the decoder bias; a transcoder's input lives in another space)."""
        x = xn[rows] if self.transcoder_ else xn[rows] - b_dec
        return (x * w_enc[cols]).sum(-1) + b_enc[cols]

    @staticmethod
    def _decode_active(a: Active, w_dec: Tensor, n: int) -> Tensor:
        """``[n, d]`` sum of ``vals * W_dec[cols]`` per row (no bias)."""
        offsets = torch.searchsorted(a.rows, torch.arange(n, device=a.rows.device))
        return F.embedding_bag(a.cols, w_dec, offsets, mode="sum", per_sample_weights=a.vals)

    def _select(self, pre: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        """``(rows, cols)`` of the active entries of ``pre [B, n_latents]``, row-major."""
        raise NotImplementedError

    def _activation(self, vals: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
        """Latent values from the active pre-activations (default: ReLU)."""
        return F.relu(vals)

    def _extra_loss(
        self, xn: Tensor, pre: Tensor, a: Active, x_hat: Tensor, params: dict[str, Tensor]
    ) -> tuple[Tensor, dict[str, float]]:
        """Architecture loss terms beyond the reconstruction (sparsity penalties)."""
        return x_hat.new_zeros(()), {}

    def _recon_loss(
        self, tn: Tensor, a: Active, params: dict[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """Summed squared error of the decoded latents against the target ``tn [B, d_out]``
        (the normalised input for an SAE, the normalised target for a transcoder)."""
        x_hat = self._decode_active(a, params["W_dec_"], len(tn)) + params["b_dec_"]
        return (x_hat - tn).pow(2).sum(-1).mean(), x_hat

    # ------------------------------------------------------------------ training
    def _check_batch(self, x: Any, width: int | None = None, what: str = "inputs") -> Tensor:
        x = torch.as_tensor(x)
        if x.ndim != 2:
            raise MindscopeError(f"SAE {what} must be [batch, d], got shape {tuple(x.shape)}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise MindscopeError(f"SAE {what} are empty (shape {tuple(x.shape)})")
        if width is None and self.is_fitted:
            width = self.d_in_
        if width is not None and x.shape[1] != width:
            raise MindscopeError(
                f"{type(self).__name__} was trained on {what} of width {width}, got width "
                f"{x.shape[1]}"
            )
        if not torch.isfinite(x).all():
            raise MindscopeError(
                f"SAE {what} contain NaN or infinite values ({int((~torch.isfinite(x)).sum())} "
                "entries)"
            )
        return x.to(device=self.device, dtype=torch.float32)

    def partial_fit(self, x: Any, y: Any = None) -> SparseAutoencoder:
        """One optimiser step on a batch ``x [B, d]`` (initialises on the first call).

        With targets ``y [B, d_out]`` (from another site) the model is a *transcoder*: its
        latents read ``x`` and its decoder predicts ``y``; the first call decides which it is.
        """
        xb = self._check_batch(x)
        yb = None
        if self.is_fitted and (y is not None) != self.transcoder_:
            raise MindscopeError(
                f"{type(self).__name__} was trained "
                + ("as a transcoder: give targets y" if self.transcoder_ else "without targets")
            )
        if y is not None:
            yb = self._check_batch(y, self.d_out_ if self.is_fitted else None, "targets")
            if len(yb) != len(xb):
                raise MindscopeError(f"{len(xb)} inputs but {len(yb)} targets")
        if not self.is_fitted:
            self._init(xb, yb)
        self._step(xb, yb)
        return self

    def _step(self, x: Tensor, y: Tensor | None = None) -> dict[str, float]:
        xn = x * self.scale_
        tn = y * self.out_scale_ if y is not None else xn  # what the decoder reconstructs
        params = {n: t.detach().requires_grad_(True) for n, t in self._trainable()}
        self._live: dict[str, Tensor] | None = params
        pre = self._pre(xn)
        rows, cols = self._select(pre, train=True)
        vals = self._vals(xn, rows, cols, params["W_enc_"], params["b_enc_"], params["b_dec_"])
        a = Active(rows, cols, self._activation(vals, rows, cols))
        recon, x_hat = self._recon_loss(tn, a, params)
        extra, logs = self._extra_loss(xn, pre, a, x_hat, params)
        aux = self._aux_loss(xn, tn, pre, x_hat, params) if self.aux_coef > 0 else None
        loss = recon + extra + (self.aux_coef * aux if aux is not None else 0)
        loss.backward()
        self._live = None
        self._adam_step(params)
        with torch.no_grad():
            fired = torch.zeros(self.n_latents, dtype=torch.bool, device=x.device)
            fired[cols[a.vals.detach() > 0]] = True
            self.since_fired_ += len(x)
            self.since_fired_[fired] = 0
        self.step_ += 1
        self._after_step(pre, a)
        logs.update(loss=float(loss.detach()), recon=float(recon.detach()), l0=len(cols) / len(x))
        self.last_ = logs
        return logs

    def _after_step(self, pre: Tensor, a: Active) -> None:
        """Architecture updates after a step (running thresholds, coefficient controllers)."""

    def _aux_loss(
        self, xn: Tensor, tn: Tensor, pre: Tensor, x_hat: Tensor, params: dict[str, Tensor]
    ) -> Tensor | None:
        """AuxK (Gao et al. 2024): the dead latents' top ``d/2`` reconstruct the residual."""
        dead = self.since_fired_ > self.dead_tokens
        n_dead = int(dead.sum())
        if n_dead == 0:
            return None
        k_aux = min(max(1, self.d_out_ // 2), n_dead)
        masked = pre.masked_fill(~dead, -torch.inf)
        top = masked.topk(k_aux, dim=-1)
        rows = torch.arange(len(xn), device=xn.device).repeat_interleave(k_aux)
        cols = top.indices.reshape(-1)  # [B * k_aux], row-major
        vals = F.relu(
            self._vals(xn, rows, cols, params["W_enc_"], params["b_enc_"], params["b_dec_"])
        )
        e = (tn - x_hat).detach()
        e_hat = self._decode_active(Active(rows, cols, vals), params["W_dec_"], len(xn))
        denom = (e - e.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        # Gao et al. weigh a *normalised* AuxK error against a normalised main error; the main
        # loss here is the summed squared error (normalised error times the inputs' variance),
        # so the AuxK term is put in the same units (without it, AuxK is ~d times weaker)
        var_x = (tn - tn.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        return (e_hat - e).pow(2).sum(-1).mean() / denom * var_x

    def _adam_step(
        self, params: dict[str, Tensor], b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
    ) -> None:
        t = self.step_ + 1
        lr = self.learning_rate
        decay_from = int(self.n_steps * (1 - self.decay))
        if self.decay > 0 and self.step_ >= decay_from and self.n_steps > decay_from:
            lr *= max(0.0, (self.n_steps - self.step_) / (self.n_steps - decay_from))
        with torch.no_grad():
            for name, p in params.items():
                grad = p.grad
                if grad is None:
                    continue
                if name == "W_dec_":  # keep the rows' norm: drop the parallel part
                    grad = grad - (grad * p).sum(-1, keepdim=True) * p
                m, v = self._adam[name]
                m.mul_(b1).add_(grad, alpha=1 - b1)
                v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
                mhat = m / (1 - b1**t)
                vhat = v / (1 - b2**t)
                new = p.detach() - lr * mhat / (vhat.sqrt() + eps)
                if name == "W_dec_":
                    new = new / new.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                setattr(self, name, new)

    def fit(
        self,
        x: Any,
        y: Any = None,
        *,
        checkpoint: str | Path | None = None,
        checkpoint_every: int = 200,
        callback: Callable[[int, dict[str, float]], None] | None = None,
    ) -> SparseAutoencoder:
        """Train for ``n_steps`` steps.

        Args:
            x: activations ``[n, d]`` (shuffled into batches of ``batch_size``, seeded), or a
                :data:`BatchSource` (step -> ``[B, d]``), or an iterable of ``[B, d]`` batches.
            y: optional targets ``[n, d_out]`` paired with the rows of ``x`` (a tensor): the
                model becomes a transcoder (latents read ``x``, the decoder predicts ``y``). A
                :data:`BatchSource` may return ``(inputs, targets)`` tuples instead.
            checkpoint: a folder; the whole training state is written there every
                ``checkpoint_every`` steps and, if it already holds one, training resumes from it.
            callback: called as ``callback(step, logs)`` after every step.

        Returns:
            ``self``.
        """
        if y is not None:
            source = _paired_source(x, y, self.batch_size, self.seed)
        else:
            source = _as_source(x, self.batch_size, self.seed)
        ckpt = Path(checkpoint) if checkpoint is not None else None
        if ckpt is not None and (ckpt / "state.json").is_file():
            self.load_state(ckpt)
        while not self.is_fitted or self.step_ < self.n_steps:
            step = self.step_ if self.is_fitted else 0
            batch = source(step)
            if isinstance(batch, tuple):  # (inputs, targets): a transcoder
                self.partial_fit(*batch)
            else:
                self.partial_fit(batch)
            if callback is not None:
                callback(self.step_, self.last_)
            if ckpt is not None and (
                self.step_ % checkpoint_every == 0 or self.step_ == self.n_steps
            ):
                self.save_state(ckpt)
            if self.n_steps == 0:
                break
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise MindscopeError(f"{type(self).__name__} is not fitted; call fit(x) first")

    def encode_active(self, x: Any) -> Active:
        """The active latents of ``x [n, d]`` as :class:`Active` entries (no gradients)."""
        self._check_fitted()
        xb = self._check_batch(x)
        xn = xb * self.scale_
        pre = self._pre(xn)
        rows, cols = self._select(pre, train=False)
        with torch.no_grad():
            vals = self._activation(pre[rows, cols], rows, cols)
        keep = vals > 0
        return Active(rows[keep], cols[keep], vals[keep])

    def transform(self, x: Any, *, batch_size: int = 4096) -> Tensor:
        """Latents ``[n, n_latents]`` of ``x [n, d]`` (the SAE's features; in the scale of the
        normalised inputs). Use them wherever activations go (reporters, detectors)."""
        self._check_fitted()
        xt = torch.as_tensor(x)
        parts = [
            self.encode_active(xt[i : i + batch_size]).dense(
                len(xt[i : i + batch_size]), self.n_latents
            )
            for i in range(0, len(xt), batch_size)
        ]
        return torch.cat(parts) if parts else torch.zeros(0, self.n_latents)

    encode = transform

    def decode(self, z: Tensor) -> Tensor:
        """Activations ``[n, d]`` (original scale) from latents ``[n, n_latents]``."""
        self._check_fitted()
        with torch.no_grad():
            return (z.to(self.W_dec_) @ self.W_dec_ + self.b_dec_) / self.out_scale_

    def reconstruct(self, x: Any, *, batch_size: int = 4096) -> Tensor:
        """``x_hat [n, d]``: the SAE's reconstruction of ``x`` (same scale as ``x``)."""
        self._check_fitted()
        xt = torch.as_tensor(x)
        out = []
        for i in range(0, len(xt), batch_size):
            xb = xt[i : i + batch_size]
            a = self.encode_active(xb)
            with torch.no_grad():
                xh = self._decode_active(a, self.W_dec_, len(xb)) + self.b_dec_
            out.append(xh / self.out_scale_)
        return torch.cat(out) if out else torch.zeros(0, self.d_out_)

    @property
    def decoder_(self) -> Tensor:
        """``[n_latents, d]`` unit decoder directions (the learned dictionary)."""
        self._check_fitted()
        return self.W_dec_

    # ------------------------------------------------------------------ files
    def _state_tensors(self) -> dict[str, Tensor]:
        names = ("W_enc_", "W_dec_", "b_enc_", "b_dec_", *self._extra_tensors)
        return {n: getattr(self, n).detach().cpu().contiguous() for n in names}

    def _state_scalars(self) -> dict[str, Any]:
        return {
            "scale": self.scale_,
            "d_in": self.d_in_,
            "step": self.step_,
            "out_scale": self.out_scale_,
            "d_out": self.d_out_,
            "transcoder": self.transcoder_,
        }

    def _load_scalars(self, s: dict[str, Any]) -> None:
        self.scale_ = float(s["scale"])
        self.d_in_ = int(s["d_in"])
        self.out_scale_ = float(s.get("out_scale", self.scale_))
        self.d_out_ = int(s.get("d_out", self.d_in_))
        self.transcoder_ = bool(s.get("transcoder", False))
        self.step_ = int(s["step"])

    def save(self, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into folder ``path``.

        Args:
            meta: JSON-ready facts checked again by :func:`load_sae` (e.g. ``weights_hash`` of
                the model and the ``site`` the SAE reads).
        """
        from safetensors.torch import save_file

        from mindscope.io import atomic_path, atomic_write_text

        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "arch": self.arch,
            "params": self.get_params(),
            "state": self._state_scalars(),
            "meta": meta or {},
        }
        with atomic_path(out / "model.safetensors") as tmp:
            save_file(self._state_tensors(), str(tmp))
        atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True))
        return out

    def save_state(self, folder: str | Path) -> None:
        """Write the whole training state (weights, Adam moments, counters) into ``folder``
        (what :meth:`fit` does every ``checkpoint_every`` steps)."""
        folder = Path(folder)
        from safetensors.torch import save_file

        from mindscope.io import atomic_path, atomic_write_text

        folder.mkdir(parents=True, exist_ok=True)
        tensors = self._state_tensors()
        tensors["since_fired_"] = self.since_fired_.cpu()
        for name, (m, v) in self._adam.items():
            tensors[f"adam.m.{name}"] = m.cpu().contiguous()
            tensors[f"adam.v.{name}"] = v.cpu().contiguous()
        with atomic_path(folder / "state.safetensors") as tmp:
            save_file(tensors, str(tmp))
        state = {"arch": self.arch, "params": self.get_params(), "state": self._state_scalars()}
        atomic_write_text(folder / "state.json", json.dumps(state, indent=2, sort_keys=True))

    def load_state(self, folder: str | Path) -> None:
        """Restore the whole training state written by :meth:`save_state` (refuses one written
        by another configuration)."""
        folder = Path(folder)
        from safetensors.torch import load_file

        state = json.loads((folder / "state.json").read_text())
        if state["arch"] != self.arch or state["params"] != self.get_params():
            raise MindscopeError(
                f"checkpoint {folder} was written by another SAE configuration; use a new folder"
            )
        tensors = load_file(str(folder / "state.safetensors"), device=str(self.device))
        for n, t in tensors.items():
            if not n.startswith("adam."):
                setattr(self, n, t)
        self._load_scalars(state["state"])
        self._adam = {
            n: (tensors[f"adam.m.{n}"], tensors[f"adam.v.{n}"]) for n, _ in self._trainable()
        }

    @classmethod
    def load(
        cls, path: str | Path, *, expect_meta: dict[str, Any] | None = None
    ) -> SparseAutoencoder:
        """Read an SAE written by :meth:`save` (see :func:`load_sae`)."""
        sae = load_sae(path, expect_meta=expect_meta)
        if not isinstance(sae, cls):
            raise MindscopeError(f"{path} holds a {type(sae).__name__}, not a {cls.__name__}")
        return sae


def load_sae(path: str | Path, *, expect_meta: dict[str, Any] | None = None) -> SparseAutoencoder:
    """Read an SAE folder; refuse it when its saved meta differs from ``expect_meta`` on any key
    (e.g. ``{"weights_hash": h.weights_hash, "site": "resid_post.2"}``: an SAE for another model
    or site)."""
    from safetensors.torch import load_file

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise MindscopeError(f"{folder} holds no SAE (no config.json)")
    config = json.loads((folder / "config.json").read_text())
    arch = config.get("arch")
    if arch not in REGISTRY:
        raise MindscopeError(f"{folder}: unknown SAE architecture {arch!r}")
    meta = config.get("meta", {})
    for key, want in (expect_meta or {}).items():
        if meta.get(key) != want:
            raise MindscopeError(
                f"SAE at {folder} was trained for {key}={meta.get(key)!r}, not {want!r}"
            )
    sae = REGISTRY[arch](**config["params"])
    sae.meta_ = meta
    for n, t in load_file(str(folder / "model.safetensors"), device=str(sae.device)).items():
        setattr(sae, n, t)
    sae._load_scalars(config["state"])
    return sae


def _unit_scale(x: Tensor) -> float:
    """The factor giving ``E ||x||^2 = d`` (approximately: the mean norm becomes sqrt(d))."""
    norms = x.float().norm(dim=-1).mean()
    return float(math.sqrt(x.shape[-1]) / max(float(norms), 1e-12))


def _paired_source(x: Any, y: Any, batch_size: int, seed: int) -> Callable[[int], Any]:
    """A step -> ``(x_batch, y_batch)`` function over paired rows (one shuffle for both)."""
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    if xt.ndim != 2 or yt.ndim != 2 or len(xt) != len(yt):
        raise MindscopeError(
            f"inputs {tuple(xt.shape)} and targets {tuple(yt.shape)} must be [n, d] and "
            "[n, d_out] with the same n"
        )
    d = xt.shape[1]
    joint = _as_source(torch.cat([xt.float(), yt.float()], 1), batch_size, seed)

    def source(step: int) -> tuple[Tensor, Tensor]:
        b = joint(step)
        return b[:, :d], b[:, d:]

    return source


def _as_source(x: Any, batch_size: int, seed: int) -> BatchSource:
    """A step -> batch function for a tensor (seeded shuffles per epoch), an iterable or a
    :data:`BatchSource`."""
    if callable(x) and not isinstance(x, Tensor):
        return x  # type: ignore[no-any-return]
    if isinstance(x, Tensor) or hasattr(x, "__array__"):
        data = torch.as_tensor(x)
        if data.ndim != 2:
            raise MindscopeError(f"SAE inputs must be [n, d], got shape {tuple(data.shape)}")
        n = len(data)
        if n == 0 or data.shape[1] == 0:
            raise MindscopeError(f"SAE inputs are empty (shape {tuple(data.shape)})")
        b = min(batch_size, n)
        per_epoch = n // b
        perms: dict[int, Tensor] = {}

        def source(step: int) -> Tensor:
            epoch, i = divmod(step, per_epoch)
            if epoch not in perms:
                perms.clear()
                perms[epoch] = torch.randperm(
                    n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
                )
            return data[perms[epoch][i * b : (i + 1) * b]]

        return source
    if isinstance(x, Iterable):
        it: Iterator[Any] = iter(x)

        def from_iter(step: int) -> Tensor:
            try:
                return torch.as_tensor(next(it))
            except StopIteration:
                raise MindscopeError(f"the batch iterable ran out at step {step}") from None

        return from_iter
    raise TypeError(f"cannot train an SAE on {type(x).__name__}")
