"""Training the tuned lens: every layer's translator in one pass over the data.

Each batch runs the frozen model once, reads the residual stream at all layers, translates all
of them with one batched product and minimises the sum over layers of
``KL(final distribution || lens distribution)`` (nats, per token, at the same position).
Defaults follow the tuned-lens package (0.2.0) and the paper: SGD with Nesterov momentum 0.9,
learning rate ``lr_scale * (1 - momentum)`` = 0.1, weight decay 1e-3, no warmup and linear decay
to 0 over ``num_steps`` = 250 steps of 2^18 tokens, gradient norm clipped to 1. Adam (AMSGrad,
lr 1e-3, warmup ``min(1000, num_steps // 5)``) is the option.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch

from mindscope.errors import ConfigError, MindscopeError
from mindscope.lenses.base import residual_stack
from mindscope.lenses.texts import default_seq_len, packed_sequences
from mindscope.lenses.tuned import TunedLens
from mindscope.models import ModelHandle

__all__ = ["TrainConfig", "train", "kl_backward", "batch_plan"]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of tuned-lens training (defaults: the tuned-lens package / paper)."""

    num_steps: int = 250
    """Optimizer steps."""
    tokens_per_step: int = 2**18
    """Tokens per optimizer step (rounded down to whole sequences; at least one sequence)."""
    seq_len: int | None = None
    """Tokens per training sequence; default ``min(512, model context)``. Documents are joined
    with EOS and cut into sequences of this length, as in the tuned-lens package."""
    batch_size: int = 8
    """Sequences per forward pass of the model (steps accumulate gradients over batches)."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """``"sgd"`` (Nesterov momentum, the paper's choice) or ``"adam"`` (AMSGrad)."""
    lr_scale: float = 1.0
    """Multiplies the base learning rate: ``1 - momentum`` for SGD, 1e-3 for Adam."""
    momentum: float = 0.9
    """SGD momentum, or Adam's beta1."""
    weight_decay: float = 1e-3
    """Weight decay; the residual parametrisation decays translators toward the identity."""
    warmup_steps: int | None = None
    """Linear warmup steps; default 0 for SGD, ``min(1000, num_steps // 5)`` for Adam."""
    clip_grad_norm: float = 1.0
    """Clip the global gradient norm of all translators to this (0 = no clipping)."""
    seed: int = 42
    """Seed for the order of training sequences."""
    max_chunk_elements: int = 2**20
    """Most logits (layers x tokens x vocab) held at once; bounds memory, not the result."""
    progress: bool = True
    """Show a tqdm progress bar."""

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed; unknown names raise :class:`ConfigError`."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ConfigError(f"unknown tuned-lens training option(s): {', '.join(unknown)}")
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise :class:`ConfigError` on an impossible setting."""
        for name in ("num_steps", "tokens_per_step", "batch_size", "max_chunk_elements"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.seq_len is not None and self.seq_len < 2:
            raise ConfigError(f"seq_len must be >= 2, got {self.seq_len}")
        if self.optimizer not in ("sgd", "adam"):
            raise ConfigError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.lr_scale <= 0 or self.weight_decay < 0 or self.clip_grad_norm < 0:
            raise ConfigError("lr_scale must be > 0; weight_decay and clip_grad_norm >= 0")


def _optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        # torch's momentum scales the step by 1 / (1 - beta); undo it so lr_scale 1 is right.
        return torch.optim.SGD(
            params,
            lr=cfg.lr_scale * (1 - cfg.momentum),
            momentum=cfg.momentum,
            nesterov=cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
    return torch.optim.Adam(
        params,
        lr=cfg.lr_scale * 1e-3,
        betas=(cfg.momentum, 0.999),
        amsgrad=True,
        weight_decay=cfg.weight_decay,
    )


def _schedule(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    warm = cfg.warmup_steps
    if warm is None:
        warm = min(1000, cfg.num_steps // 5) if cfg.optimizer == "adam" else 0
    total = cfg.num_steps

    def factor(step: int) -> float:
        # linear warmup, then linear decay to 0 (transformers' get_linear_schedule_with_warmup)
        if step < warm:
            return step / max(1, warm)
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def kl_backward(
    lens: TunedLens,
    resid: torch.Tensor,
    final_logits: torch.Tensor,
    *,
    scale: float,
    max_chunk_elements: int = 2**20,
) -> torch.Tensor:
    """Accumulate gradients of ``scale * sum_k sum_tokens KL(final || lens_k)``.

    Tokens are processed in chunks so that at most ``max_chunk_elements`` logits (all layers
    together) exist at once; every chunk translates all layers in one batched product.

    Args:
        resid: ``[n_layers, n_tokens, d_model]`` residuals of layers ``0..n_layers-1``.
        final_logits: ``[n_tokens, vocab]`` the model's logits.

    Returns:
        ``[n_layers]`` summed (unscaled) KL per layer, in nats, detached.
    """
    n_layers, n_tok, _ = resid.shape
    vocab = final_logits.shape[-1]
    # at least 32 tokens a chunk: smaller chunks cost more in per-call overhead than they save
    chunk = max(32, max_chunk_elements // (n_layers * vocab))
    sums = torch.zeros(n_layers, dtype=torch.float64)
    h = lens.handle
    for s in range(0, n_tok, chunk):
        with torch.no_grad():
            logp = final_logits[s : s + chunk].float().log_softmax(-1)  # [n, vocab]
            p = logp.exp()
            neg_ent = (p * logp).sum(-1)  # [n]
        x = lens.transform_all(resid[:, s : s + chunk])  # [L, n, d]
        z = h.logits_from_resid(x.to(h.dtype)).float()  # [L, n, vocab], the lens logits
        with torch.no_grad():
            # KL(p || softmax z) = sum p log p - sum p log_softmax(z); its gradient wrt z is
            # softmax(z) - p, fed straight to backward (no autograd through log_softmax).
            grad = z.log_softmax(-1)  # [L, n, vocab]
            kl = neg_ent - torch.einsum("lnv,nv->ln", grad, p)  # [L, n]
            grad.exp_().sub_(p).mul_(scale)
        z.backward(grad)
        sums += kl.sum(-1).double().cpu()
    return sums


def batch_plan(
    n_seq: int, seqs_per_step: int, batch_size: int, num_steps: int, seed: int
) -> list[list[torch.Tensor]]:
    """Which sequences each forward pass reads: ``plan[step][batch]`` = ``[b]`` row indices.

    Sequences are visited in a seeded random order; when the data runs out it is reshuffled
    and visited again. Exposed so that benchmarks can feed another tool the same batches.
    """
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n_seq, generator=gen)
    cursor = 0
    plan: list[list[torch.Tensor]] = []
    for _ in range(num_steps):
        batches: list[torch.Tensor] = []
        todo = seqs_per_step
        while todo > 0:
            take = min(batch_size, todo)
            if cursor + take > n_seq:  # out of data: reshuffle and go round again
                order = torch.randperm(n_seq, generator=gen)
                cursor = 0
            batches.append(order[cursor : cursor + take])
            cursor += take
            todo -= take
        plan.append(batches)
    return plan


def train(lens: TunedLens, texts: Sequence[str], cfg: TrainConfig) -> TunedLens:
    """Train ``lens`` (in place) on ``texts``; returns it with ``lens.info`` filled.

    Raises:
        MindscopeError: the texts hold fewer tokens than one batch.
    """
    cfg.validate()
    h: ModelHandle = lens.handle
    seq_len = cfg.seq_len or default_seq_len(h.n_ctx)
    if h.n_ctx and seq_len > h.n_ctx:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's context of {h.n_ctx}")
    seqs = packed_sequences(h.tokenizer, texts, seq_len)  # [n_seq, seq_len]
    seqs_per_step = max(1, cfg.tokens_per_step // seq_len)
    micro = min(cfg.batch_size, seqs_per_step)
    if seqs.shape[0] < micro:
        n_tok = seqs.numel() if seqs.shape[0] else "too few"
        raise MindscopeError(
            f"the texts hold {n_tok} usable tokens, fewer than one batch of {micro} x {seq_len}; "
            "give more text or a smaller batch_size / seq_len"
        )
    step_tokens = seqs_per_step * seq_len
    opt = _optimizer([lens.weight, lens.bias], cfg)
    sched = _schedule(opt, cfg)
    plan = batch_plan(seqs.shape[0], seqs_per_step, micro, cfg.num_steps, cfg.seed)
    history: list[list[float]] = []

    from tqdm.auto import tqdm

    bar = tqdm(plan, desc="tuned lens", disable=not cfg.progress, unit="step")
    lens.train()
    for step_batches in bar:
        opt.zero_grad(set_to_none=False)
        kl_sum = torch.zeros(h.n_layers, dtype=torch.float64)
        for idx in step_batches:
            resid, logits = residual_stack(h, seqs[idx])  # [L+1, b, T, d], [b, T, V]
            # layers 0..L-1 (the last is the model itself), tokens flattened: [L, b*T, d]
            r = resid[:-1].flatten(1, 2)
            kl_sum += kl_backward(
                lens,
                r,
                logits.flatten(0, 1),
                scale=1.0 / step_tokens,
                max_chunk_elements=cfg.max_chunk_elements,
            )
        if cfg.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_([lens.weight, lens.bias], cfg.clip_grad_norm)
        opt.step()
        sched.step()
        per_layer = (kl_sum / step_tokens).tolist()
        history.append(per_layer)
        bar.set_postfix(kl=f"{sum(per_layer) / len(per_layer):.4f}")
    lens.eval()
    lens.info = {
        "train": {
            **dataclasses.asdict(cfg),
            "seq_len": seq_len,
            "tokens_seen": cfg.num_steps * step_tokens,
            "epochs_over_data": cfg.num_steps * seqs_per_step / seqs.shape[0],
        },
        "final_step_kl": history[-1] if history else [],
        "mean_kl_history": [sum(x) / len(x) for x in history],
    }
    if not math.isfinite(sum(history[-1])):
        raise MindscopeError("tuned-lens training diverged (KL is not finite); lower lr_scale")
    return lens
