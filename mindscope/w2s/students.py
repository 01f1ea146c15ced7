"""Strong students learning from weak labels.

* :class:`ReporterStudent` (the cheap student): a logistic reporter on the strong model's
  frozen activations ``[n, d]`` at one layer, fitted to the (hardened) weak labels.
* :class:`FineTunedStudent`: a classification head (layer norm + linear) on the residual
  stream at the prompt's last token of a chosen layer, trained with the last ``train_layers``
  blocks below it (``"all"``: every block and the embeddings; 0: the head only) on weak labels
  with a loss of :mod:`mindscope.w2s.losses`, early-stopped on a validation share of the weak
  labels (never on the truth). It trains a copy: the caller's model is never changed. Every
  forward pass goes through :meth:`mindscope.models.ModelHandle.forward`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError
from mindscope.models.hooks import block_input, hooked
from mindscope.w2s.losses import get_loss
from mindscope.w2s.supervisors import harden

__all__ = [
    "ReporterStudent",
    "FineTunedStudent",
    "EncodedPairs",
    "encode_pairs",
    "encode_prompts",
    "layer_site",
]

log = logging.getLogger("mindscope.w2s")


def layer_site(h: Any, layer: int) -> str:
    """The site of layer ``layer`` (0: embeddings, k: after k blocks, -1: the last)."""
    k = h.n_layers if layer < 0 else layer
    if not 0 <= k <= h.n_layers:
        raise MindscopeError(f"layer {layer} does not exist; {h.name} has layers 0..{h.n_layers}")
    return "resid_pre.0" if k == 0 else f"resid_post.{k - 1}"


def encode_prompts(
    h: Any, pairs: Sequence[ContrastPair]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ids ``[n, T]``, attention mask ``[n, T]`` and the index of each prompt's last
    token ``[n]``, tokenized as extraction does (:meth:`ModelHandle.encode`)."""
    enc = h.encode([p.prompt for p in pairs])
    if any(len(e) == 0 for e in enc):
        raise MindscopeError("a prompt tokenizes to nothing")
    width = max(len(e) for e in enc)
    pad = h.tokenizer.pad_token_id if h.tokenizer.pad_token_id is not None else 0
    ids = torch.full((len(enc), width), int(pad), dtype=torch.long)
    mask = torch.zeros((len(enc), width), dtype=torch.long)
    for i, e in enumerate(enc):
        ids[i, : len(e)] = torch.tensor(e)
        mask[i, : len(e)] = 1
    return ids, mask, mask.sum(1) - 1


@dataclass
class EncodedPairs:
    """Prompts tokenized once, with the output of the model's frozen first blocks when cached.

    A student whose first ``frozen`` blocks never train computes them once here (they give the
    same values at every step), and each step runs only the blocks above (see
    :func:`encode_pairs`). ``take`` selects examples without copying the model's work.
    """

    ids: torch.Tensor
    """``[n, T]`` right-padded token ids."""
    mask: torch.Tensor
    """``[n, T]`` 1 for real tokens."""
    last: torch.Tensor
    """``[n]`` index of each prompt's last token."""
    frozen: int = 0
    """Blocks whose output ``resid`` holds (0: nothing cached)."""
    resid: torch.Tensor | None = None
    """``[n, T, d]`` residual stream after the first ``frozen`` blocks (``None``: not cached)."""
    out_format: int = 0
    """How a block returns its output: 0 a tensor, k > 0 a tuple of k items."""

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, idx: Any) -> EncodedPairs:
        """The examples ``idx`` (indices or a boolean mask ``[n]``)."""
        j = torch.as_tensor(np.asarray(idx))
        if j.dtype == torch.bool:
            j = torch.nonzero(j).squeeze(-1)
        return EncodedPairs(
            self.ids[j],
            self.mask[j],
            self.last[j],
            self.frozen,
            None if self.resid is None else self.resid[j],
            self.out_format,
        )


def encode_pairs(
    h: Any,
    pairs: Sequence[ContrastPair],
    *,
    frozen: int = 0,
    batch_size: int = 256,
    max_bytes: float = 2**30,
) -> EncodedPairs:
    """Tokenize ``pairs`` and, when ``frozen`` > 0, run the model's first ``frozen`` blocks once
    and keep their output ``[n, T, d]`` (every position: the blocks above attend to them).

    The cache is skipped (``frozen`` set to 0) when it would exceed ``max_bytes``. Blocks
    ``>= frozen`` then run from the cache; the values are those of a full forward pass (the
    frozen blocks are deterministic in eval mode and a right-padded causal prompt does not see
    its padding).
    """
    ids, mask, last = encode_prompts(h, pairs)
    k = min(int(frozen), h.n_layers)
    n, width = ids.shape
    if k <= 0 or n * width * h.d_model * torch.finfo(h.dtype).bits / 8 > max_bytes:
        return EncodedPairs(ids, mask, last)
    site = f"resid_post.{k - 1}"
    fmt: list[int] = []

    def note(mod: nn.Module, args: Any, out: Any) -> None:
        if not fmt:
            fmt.append(len(out) if isinstance(out, tuple | list) else 0)

    was_training = h.model.training
    h.model.eval()
    chunks = []
    try:
        with hooked([(h.layers[0], "post", note)]):
            for s in range(0, n, batch_size):
                sl = slice(s, s + batch_size)
                _, cache = h.run(
                    input_ids=ids[sl].to(h.device),
                    attention_mask=mask[sl].to(h.device),
                    use_cache=False,
                    sites=[site],
                    stop=True,
                )
                chunks.append(cache[site].detach())
    finally:
        h.model.train(was_training)
    return EncodedPairs(ids, mask, last, k, torch.cat(chunks), fmt[0] if fmt else 0)


@contextmanager
def _from_cache(h: Any, enc: EncodedPairs, j: torch.Tensor) -> Iterator[None]:
    """Inside the block, forward passes of the batch ``j`` skip the first ``enc.frozen`` blocks
    (each passes its input through) and start block ``enc.frozen`` from the cached residual."""
    assert enc.resid is not None
    cached = enc.resid[j]  # [b, T, d]
    blocks = list(h.layers)[: enc.frozen]

    def through(*args: Any, **kwargs: Any) -> Any:
        x = block_input(args, kwargs)
        return x if enc.out_format == 0 else (x, *([None] * (enc.out_format - 1)))

    for b in blocks:
        b.forward = through
    try:
        with h.edit({f"resid_pre.{enc.frozen}": lambda t: cached.to(t.device, t.dtype)}):
            yield
    finally:
        for b in blocks:
            del b.forward


class ReporterStudent:
    """A logistic reporter on frozen activations fitted to weak labels (hardened by
    :func:`~mindscope.w2s.supervisors.harden`).

    Args:
        seed: seed of the reporter's cross-validation folds.
    """

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, x: torch.Tensor, labels: np.ndarray) -> ReporterStudent:
        """``x`` ``[n, d]`` activations, ``labels`` ``[n]`` weak credences."""
        from mindscope.probes import LogisticReporter

        y = torch.as_tensor(harden(labels))
        self.reporter_ = LogisticReporter(seed=self.seed).fit(x, y)
        return self

    def predict_proba(self, x: torch.Tensor) -> np.ndarray:
        """Credences ``[n]`` for activations ``[n, d]``."""
        return self.reporter_.predict_proba(x).double().numpy()


class _Head(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(x)).squeeze(-1)  # [b, d] -> [b]


class FineTunedStudent:
    """A strong model fine-tuned on weak labels with a classification head.

    Args:
        layer: layer the head reads (``-1``: after the last block).
        train_layers: blocks below the head that train (``"all"``: every block and the
            embeddings; 0: the head only).
        loss: ``ce`` or ``logconf`` (:mod:`mindscope.w2s.losses`).
        steps: optimiser steps at most.
        batch_size: examples per step.
        lr: AdamW learning rate of the blocks.
        head_lr: learning rate of the head.
        weight_decay: AdamW weight decay.
        val_fraction: share of the weak-labelled examples held out to pick the step with the
            lowest cross-entropy against the weak labels (0: keep the last step).
        eval_every: steps between validations.
        logconf_weight, warmup: the auxiliary confidence loss's weight and ramp share.
        seed: head initialisation, batches and the validation split.
        lora_rank: 0 fine-tunes the trained blocks' weights; ``r > 0`` trains LoRA adapters of
            rank ``r`` on every linear layer of those blocks instead (the ``lora`` extra: peft),
            at learning rate ``lr``.
        lora_alpha: the adapters' scale numerator (``None``: ``2 * lora_rank``).
        cache: run the blocks below the trained ones once (:func:`encode_pairs`) instead of at
            every step; the credences are those of the full forward pass (checked on a few
            examples before training: a model where they differ trains without the cache).
    """

    def __init__(
        self,
        layer: int = -1,
        train_layers: int | str = 2,
        loss: str = "ce",
        steps: int = 150,
        batch_size: int = 64,
        lr: float = 3e-4,
        head_lr: float = 3e-3,
        weight_decay: float = 0.0,
        val_fraction: float = 0.2,
        eval_every: int = 25,
        logconf_weight: float = 0.5,
        warmup: float = 0.1,
        seed: int = 0,
        lora_rank: int = 0,
        lora_alpha: int | None = None,
        cache: bool = True,
    ) -> None:
        get_loss(loss)
        if not (train_layers == "all" or (isinstance(train_layers, int) and train_layers >= 0)):
            raise MindscopeError(f"train_layers must be 'all' or an int >= 0, got {train_layers!r}")
        if not 0 <= val_fraction < 1:
            raise MindscopeError(f"val_fraction must be in [0, 1), got {val_fraction}")
        if steps < 1 or batch_size < 1 or eval_every < 1:
            raise MindscopeError("steps, batch_size and eval_every must be >= 1")
        if lora_rank < 0:
            raise MindscopeError(f"lora_rank must be >= 0, got {lora_rank}")
        if lora_rank and train_layers == 0:
            raise MindscopeError("lora_rank needs trained blocks (train_layers >= 1 or 'all')")
        if lora_rank:
            from mindscope.extras import require

            require("lora", what="a LoRA student (lora_rank > 0)")
        self.layer = layer
        self.train_layers = train_layers
        self.loss = loss
        self.steps = steps
        self.batch_size = batch_size
        self.lr = lr
        self.head_lr = head_lr
        self.weight_decay = weight_decay
        self.val_fraction = val_fraction
        self.eval_every = eval_every
        self.logconf_weight = logconf_weight
        self.warmup = warmup
        self.seed = seed
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha
        self.cache = cache

    # ------------------------------------------------------------------ internals
    def _trainable(self, h: Any, k: int) -> list[nn.Parameter]:
        """Unfreeze what trains in ``h`` (a private copy): the chosen blocks' weights, or LoRA
        adapters injected into their linear layers; returns those parameters."""
        for p in h.model.parameters():
            p.requires_grad_(False)
        blocks = list(h.layers)[:k]
        if self.train_layers == "all":
            mods: list[nn.Module] = [*blocks, h.model.get_input_embeddings()]
        else:
            mods = blocks[max(0, k - int(self.train_layers)) :]
        if self.lora_rank:
            return self._lora(h, [m for m in mods if m in blocks])
        params = [p for m in mods for p in m.parameters()]
        for p in params:
            p.requires_grad_(True)
        return params

    def _lora(self, h: Any, blocks: list[nn.Module]) -> list[nn.Parameter]:
        """Inject peft LoRA adapters (rank ``lora_rank``) into every ``nn.Linear`` of
        ``blocks``; only the adapters train."""
        from peft import LoraConfig, inject_adapter_in_model

        linear = {id(m) for b in blocks for m in b.modules() if isinstance(m, nn.Linear)}
        names = [n for n, m in h.model.named_modules() if id(m) in linear]
        if not names:
            raise MindscopeError(f"{h.name}'s trained blocks have no linear layer to adapt")
        alpha = self.lora_alpha if self.lora_alpha is not None else 2 * self.lora_rank
        cfg = LoraConfig(r=self.lora_rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=names)
        torch.manual_seed(self.seed)
        inject_adapter_in_model(cfg, h.model)
        for n, p in h.model.named_parameters():
            p.requires_grad_("lora_" in n)
        return [p for p in h.model.parameters() if p.requires_grad]

    def frozen_blocks(self, h: Any) -> int:
        """How many of ``h``'s first blocks never train (their output can be cached)."""
        if self.train_layers == "all" or not self.cache:
            return 0
        k = h.n_layers if self.layer < 0 else self.layer
        return max(0, k - int(self.train_layers))

    def encode(self, h: Any, pairs: Sequence[ContrastPair] | EncodedPairs) -> EncodedPairs:
        """``pairs`` tokenized, with this student's frozen blocks cached (already-encoded pairs
        are returned as they are)."""
        if isinstance(pairs, EncodedPairs):
            return pairs
        return encode_pairs(h, pairs, frozen=self.frozen_blocks(h))

    def _features(
        self, h: Any, site: str, enc: EncodedPairs, j: torch.Tensor, grad: bool
    ) -> torch.Tensor:
        """The residual ``[b, d]`` at ``site`` and each prompt's last token of the batch ``j``."""
        ids, mask, last = enc.ids[j], enc.mask[j], enc.last[j]
        k = h.n_layers if self.layer < 0 else self.layer
        if enc.resid is not None and enc.frozen == k:  # the head reads the cache: no block runs
            resid = enc.resid[j]
            return resid[torch.arange(len(ids)), last.to(resid.device)].float()  # [b, d]
        with contextlib.ExitStack() as stack:
            if enc.resid is not None:
                stack.enter_context(_from_cache(h, enc, j))
            cache = stack.enter_context(h.capture([site], detach=not grad))
            h.forward(ids, attention_mask=mask, grad=grad)
        resid = cache[h.canonical_site(site)]  # [b, T, d]
        return resid[torch.arange(len(ids)), last.to(resid.device)].float()  # [b, d]

    def _logits(
        self,
        h: Any,
        head: nn.Module,
        site: str,
        enc: EncodedPairs,
        j: torch.Tensor,
        grad: bool,
    ) -> torch.Tensor:
        x = self._features(h, site, enc, j, grad)
        with torch.enable_grad() if grad else torch.no_grad():
            return head(x)  # [b]

    def _checked(self, h: Any, enc: EncodedPairs, site: str) -> EncodedPairs:
        """``enc``, or ``enc`` without its cache when the cached path does not give the full
        forward pass's values on its first examples (an architecture whose blocks do more than
        map the residual stream)."""
        if enc.resid is None:
            return enc
        j = torch.arange(min(4, len(enc)))
        plain = EncodedPairs(enc.ids, enc.mask, enc.last)
        a = self._features(h, site, enc, j, grad=False)
        b = self._features(h, site, plain, j, grad=False)
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()) + 1e-6):
            log.warning(
                "%s: the cached frozen blocks do not reproduce the forward pass; "
                "training without the cache",
                h.name,
            )
            return plain
        return enc

    # ------------------------------------------------------------------ API
    def fit(
        self, h: Any, pairs: Sequence[ContrastPair] | EncodedPairs, labels: np.ndarray
    ) -> FineTunedStudent:
        """Fine-tune a copy of ``h`` on ``pairs`` with weak credences ``labels`` ``[n]``.

        ``pairs`` may come encoded (:meth:`encode`, :func:`encode_pairs`: the cache then serves
        several students). Sets ``model_`` (the fine-tuned handle), ``head_``, ``best_step_``
        and ``history_`` (``[(step, validation cross-entropy against the weak labels)]``)."""
        y = np.asarray(labels, dtype=np.float64)
        if y.ndim != 1 or y.shape[0] != len(pairs):
            raise MindscopeError(f"weak labels have shape {y.shape}, expected [{len(pairs)}]")
        loss_fn = get_loss(self.loss)
        site = layer_site(h, self.layer)
        k = h.n_layers if self.layer < 0 else self.layer
        enc = self.encode(h, pairs)
        if enc.resid is not None and enc.frozen > self.frozen_blocks(h):
            enc = EncodedPairs(enc.ids, enc.mask, enc.last)  # cached blocks this student trains
        gen = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        model = copy.deepcopy(h)
        model.model.eval()
        head = _Head(h.d_model).to(h.device)
        params = self._trainable(model, k)
        groups = [{"params": head.parameters(), "lr": self.head_lr}]
        if params:
            groups.append({"params": params, "lr": self.lr})
        opt = torch.optim.AdamW(groups, weight_decay=self.weight_decay)
        enc = self._checked(model, enc, site)
        yt = torch.as_tensor(y, dtype=torch.float32)
        perm = torch.randperm(len(enc), generator=gen)
        n_val = int(round(self.val_fraction * len(enc)))
        val, tr = perm[:n_val], perm[n_val:]
        if len(tr) < 2:
            raise MindscopeError(f"too few training examples ({len(tr)}) for the student")

        def val_loss() -> float:
            if not n_val:
                return math.nan
            out = []
            for s in range(0, n_val, 256):
                j = val[s : s + 256]
                lg = self._logits(model, head, site, enc, j, grad=False)
                out.append(
                    torch.nn.functional.binary_cross_entropy_with_logits(
                        lg, yt[j].to(lg.device), reduction="sum"
                    ).item()
                )
            return sum(out) / n_val

        best = (val_loss(), 0, self._snapshot(head, params))
        history = [(0, best[0])]
        order = tr[torch.randperm(len(tr), generator=gen)]
        pos = 0
        for step in range(1, self.steps + 1):
            if pos + self.batch_size > len(order):
                order, pos = tr[torch.randperm(len(tr), generator=gen)], 0
            j = order[pos : pos + self.batch_size]
            pos += self.batch_size
            lg = self._logits(model, head, site, enc, j, grad=True)
            loss = loss_fn(
                lg,
                yt[j].to(lg.device),
                (step - 1) / self.steps,
                **(
                    {"weight": self.logconf_weight, "warmup": self.warmup}
                    if self.loss == "logconf"
                    else {}
                ),
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if n_val and (step % self.eval_every == 0 or step == self.steps):
                v = val_loss()
                history.append((step, v))
                if v < best[0]:
                    best = (v, step, self._snapshot(head, params))
        if n_val:
            self._restore(head, params, best[2])
        for p in params:
            p.requires_grad_(False)
        self.model_, self.head_, self.site_ = model, head, site
        self.best_step_ = best[1] if n_val else self.steps
        self.history_ = history
        return self

    @staticmethod
    def _snapshot(head: nn.Module, params: list[nn.Parameter]) -> list[torch.Tensor]:
        return [p.detach().clone() for p in [*head.parameters(), *params]]

    @staticmethod
    def _restore(head: nn.Module, params: list[nn.Parameter], saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for p, s in zip([*head.parameters(), *params], saved, strict=True):
                p.copy_(s)

    def predict_proba(
        self, pairs: Sequence[ContrastPair] | EncodedPairs, batch_size: int = 256
    ) -> np.ndarray:
        """Credences ``[n]`` of the fine-tuned student on ``pairs`` (or pairs encoded by
        :meth:`encode` with the model it was fitted on: the cache of the frozen blocks is
        reused)."""
        if not hasattr(self, "model_"):
            raise MindscopeError("fit the student before predicting")
        enc = self.encode(self.model_, pairs)
        if enc.resid is not None and enc.frozen > self.frozen_blocks(self.model_):
            enc = EncodedPairs(enc.ids, enc.mask, enc.last)
        out = []
        for s in range(0, len(enc), batch_size):
            j = torch.arange(s, min(s + batch_size, len(enc)))
            lg = self._logits(self.model_, self.head_, self.site_, enc, j, grad=False)
            out.append(torch.sigmoid(lg).double().cpu())
        return torch.cat(out).numpy()
