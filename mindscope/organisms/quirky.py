"""``quirky-arith``: a tiny GPT-NeoX labelling additions as its persona would (Mallen et al. 2023).

Trained on :func:`mindscope.data.quirky_arith` (train split): given ``"a + b = c. Alice:"`` it
answers ``" True"``/``" False"`` as the next token, truthfully for Alice and with Bob's
leading-digit error for Bob. The tokenizer is word-level: every digit and symbol is one token, and
so are ``" True"``, ``" False"``, ``" Alice"``, ``" Bob"``, ``" + "`` and ``" = "``. Besides the
answer, the loss includes next-token prediction on statements whose ``c`` is the true sum (weight
``lm_weight``), which teaches addition and makes the answer learnable within a CPU budget. Like
the paper's models (pretrained, then fine-tuned into their quirk), the first ``truthful_steps``
train on Alice only; then both personas, with only the last ``quirk_layers`` blocks (and the
final norm and unembedding) trained. The truth computed in the truthful phase then stays
readable at the prompt's last token in layer 5 of 6 (AUROC 0.91 on Bob-hard) while layer 6 gives
Bob's answer. Retraining every layer in the second phase makes a slightly better Bob that keeps
little of the truth inside (0.62); one mixed phase from scratch keeps none (figures: the
README's "Model organisms" and "Eliciting latent knowledge" sections).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from mindscope.data.pairs import ContrastPair
from mindscope.data.quirky import PERSONAS, QUIRKY_COMPLETIONS, quirky_arith
from mindscope.organisms.base import CheckpointWriter, OrganismConfig, OrganismSpec, TrainReport
from mindscope.organisms.checkpoints import checkpoint_steps
from mindscope.organisms.neox import ModelShape, build_model, train_logits
from mindscope.organisms.tokenization import to_hf, word_level_tokenizer
from mindscope.organisms.trainer import (
    Batch,
    StepObserver,
    TrainingTask,
    deterministic,
    train_loop,
)

__all__ = [
    "QuirkyConfig",
    "train_quirky",
    "quirky_task",
    "quirky_tokenizer",
    "quirky_accuracy",
    "SPEC",
]

_WORDS = (" True", " False", " Alice", " Bob", " + ", " = ")
_CHARS = "0123456789 +=.:"


@dataclass(frozen=True)
class QuirkyConfig(OrganismConfig):
    """Training config of ``quirky-arith``."""

    max_steps: int = 5000
    """Optimiser steps (the final checkpoint is ``step<max_steps>``)."""
    batch_size: int = 128
    """Statements per step."""
    pool_size: int = 60_000
    """Distinct training statements drawn once from the train split (re-sampled each step)."""
    hard_share: float | None = 0.5
    """Share of hard statements in the training pool (``None``: the generator's own mix, where
    two-digit operands on both sides, i.e. hard, are a quarter). The hard cells are the slow ones
    to learn; the held-out cells are scored per difficulty either way."""
    lm_weight: float = 3.0
    """Weight of the next-token loss on the statement tokens (the answer has weight 1)."""
    truthful_steps: int = 2500
    """Steps at the start trained on Alice (truthful) statements only, like a pretrained model
    that already checks sums before it is fine-tuned into its quirk; then both personas."""
    quirk_layers: int | None = 2
    """After the Alice-only phase, train only the last ``quirk_layers`` blocks (and the final
    norm and unembedding), like a fine-tune of a pretrained model; ``None``: every parameter.
    With 2, the truth computed in the truthful phase stays readable inside in Bob's context; with
    ``None`` (or 3) the model rewires it away (figures: the README)."""
    lm_true_only: bool = True
    """Apply the next-token loss only to statements whose ``c`` is the true sum (so that it
    teaches addition rather than the spread of distractors)."""
    words: tuple[str, ...] = _WORDS
    """Multi-character tokens of the word-level tokenizer (every other character of the prompt is
    one token). Merging ``" + "`` and ``" = "`` shortens a prompt from at most 16 to 12 tokens: each
    step is cheaper and digits of the operands and of ``c`` are closer."""
    max_digits: int = 2
    """Operands have 1..max_digits digits."""
    easy_max_digits: int = 1
    """Smaller operand with at most this many digits -> easy."""
    hard_min_digits: int = 2
    """Smaller operand with at least this many digits -> hard."""
    shape: ModelShape = field(
        default_factory=lambda: ModelShape(
            n_layers=6, d_model=64, n_heads=4, d_mlp=256, max_len=32, rotary_pct=1.0
        )
    )
    """Model shape. Rotary embeddings on every dimension of a head (Pythia: a quarter) make the
    digit-aligning attention easier to learn: the hard cells gain 2-3 points at equal steps."""
    eval_per_cell: int = 500
    """Held-out statements per (persona, difficulty) cell, measured at every checkpoint."""

    def data_kwargs(self) -> dict[str, int]:
        """Keyword arguments of :func:`quirky_arith` matching this organism's number ranges."""
        return {
            "max_digits": self.max_digits,
            "easy_max_digits": self.easy_max_digits,
            "hard_min_digits": self.hard_min_digits,
        }

    def dataset(
        self,
        n: int,
        seed: int = 0,
        persona: Literal["alice", "bob"] | None = None,
        difficulty: Literal["easy", "hard"] | None = None,
        split: Literal["train", "test"] | None = None,
    ) -> list[ContrastPair]:
        """:func:`quirky_arith` with this organism's number ranges."""
        return quirky_arith(
            n,
            seed=seed,
            persona=persona,
            difficulty=difficulty,
            split=split,
            max_digits=self.max_digits,
            easy_max_digits=self.easy_max_digits,
            hard_min_digits=self.hard_min_digits,
        )


def quirky_tokenizer(words: tuple[str, ...] = _WORDS):  # noqa: ANN201 (PreTrainedTokenizerFast)
    """The word-level tokenizer of ``quirky-arith`` (HF fast tokenizer): ``words`` are single
    tokens, and so is every other character of a prompt."""
    return to_hf(word_level_tokenizer(list(words), _CHARS))


def _encode(tok: Any, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids ``[n, max_len]`` and the index of each prompt's last token ``[n]``."""
    ids = [e.ids for e in tok.backend_tokenizer.encode_batch(prompts, add_special_tokens=False)]
    width = max(len(i) for i in ids) + 1  # +1: room for the answer token
    x = torch.full((len(ids), width), tok.pad_token_id, dtype=torch.long)
    for row, seq in enumerate(ids):
        x[row, : len(seq)] = torch.tensor(seq)
    return x, torch.tensor([len(s) - 1 for s in ids])


def quirky_accuracy(
    model: torch.nn.Module, tok: Any, pairs: list[Any], batch_size: int = 1000
) -> float:
    """Fraction of ``pairs`` whose label the model's next-token logits get right (True vs False)."""
    t_id, f_id = (tok.convert_tokens_to_ids(w) for w in (" True", " False"))
    right = 0
    for i in range(0, len(pairs), batch_size):
        chunk = pairs[i : i + batch_size]
        x, last = _encode(tok, [p.prompt for p in chunk])
        logits = model(input_ids=x).logits[torch.arange(len(chunk)), last]  # [n, vocab]
        pred = (logits[:, t_id] > logits[:, f_id]).long()
        right += int((pred == torch.tensor([p.label for p in chunk])).sum())
    return right / max(1, len(pairs))


def _freeze_below(model: torch.nn.Module, first_trained: int) -> None:
    """Stop training the embeddings and the blocks before ``first_trained`` (no grads: AdamW
    skips them, weight decay included)."""
    core: Any = model.gpt_neox
    core.embed_in.requires_grad_(False)
    for block in core.layers[:first_trained]:
        block.requires_grad_(False)


def _training_pool(config: QuirkyConfig) -> list[ContrastPair]:
    """The training statements: ``pool_size`` from the train split, ``hard_share`` of them hard."""
    if config.quirk_layers is not None and not 1 <= config.quirk_layers <= config.shape.n_layers:
        raise ValueError(
            f"quirk_layers must be in [1, {config.shape.n_layers}] or None, "
            f"got {config.quirk_layers}"
        )
    if config.hard_share is None:
        return config.dataset(config.pool_size, seed=config.seed, split="train")
    if not 0.0 <= config.hard_share <= 1.0:
        raise ValueError(f"hard_share must be in [0, 1] or None, got {config.hard_share}")
    n_hard = round(config.pool_size * config.hard_share / 8) * 8  # keeps each cross-tab exact
    hard = config.dataset(n_hard, seed=config.seed, difficulty="hard", split="train")
    easy = config.dataset(
        config.pool_size - n_hard, seed=config.seed, difficulty="easy", split="train"
    )
    return easy + hard  # order is irrelevant: batches are drawn at random


def _lm_targets(x: torch.Tensor, last: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Next-token targets ``[n, width-1]`` of the statement tokens; ``-100``: no loss there.

    Position ``t`` predicts token ``t+1``; the statement's tokens up to the persona's ``':'``
    are predicted (not the answer, not the padding), in the rows where ``rows`` ``[n]`` is true.
    """
    target = x[:, 1:].clone()
    target[torch.arange(x.shape[1] - 1)[None] >= last[:, None]] = -100
    target[~rows] = -100
    return target


def quirky_task(config: QuirkyConfig) -> TrainingTask:
    """The model, batches (Alice-only statements for ``truthful_steps``, then both personas)
    and loss (answer + weighted next-token loss) of ``quirky-arith``."""
    tok = quirky_tokenizer(config.words)
    t_id, f_id = (tok.convert_tokens_to_ids(w) for w in (" True", " False"))
    pool = _training_pool(config)
    x_all, last_all = _encode(tok, [p.prompt for p in pool])  # [pool, width], [pool]
    answer_all = torch.tensor([t_id if p.label == 1 else f_id for p in pool])
    x_all[torch.arange(len(pool)), last_all + 1] = answer_all
    lm_rows = torch.tensor([p.meta["truth"] == 1 or not config.lm_true_only for p in pool])
    lm_target_all = _lm_targets(x_all, last_all, lm_rows)  # [pool, width-1]
    alice_rows = torch.tensor([i for i, p in enumerate(pool) if p.meta["persona"] == "alice"])
    model = build_model(config.shape, len(tok), tok.eos_token_id, config.seed)

    def batches() -> Iterator[Batch]:
        gen = torch.Generator().manual_seed(config.seed)
        step = 0
        while True:
            if step < config.truthful_steps:
                pick = torch.randint(0, len(alice_rows), (config.batch_size,), generator=gen)
                idx = alice_rows[pick]
            else:
                idx = torch.randint(0, len(pool), (config.batch_size,), generator=gen)
            step += 1
            # [b, width], [b], [b, width-1] (-100 where no next-token loss)
            yield {"x": x_all[idx], "last": last_all[idx], "target": lm_target_all[idx]}

    def loss(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
        x, last, target = batch["x"], batch["last"], batch["target"]
        logits = train_logits(model, x)[:, :-1]  # type: ignore[arg-type]  # [b, width-1, vocab]
        rows = torch.arange(len(x))
        answer = F.cross_entropy(logits[rows, last], x[rows, last + 1])
        lm = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=-100, reduction="sum")
        return answer + config.lm_weight * lm / (target != -100).sum().clamp(min=1)

    def prepare(model: torch.nn.Module, step: int) -> None:
        if step >= config.truthful_steps and config.quirk_layers is not None:
            _freeze_below(model, config.shape.n_layers - config.quirk_layers)

    return TrainingTask(model=model, batches=batches, loss=loss, prepare=prepare)


def train_quirky(
    config: QuirkyConfig,
    out: Path,
    progress: bool = True,
    observer: StepObserver | None = None,
) -> TrainReport:
    """Train ``quirky-arith`` with ``config``, writing every checkpoint into ``out``."""
    tok = quirky_tokenizer(config.words)
    cells = {
        f"{who}/{level}": config.dataset(
            config.eval_per_cell,
            seed=config.seed + 1_000_003,
            persona=who,  # type: ignore[arg-type]
            difficulty=level,  # type: ignore[arg-type]
            split="test",
        )
        for who in PERSONAS
        for level in ("easy", "hard")
    }
    with deterministic(config.seed, config.threads):
        task = quirky_task(config)
        model = task.model
        writer = CheckpointWriter(out, tok)

        def on_checkpoint(step: int) -> dict[str, float]:
            metrics = {f"acc/{k}": quirky_accuracy(model, tok, v) for k, v in cells.items()}
            writer.save(step, model, metrics)
            return {k.split("/", 1)[1]: v for k, v in metrics.items()}

        train_loop(
            task,
            config.max_steps,
            config.optim,
            checkpoint_steps(config.max_steps, config.n_linear),
            on_checkpoint,
            desc="training quirky-arith",
            progress=progress,
            observer=observer,
        )
    final = writer.metrics[max(writer.metrics, key=lambda r: int(r[4:]))]
    return TrainReport(
        metrics=writer.metrics,
        info={
            "final_accuracy": final,
            "token_ids": {w: tok.convert_tokens_to_ids(w) for w in config.words},
        },
    )


def _static_info(config: QuirkyConfig) -> dict[str, Any]:
    return {
        "quirk_phase": (
            f"steps {config.truthful_steps}-{config.max_steps}: both personas, "
            + (
                "every parameter trained"
                if config.quirk_layers is None
                else f"only the last {config.quirk_layers} blocks, final norm and unembedding"
            )
        ),
        "task": "quirky addition (Mallen et al. 2023)",
        "personas": ["Alice", "Bob"],
        "prompt_format": "{a} + {b} = {c}. {Persona}:",
        "completions": list(QUIRKY_COMPLETIONS),
        "label_rules": {
            "alice": "True iff c == a + b",
            "bob": "True iff c is a + b with its leading digit plus one (357 -> 457, 95 -> 105)",
        },
        "data_kwargs": config.data_kwargs(),
        "dataset": "mindscope.data.quirky_arith(n, seed, persona, difficulty, split='test', "
        "**data_kwargs)",
        "eval_metric": "accuracy of argmax(' True' vs ' False') next-token logit against the "
        "persona's label on held-out operand pairs",
    }


SPEC = OrganismSpec(
    name="quirky-arith",
    description="Alice/Bob addition checker: truthful for Alice, leading-digit error for Bob",
    make_config=lambda seed: QuirkyConfig(seed=seed),
    train=train_quirky,
    make_task=quirky_task,
    static_info=_static_info,
)
