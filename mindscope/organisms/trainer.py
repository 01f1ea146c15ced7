"""The training loop shared by every organism: AdamW, warm-up + cosine, checkpoints, tqdm."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

__all__ = ["OptimConfig", "deterministic", "train_loop", "default_threads"]


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


def train_loop(
    model: torch.nn.Module,
    loss_fn: Callable[[int], torch.Tensor],
    max_steps: int,
    optim: OptimConfig,
    checkpoints: list[int],
    on_checkpoint: Callable[[int], Mapping[str, float] | None],
    desc: str,
    progress: bool = True,
) -> None:
    """Run ``max_steps`` optimiser steps; call ``on_checkpoint(step)`` at each listed step.

    Args:
        model: the model being trained (put in train mode here).
        loss_fn: ``loss_fn(step)`` builds the step's batch and returns the scalar loss.
        max_steps: number of optimiser updates.
        optim: optimiser settings.
        checkpoints: steps (0 = before any update) at which ``on_checkpoint`` is called; it may
            return metrics, shown on the progress bar.
        desc: progress-bar label.
        progress: show a tqdm progress bar.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": optim.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=optim.lr,
        betas=(0.9, 0.98),
        fused=True,  # one kernel for all parameters (benchmarks/bench_organism_step.py)
    )

    def lr_at(step: int) -> float:
        if step < optim.warmup:
            return (step + 1) / optim.warmup
        frac = (step - optim.warmup) / max(1, max_steps - optim.warmup)
        cos = 0.5 * (1 + math.cos(math.pi * min(1.0, frac)))
        return optim.min_lr_ratio + (1 - optim.min_lr_ratio) * cos

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    todo = set(checkpoints)
    bar = tqdm(total=max_steps, desc=desc, disable=not progress, unit="step", leave=False)
    try:
        model.train()
        if 0 in todo:
            _checkpoint(model, on_checkpoint, 0, bar)
        for step in range(1, max_steps + 1):
            loss = loss_fn(step - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, optim.grad_clip)
            opt.step()
            sched.step()
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
            if step in todo:
                _checkpoint(model, on_checkpoint, step, bar)
    finally:
        bar.close()


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
