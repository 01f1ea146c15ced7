"""The training loop shared by every organism: AdamW, warm-up + cosine, checkpoints, tqdm.

An organism describes its training as a :class:`TrainingTask` (a freshly initialised model, a
deterministic stream of batches, a loss, and an optional per-step preparation such as freezing
blocks). :func:`train_loop` runs it; :func:`run_segment` re-runs any stretch of steps from a
saved model + optimiser state, so that a verifier can re-execute part of a training run (see
:mod:`mindscope.organisms.transcript` and :mod:`mindscope.verify`).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = [
    "OptimConfig",
    "TrainingTask",
    "StepObserver",
    "Batch",
    "deterministic",
    "train_loop",
    "run_segment",
    "make_optimizer",
    "lr_factor",
    "default_threads",
]

Batch = dict[str, torch.Tensor]
"""One step's data: named tensors (e.g. ``{"w": [batch, seq_len + 1]}``)."""


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings shared by the organisms."""

    lr: float = 3e-3
    """Peak learning rate of AdamW."""
    warmup: int = 50
    """Linear warm-up steps."""
    min_lr_ratio: float = 0.1
    """The cosine schedule decays to ``lr * min_lr_ratio`` at the last step."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Global gradient-norm clip."""


BETAS = (0.9, 0.98)
"""AdamW's betas for every organism."""


@dataclass
class TrainingTask:
    """Everything that defines one organism's training run, besides the optimiser settings.

    The same config always gives the same task: same initial weights, same batches in the same
    order. That is what lets a verifier rebuild any step's batch and re-execute a segment.
    """

    model: torch.nn.Module
    """The freshly initialised model (trained in place)."""
    batches: Callable[[], Iterator[Batch]]
    """A fresh iterator over the batches of steps ``0, 1, 2, ...`` (deterministic)."""
    loss: Callable[[torch.nn.Module, Batch], torch.Tensor]
    """``loss(model, batch)``: the scalar training loss of one step."""
    prepare: Callable[[torch.nn.Module, int], None] | None = None
    """``prepare(model, step)`` before step ``step`` (0-based), e.g. freezing blocks from some
    step on; must depend only on ``step`` (it is called again when a segment is re-executed)."""


def default_threads() -> int:
    """Torch threads for training: 2, or fewer when the machine has fewer cores."""
    return max(1, min(2, os.cpu_count() or 1))


@contextlib.contextmanager
def deterministic(seed: int, threads: int) -> Iterator[None]:
    """Fix torch's thread count and global seed inside the block; restore the thread count after.

    Same seed and thread count on the same machine -> bit-identical training.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_optimizer(model: torch.nn.Module, optim: OptimConfig) -> torch.optim.AdamW:
    """Fused AdamW over every parameter; weight decay on matrices only (group 0), not on vectors
    (group 1). Frozen parameters get no gradient, so AdamW skips them."""
    params = list(model.parameters())
    return torch.optim.AdamW(
        [
            {"params": [p for p in params if p.dim() >= 2], "weight_decay": optim.weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=optim.lr,
        betas=BETAS,
        fused=True,  # one kernel for all parameters (benchmarks/bench_organism_step.py)
    )


def lr_factor(step: int, optim: OptimConfig, max_steps: int) -> float:
    """Multiplier of ``optim.lr`` at (0-based) step ``step``: linear warm-up, then cosine."""
    if step < optim.warmup:
        return (step + 1) / optim.warmup
    frac = (step - optim.warmup) / max(1, max_steps - optim.warmup)
    cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
    return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * cos


def _one_step(
    task: TrainingTask,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    batch: Batch,
    step: int,
    optim: OptimConfig,
    max_steps: int,
) -> torch.Tensor:
    """One optimiser update (0-based ``step``); returns the loss before the update."""
    lr = optim.lr * lr_factor(step, optim, max_steps)
    for group in opt.param_groups:
        group["lr"] = lr
    if task.prepare is not None:
        task.prepare(task.model, step)
    loss = task.loss(task.model, batch)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
    opt.step()
    return loss.detach()


class StepObserver:
    """Receives every step of :func:`train_loop` (the transcript writer implements it)."""

    def resume(
        self, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> tuple[int, torch.Tensor | None]:
        """Called once before training: load a saved state into ``model`` and ``opt`` and return
        ``(updates it holds, torch RNG state there or None)``; ``(0, None)``: start afresh."""
        return 0, None

    def on_batch(self, step: int, batch: Batch) -> None:
        """Called with step ``step``'s batch before the update."""

    def on_update(
        self, step: int, loss: float, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> None:
        """Called after update ``step`` (0-based), so the model holds ``step + 1`` updates."""


def train_loop(
    task: TrainingTask,
    max_steps: int,
    optim: OptimConfig,
    checkpoints: list[int],
    on_checkpoint: Callable[[int], Mapping[str, float] | None],
    desc: str,
    progress: bool = True,
    observer: StepObserver | None = None,
) -> None:
    """Run ``max_steps`` optimiser steps of ``task``; call ``on_checkpoint(step)`` at each listed
    step (0 = before any update).

    Args:
        task: model, batches, loss (see :class:`TrainingTask`).
        max_steps: number of optimiser updates.
        optim: optimiser settings.
        checkpoints: steps at which ``on_checkpoint`` is called (model in eval mode, no grad); it
            may return metrics, shown on the progress bar.
        desc: progress-bar label.
        progress: show a tqdm progress bar.
        observer: sees every batch and update (e.g. a training-transcript writer); called after
            ``on_checkpoint`` at a shared step. When its ``resume`` returns ``k > 0`` updates,
            training continues from there: the batches of steps ``0 .. k - 1`` are drawn and
            skipped (the same data order), torch's RNG state is restored, and checkpoints up
            to ``k`` are not called again (an interrupted run wrote them).
    """
    model = task.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(model, optim)
    todo = set(checkpoints)
    start, rng = observer.resume(model, opt) if observer is not None else (0, None)
    batches = task.batches()
    for _ in range(start):  # steps done before an interruption: same data order after them
        next(batches)
    if rng is not None:
        torch.set_rng_state(rng)
    bar = tqdm(
        total=max_steps, initial=start, desc=desc, disable=not progress, unit="step", leave=False
    )
    try:
        model.train()
        if start == 0 and 0 in todo:
            _checkpoint(model, on_checkpoint, 0, bar)
        if start == 0 and observer is not None:
            observer.on_update(-1, float("nan"), model, opt)
        for step in range(start, max_steps):
            batch = next(batches)
            if observer is not None:
                observer.on_batch(step, batch)
            loss = _one_step(task, opt, params, batch, step, optim, max_steps)
            bar.update(1)
            if (step + 1) % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step + 1 in todo:
                _checkpoint(model, on_checkpoint, step + 1, bar)
            if observer is not None:
                observer.on_update(step, float(loss), model, opt)
    finally:
        bar.close()


def run_segment(
    task: TrainingTask,
    opt: torch.optim.Optimizer,
    start: int,
    end: int,
    optim: OptimConfig,
    max_steps: int,
    batches: Iterator[Batch],
) -> list[float]:
    """Re-execute updates ``start .. end - 1`` on ``task.model`` whose weights and ``opt`` state
    are those after ``start`` updates; ``batches`` yields the batches of those steps in order.

    Exactly the arithmetic of :func:`train_loop` (same thread count -> the same bits). Returns
    the loss of every step.
    """
    params = [p for p in task.model.parameters()]
    task.model.train()
    losses = []
    for step in range(start, end):
        losses.append(float(_one_step(task, opt, params, next(batches), step, optim, max_steps)))
    task.model.eval()
    return losses


def _checkpoint(
    model: torch.nn.Module,
    on_checkpoint: Callable[[int], Mapping[str, float] | None],
    step: int,
    bar: tqdm,
) -> None:
    model.eval()
    with torch.no_grad():
        metrics = on_checkpoint(step)
    model.train()
    if metrics:
        bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
