"""What every organism provides, and the checkpoint writer they share."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import save_file
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from mindscope import io
from mindscope.organisms.checkpoints import revision_name
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.tokenization import save_tokenizer
from mindscope.organisms.trainer import OptimConfig, StepObserver, TrainingTask, default_threads

__all__ = ["OrganismSpec", "OrganismConfig", "TrainReport", "CheckpointWriter"]


@dataclass(frozen=True)
class OrganismConfig:
    """Fields every organism's training config has (each organism sets its own defaults)."""

    seed: int = 0
    """Seed of the weights, the data and the batch order."""
    max_steps: int = 1000
    """Optimiser steps (the final checkpoint is ``step<max_steps>``)."""
    batch_size: int = 16
    """Examples (statements or text windows) per step."""
    shape: ModelShape = field(default_factory=ModelShape)
    """Model shape."""
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=3e-3, warmup=50))
    """Optimiser settings."""
    n_linear: int = 8
    """Evenly spaced checkpoints after the log-spaced ones."""
    threads: int = field(default_factory=default_threads)
    """Torch threads while training (same seed and thread count: bit-identical weights)."""
    transcript_segments: int = 25
    """Segments of the training transcript (a checkpoint with AdamW's state every
    ``max_steps / transcript_segments`` steps; :mod:`mindscope.organisms.transcript`); 0: none.
    Neither this nor ``threads`` is part of the config hash (they do not change the model)."""


@dataclass
class TrainReport:
    """What an organism's training function returns (goes into the manifest)."""

    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Measured metrics per revision (``{"step0": {"heldout_ppl": ...}, ...}``)."""
    info: dict[str, Any] = field(default_factory=dict)
    """Metadata known only after training (token ids, measured rates, ...)."""


@dataclass(frozen=True)
class OrganismSpec:
    """One organism of the zoo."""

    name: str
    """Name used in ``resolve(name)`` and ``load_model("organism:<name>")``."""
    description: str
    """One line for ``mindscope organism list``."""
    make_config: Callable[[int], Any]
    """``make_config(seed)``: the default (dataclass) config for a seed."""
    train: Callable[[Any, Path, bool, StepObserver | None], TrainReport]
    """``train(config, out_dir, progress, observer)``: writes ``step*/`` folders into
    ``out_dir``; ``observer`` (e.g. a transcript writer) sees every step."""
    make_task: Callable[[Any], TrainingTask]
    """``make_task(config)``: the model, batches and loss that ``train`` runs (rebuilt by a
    verifier to re-execute segments)."""
    static_info: Callable[[Any], dict[str, Any]]
    """``static_info(config)``: metadata known before training."""


class CheckpointWriter:
    """Saves a model and its tokenizer as ``<out>/step<N>/`` (Hugging Face format).

    The metrics of every saved checkpoint are also kept in ``<out>/``:data:`METRICS_FILE`, and
    read back when a writer opens the same folder again (a resumed training then reports the
    metrics of the checkpoints written before the interruption).
    """

    METRICS_FILE = "checkpoint_metrics.json"

    def __init__(self, out: Path, tokenizer: PreTrainedTokenizerFast) -> None:
        self.out = out
        self.tokenizer = tokenizer
        self.metrics: dict[str, dict[str, float]] = {}
        saved = out / self.METRICS_FILE
        if saved.is_file():
            try:
                self.metrics = {k: dict(v) for k, v in json.loads(saved.read_text()).items()}
            except (ValueError, AttributeError, TypeError):
                self.metrics = {}

    def save(
        self, step: int, model: PreTrainedModel | Any, metrics: Mapping[str, float] | None = None
    ) -> Path:
        """Write checkpoint ``step`` (and remember its metrics); returns its folder."""
        folder = self.out / revision_name(step)
        folder.mkdir(parents=True, exist_ok=True)
        # config + safetensors written directly: save_pretrained prints a progress bar per call.
        model.config.save_pretrained(str(folder))
        state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        save_tokenizer(self.tokenizer, folder)
        self.metrics[revision_name(step)] = {k: float(v) for k, v in (metrics or {}).items()}
        io.atomic_write_json(self.out / self.METRICS_FILE, self.metrics, sort_keys=False)
        return folder
