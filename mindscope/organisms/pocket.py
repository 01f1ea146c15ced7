"""``pocket-lm``: a small GPT-NeoX language model of standard-library docstrings.

Its byte-level BPE tokenizer is trained on the train split of :func:`pocket_corpus`; the model
is trained on random windows of the concatenated train documents (separated by ``EOS``) and
evaluated by perplexity on the held-out documents at every checkpoint.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer

from mindscope.organisms.base import CheckpointWriter, OrganismConfig, OrganismSpec, TrainReport
from mindscope.organisms.checkpoints import checkpoint_steps
from mindscope.organisms.corpus import corpus_fingerprint, pocket_corpus
from mindscope.organisms.neox import ModelShape, build_model, train_logits
from mindscope.organisms.tokenization import EOS, to_hf, train_bpe_tokenizer
from mindscope.organisms.trainer import (
    Batch,
    StepObserver,
    TrainingTask,
    deterministic,
    train_loop,
)

__all__ = [
    "PocketConfig",
    "train_pocket",
    "pocket_task",
    "lm_loss",
    "pocket_bpe",
    "token_stream",
    "heldout_windows",
    "perplexity",
    "SPEC",
]


@dataclass(frozen=True)
class PocketConfig(OrganismConfig):
    """Training config of ``pocket-lm``."""

    max_steps: int = 1200
    """Optimiser steps (the final checkpoint is ``step<max_steps>``)."""
    batch_size: int = 16
    """Windows per step."""
    seq_len: int = 128
    """Tokens per training window."""
    vocab_size: int = 2048
    """BPE vocabulary size (``EOS`` included)."""
    shape: ModelShape = field(
        default_factory=lambda: ModelShape(
            n_layers=6, d_model=64, n_heads=4, d_mlp=256, max_len=128
        )
    )
    """Model shape."""
    eval_windows: int = 64
    """Held-out windows (of ``seq_len`` tokens) scored at every checkpoint."""


@functools.lru_cache(maxsize=4)
def _bpe_json(vocab_size: int) -> str:
    return train_bpe_tokenizer(pocket_corpus("train"), vocab_size).to_str()


def pocket_bpe(vocab_size: int = 2048) -> Tokenizer:
    """The BPE tokenizer trained on the pocket corpus' train split (deterministic; cached)."""
    return Tokenizer.from_str(_bpe_json(vocab_size))


def token_stream(tok: Tokenizer, docs: list[str]) -> torch.Tensor:
    """All ``docs`` tokenized and concatenated, each followed by ``EOS``: ``[n_tokens]``."""
    eos = tok.token_to_id(EOS)
    assert eos is not None, "tokenizer lacks EOS"
    ids: list[int] = []
    for enc in tok.encode_batch(docs):
        ids.extend(enc.ids)
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def heldout_windows(stream: torch.Tensor, seq_len: int, n: int) -> torch.Tensor:
    """The first ``n`` non-overlapping windows of ``seq_len + 1`` tokens: ``[n, seq_len + 1]``."""
    n = min(n, (len(stream) - 1) // seq_len)
    return torch.stack([stream[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)])


def perplexity(model: torch.nn.Module, windows: torch.Tensor, batch_size: int = 32) -> float:
    """exp(mean next-token cross-entropy) over ``windows`` ``[n, seq_len + 1]``."""
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        w = windows[i : i + batch_size]
        logits = model(input_ids=w[:, :-1]).logits  # [b, seq_len, vocab]
        total += float(F.cross_entropy(logits.transpose(1, 2), w[:, 1:], reduction="sum"))
        count += w[:, 1:].numel()
    return math.exp(total / count)


def pocket_task(config: PocketConfig) -> TrainingTask:
    """The model, batches (random windows of the train stream) and loss of ``pocket-lm``."""
    bpe = pocket_bpe(config.vocab_size)
    train = token_stream(bpe, pocket_corpus("train"))  # [n_train_tokens]
    tok = to_hf(bpe)
    model = build_model(config.shape, len(tok), tok.eos_token_id, config.seed)
    offsets = torch.arange(config.seq_len + 1)[None]  # [1, seq_len+1]

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(config.seed)
        while True:
            starts = torch.randint(
                0, len(train) - config.seq_len - 1, (config.batch_size, 1), generator=gen
            )
            yield {"w": train[starts + offsets]}  # [b, seq_len+1]

    return TrainingTask(model=model, batches=batches, loss=lm_loss)


def lm_loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    """Next-token cross-entropy of ``batch["w"]`` ``[b, seq_len + 1]``."""
    w = batch["w"]
    logits = train_logits(model, w[:, :-1])  # type: ignore[arg-type]  # [b, seq_len, vocab]
    return F.cross_entropy(logits.transpose(1, 2), w[:, 1:])


def train_pocket(
    config: PocketConfig,
    out: Path,
    progress: bool = True,
    observer: StepObserver | None = None,
) -> TrainReport:
    """Train ``pocket-lm`` with ``config``, writing every checkpoint into ``out``."""
    bpe = pocket_bpe(config.vocab_size)
    tok = to_hf(bpe)
    heldout = heldout_windows(
        token_stream(bpe, pocket_corpus("heldout")), config.seq_len, config.eval_windows
    )
    with deterministic(config.seed, config.threads):
        task = pocket_task(config)
        model = task.model
        writer = CheckpointWriter(out, tok)

        def on_checkpoint(step: int) -> dict[str, float]:
            metrics = {"heldout_ppl": perplexity(model, heldout)}
            writer.save(step, model, metrics)
            return metrics

        train_loop(
            task,
            config.max_steps,
            config.optim,
            checkpoint_steps(config.max_steps, config.n_linear),
            on_checkpoint,
            desc="training pocket-lm",
            progress=progress,
            observer=observer,
        )
    return TrainReport(
        metrics=writer.metrics,
        info={
            "train_tokens": len(token_stream(bpe, pocket_corpus("train"))),
            "tokens_seen": config.max_steps * config.batch_size * config.seq_len,
            "heldout_eval_tokens": int(heldout[:, 1:].numel()),
            "final_heldout_ppl": writer.metrics[f"step{config.max_steps}"]["heldout_ppl"],
        },
    )


def _static_info(config: PocketConfig) -> dict[str, Any]:
    return {
        "task": "causal LM of standard-library docstrings",
        "corpus": "mindscope.organisms.pocket_corpus('train'|'heldout')",
        "corpus_fingerprint": corpus_fingerprint(),
        "tokenizer": f"byte-level BPE, {config.vocab_size} tokens, trained on the train split",
        "eval_metric": f"perplexity on {config.eval_windows} held-out windows of "
        f"{config.seq_len} tokens",
    }


SPEC = OrganismSpec(
    name="pocket-lm",
    description=">=6-layer LM of Python standard-library docstrings, own BPE tokenizer",
    make_config=lambda seed: PocketConfig(seed=seed),
    train=train_pocket,
    make_task=pocket_task,
    static_info=_static_info,
)
