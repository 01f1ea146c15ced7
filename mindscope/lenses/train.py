"""Training the tuned lens: every layer's translator in one pass over the data.

Each batch runs the frozen model once, reads the residual stream at all layers, translates all
of them with one batched product and minimises the sum over layers of
``KL(final distribution || lens distribution)`` (nats, per token, at the same position).
The optimiser follows the tuned-lens package (0.2.0) and the paper: SGD with Nesterov momentum
0.9, learning rate ``lr_scale * (1 - momentum)`` = 0.1, weight decay 1e-3, no warmup and linear
decay to 0, gradient norm clipped to 1. Adam (AMSGrad, lr 1e-3, warmup ``min(1000, steps // 5)``)
is the option. The paper trains a fixed 250 steps of 2^18 tokens (``num_steps=250,
tokens_per_step=2**18``: about 80 minutes for a 4M-parameter model on 2 CPU cores); by default
(``num_steps=None``) a small held-out part of the training sequences is set aside, its KL is
measured every ``eval_every`` steps, and training stops when it has not improved by
``min_improvement`` for ``patience`` evaluations (at most ``max_steps``), keeping the best
translators. ``lens.info`` records the steps used and the held-out KL reached.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import torch
from pydantic import ConfigDict, Field

from mindscope.errors import ConfigError, MindscopeError
from mindscope.lenses.base import residual_stack
from mindscope.lenses.checkpoint import TrainState, load_state, save_state
from mindscope.lenses.texts import default_seq_len, packed_sequences
from mindscope.models import ModelHandle
from mindscope.schema import Schema, parse

__all__ = ["TrainConfig", "Translators", "train", "kl_backward", "heldout_kl", "batch_plan"]


class Translators(Protocol):
    """What training needs of a lens: per-layer affine translators bound to a model
    (:class:`~mindscope.lenses.TunedLens` is one; ``weight [n_layers, d, d]``, ``bias
    [n_layers, d]``)."""

    handle: ModelHandle
    weight: torch.nn.Parameter
    bias: torch.nn.Parameter
    info: dict[str, Any]

    @property
    def n_layers(self) -> int: ...

    def transform_all(self, resid: torch.Tensor) -> torch.Tensor: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


L = TypeVar("L", bound=Translators)


class TrainConfig(Schema):
    """Hyper-parameters of tuned-lens training (optimiser defaults: the tuned-lens package /
    paper; by default training stops by itself, see ``num_steps``)."""

    model_config = ConfigDict(frozen=True)

    num_steps: int | None = Field(
        default=None,
        description="Optimizer steps (a fixed budget, linear decay to 0 over it; the paper: 250 "
        "steps of 2**18 tokens); null: stop when the KL on held-out training sequences has not "
        "improved by min_improvement for patience evaluations, at most max_steps, keeping the "
        "best translators.",
    )
    max_steps: int = Field(default=250, description="Most steps when num_steps is null.")
    tokens_per_step: int = Field(
        default=2**13,
        description="Tokens per optimizer step (rounded down to whole sequences; at least one "
        "sequence). The paper uses 2**18; small models reach most of the gain with far fewer.",
    )
    seq_len: int | None = Field(
        default=None,
        description="Tokens per training sequence; default min(512, model context). Documents "
        "are joined with EOS and cut into sequences of this length, as in the tuned-lens "
        "package.",
    )
    batch_size: int = Field(
        default=8,
        description="Sequences per forward pass of the model (steps accumulate gradients).",
    )
    optimizer: Literal["sgd", "adam"] = Field(
        default="sgd", description="sgd (Nesterov momentum, the paper's choice) or adam (AMSGrad)."
    )
    lr_scale: float = Field(
        default=1.0,
        description="Multiplies the base learning rate: 1 - momentum for SGD, 1e-3 for Adam.",
    )
    momentum: float = Field(default=0.9, description="SGD momentum, or Adam's beta1.")
    weight_decay: float = Field(
        default=1e-3,
        description="Weight decay; the residual parametrisation decays translators toward the "
        "identity.",
    )
    warmup_steps: int | None = Field(
        default=None,
        description="Linear warmup steps; default 0 for SGD, min(1000, steps // 5) for Adam.",
    )
    clip_grad_norm: float = Field(
        default=1.0,
        description="Clip the global gradient norm of all translators (0 = no clipping).",
    )
    heldout_tokens: int = Field(
        default=2**13,
        description="Early stopping: tokens of the training sequences held out to measure KL "
        "(at most a tenth of the sequences; at least one).",
    )
    eval_every: int = Field(
        default=5, description="Early stopping: measure held-out KL every N steps."
    )
    patience: int = Field(
        default=3,
        description="Early stopping: stop after this many evaluations without improvement.",
    )
    min_improvement: float = Field(
        default=0.01,
        description="Early stopping: a relative drop of the mean held-out KL that counts as an "
        "improvement (0.01 = 1%).",
    )
    seed: int = Field(default=42, description="Seed for the order of training sequences.")
    max_chunk_elements: int = Field(
        default=2**20,
        description="Most logits (layers x tokens x vocab) held at once; bounds memory, not the "
        "result.",
    )
    progress: bool = Field(default=True, description="Show a tqdm progress bar.")
    checkpoint_dir: str | None = Field(
        default=None,
        description="A folder where training saves its state every checkpoint_every steps; a "
        "rerun with the same config, model and texts resumes there (bit-identical to an "
        "uninterrupted run). Null: no checkpoints.",
    )
    checkpoint_every: int = Field(
        default=10, description="Steps between checkpoints (with checkpoint_dir)."
    )

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed; unknown names and wrong types raise
        :class:`ConfigError` (one line, with a "did you mean")."""
        unknown = sorted(set(changes) - set(TrainConfig.model_fields))
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(TrainConfig.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"unknown tuned-lens training option(s): {', '.join(unknown)}{hint}")
        return parse(TrainConfig, {**self.model_dump(), **changes}, "tuned-lens training")

    def validate_values(self) -> None:
        """Raise :class:`ConfigError` on an impossible setting."""
        names = ("max_steps", "tokens_per_step", "batch_size", "max_chunk_elements")
        names += ("heldout_tokens", "eval_every", "patience")  # type: ignore[assignment]
        names += ("checkpoint_every",)  # type: ignore[assignment]
        for name in names:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_steps is not None and self.num_steps < 1:
            raise ConfigError(
                f"num_steps must be >= 1 (or null: early stopping), got {self.num_steps}"
            )
        if self.seq_len is not None and self.seq_len < 2:
            raise ConfigError(f"seq_len must be >= 2, got {self.seq_len}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if self.lr_scale <= 0 or self.weight_decay < 0 or self.clip_grad_norm < 0:
            raise ConfigError("lr_scale must be > 0; weight_decay and clip_grad_norm >= 0")
        if not 0 <= self.min_improvement < 1:
            raise ConfigError(f"min_improvement must be in [0, 1), got {self.min_improvement}")

    @property
    def total_steps(self) -> int:
        """Steps of the learning-rate schedule: ``num_steps``, else ``max_steps``."""
        return self.num_steps if self.num_steps is not None else self.max_steps


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
        warm = min(1000, cfg.total_steps // 5) if cfg.optimizer == "adam" else 0
    total = cfg.total_steps

    def factor(step: int) -> float:
        # linear warmup, then linear decay to 0 (transformers' get_linear_schedule_with_warmup)
        if step < warm:
            return step / max(1, warm)
        return max(0.0, (total - step) / max(1, total - warm))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def kl_backward(
    lens: Translators,
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


@torch.no_grad()
def heldout_kl(
    lens: Translators, seqs: torch.Tensor, batch_size: int, max_chunk_elements: int = 2**20
) -> torch.Tensor:
    """``[n_layers]`` mean KL(final || lens_k) per token, in nats, over sequences ``seqs``
    (``[n_seq, seq_len]`` token ids), layers ``0..n_layers-1``."""
    h = lens.handle
    sums = torch.zeros(lens.n_layers, dtype=torch.float64)
    n_tok = 0
    for s in range(0, seqs.shape[0], batch_size):
        resid, logits = residual_stack(h, seqs[s : s + batch_size])  # [L+1, b, T, d], [b, T, V]
        r = resid[:-1].flatten(1, 2)  # [L, b*T, d]
        final = logits.flatten(0, 1)  # [b*T, V]
        vocab = final.shape[-1]
        chunk = max(32, max_chunk_elements // (lens.n_layers * vocab))
        for c in range(0, r.shape[1], chunk):
            logp = final[c : c + chunk].float().log_softmax(-1)  # [n, V]
            z = h.logits_from_resid(lens.transform_all(r[:, c : c + chunk]).to(h.dtype))
            logq = z.float().log_softmax(-1)  # [L, n, V]
            sums += (logp.exp() * (logp - logq)).sum((-1, -2)).double().cpu()
        n_tok += r.shape[1]
    return sums / max(1, n_tok)


def _split_heldout(
    seqs: torch.Tensor, cfg: TrainConfig, seq_len: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train, heldout)`` sequences: a seeded ``heldout_tokens`` (<= a tenth) held out."""
    n = seqs.shape[0]
    if n < 2:
        raise MindscopeError(
            f"early stopping needs at least 2 training sequences of {seq_len} tokens, got {n}; "
            "give more text, a smaller seq_len or a fixed num_steps"
        )
    n_held = max(1, min(cfg.heldout_tokens // seq_len, n // 10))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed + 1))
    return seqs[order[n_held:].sort().values], seqs[order[:n_held].sort().values]


def train(lens: L, texts: Sequence[str], cfg: TrainConfig) -> L:
    """Train ``lens`` (in place) on ``texts``; returns it with ``lens.info`` filled.

    With ``cfg.num_steps=None`` (the default) training stops by itself on held-out KL (see the
    module docstring); ``lens.info`` holds ``steps_used``, ``heldout_kl`` (mean over layers, at
    the kept step), ``heldout_kl_per_layer``, ``heldout_kl_initial`` (the logit lens),
    ``stopped_early`` and ``heldout_history`` (``[step, mean KL]`` pairs).

    Raises:
        MindscopeError: the texts hold fewer tokens than one batch.
    """
    cfg.validate_values()
    h: ModelHandle = lens.handle
    seq_len = cfg.seq_len or default_seq_len(h.n_ctx)
    if h.n_ctx and seq_len > h.n_ctx:
        raise ConfigError(f"seq_len {seq_len} exceeds the model's context of {h.n_ctx}")
    seqs = packed_sequences(h.tokenizer, texts, seq_len)  # [n_seq, seq_len]
    auto = cfg.num_steps is None
    held = None
    if auto:
        seqs, held = _split_heldout(seqs, cfg, seq_len)
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
    plan = batch_plan(seqs.shape[0], seqs_per_step, micro, cfg.total_steps, cfg.seed)
    history: list[list[float]] = []
    held_history: list[list[float]] = []
    best: tuple[float, int, list[float], torch.Tensor, torch.Tensor] | None = None
    evals_without_gain = 0

    def evaluate_heldout(step: int) -> bool:
        """Measure held-out KL; keep the best lens; True when training should stop."""
        nonlocal best, evals_without_gain
        assert held is not None
        per_layer = heldout_kl(lens, held, cfg.batch_size, cfg.max_chunk_elements).tolist()
        mean = sum(per_layer) / len(per_layer)
        held_history.append([step, mean])
        if best is None or mean < best[0] * (1 - cfg.min_improvement):
            snapshot = (lens.weight.detach().clone(), lens.bias.detach().clone())
            best = (mean, step, per_layer, *snapshot)
            evals_without_gain = 0
        else:
            evals_without_gain += 1
        return evals_without_gain >= cfg.patience

    from tqdm.auto import tqdm

    ckpt = Path(cfg.checkpoint_dir) if cfg.checkpoint_dir else None
    key = _checkpoint_key(lens, seqs, held, cfg) if ckpt is not None else ""
    lens.train()
    stopped = False
    steps_done = 0
    resumed = load_state(ckpt, key) if ckpt is not None else None
    if resumed is not None:
        weight, bias, st = resumed
        with torch.no_grad():
            lens.weight.copy_(weight.to(lens.weight.device))
            lens.bias.copy_(bias.to(lens.bias.device))
        opt.load_state_dict(st.optimizer)
        sched.load_state_dict(st.scheduler)
        steps_done, history, held_history = st.steps_done, st.history, st.held_history
        evals_without_gain, best = st.evals_without_gain, st.best
        plan = plan[steps_done:]
    elif auto:
        evaluate_heldout(0)
    resumed_from = steps_done
    bar = tqdm(
        plan,
        desc="tuned lens",
        disable=not cfg.progress,
        unit="step",
        initial=steps_done,
        total=steps_done + len(plan),
    )
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
        steps_done += 1
        per_layer = (kl_sum / step_tokens).tolist()
        history.append(per_layer)
        bar.set_postfix(kl=f"{sum(per_layer) / len(per_layer):.4f}")
        if not math.isfinite(sum(per_layer)):
            break
        if auto and (steps_done % cfg.eval_every == 0 or steps_done == cfg.total_steps):
            if evaluate_heldout(steps_done):
                stopped = True
                break
        if ckpt is not None and steps_done % cfg.checkpoint_every == 0:
            state = TrainState(
                steps_done,
                history,
                held_history,
                evals_without_gain,
                best,
                opt.state_dict(),
                sched.state_dict(),
            )
            save_state(ckpt, key, lens.weight, lens.bias, state)
    bar.close()
    lens.eval()
    if history and not math.isfinite(sum(history[-1])):
        raise MindscopeError("tuned-lens training diverged (KL is not finite); lower lr_scale")
    info: dict[str, Any] = {
        "train": {
            **cfg.model_dump(),
            "seq_len": seq_len,
            "tokens_seen": steps_done * step_tokens,
            "epochs_over_data": steps_done * seqs_per_step / seqs.shape[0],
        },
        "steps_used": steps_done,
        "resumed_from": resumed_from,
        "final_step_kl": history[-1] if history else [],
        "mean_kl_history": [sum(x) / len(x) for x in history],
    }
    if auto and best is not None:
        mean, step, per_layer, weight, bias = best
        with torch.no_grad():
            lens.weight.copy_(weight)
            lens.bias.copy_(bias)
        info.update(
            steps_used=step,
            steps_run=steps_done,
            stopped_early=stopped,
            heldout_kl=mean,
            heldout_kl_per_layer=per_layer,
            heldout_kl_initial=held_history[0][1],
            heldout_history=held_history,
            heldout_sequences=int(held.shape[0]) if held is not None else 0,
        )
    lens.info = info
    return lens


def _checkpoint_key(
    lens: Translators, seqs: torch.Tensor, held: torch.Tensor | None, cfg: TrainConfig
) -> str:
    """What a checkpoint must match to be resumed: the config (but where checkpoints go and the
    progress bar), the model's weights, the lens's shape and the training sequences."""
    from mindscope import io

    data = io.hasher("blake2b")
    for t in (seqs, held):
        if t is not None:
            data.update(t.cpu().numpy().tobytes())
    settings = cfg.model_dump(exclude={"checkpoint_dir", "checkpoint_every", "progress"})
    return io.config_hash(
        {
            "config": settings,
            "weights": str(getattr(lens.handle, "weights_hash", "")),
            "shape": list(lens.weight.shape),
            "data": data.hexdigest(),
        }
    )
