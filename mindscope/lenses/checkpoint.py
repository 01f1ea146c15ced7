"""Resumable tuned-lens training: the training state saved every few steps, and read back.

A checkpoint folder holds ``state-<step>.safetensors`` (the translators, the optimiser's
tensors and the best translators so far) and ``progress.json`` (the step, the histories, the
learning-rate schedule, the optimiser's hyper-parameters, and a key: the hash of the training
config, the model's weights and the training sequences). ``progress.json`` is written last and
names the state file by its hash, so a kill at any moment leaves the previous checkpoint whole.
A rerun with the same key resumes after the saved step and ends bit-identical to an
uninterrupted run (the batch plan is a pure function of the seed); any other key starts afresh.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mindscope import io

__all__ = ["TrainState", "save_state", "load_state", "PROGRESS_FILE"]

PROGRESS_FILE = "progress.json"
_FORMAT = io.ManifestFormat("tuned-lens-checkpoint", 1)


@dataclass
class TrainState:
    """Everything the training loop needs to continue after ``steps_done`` steps."""

    steps_done: int
    history: list[list[float]]
    held_history: list[list[float]]
    evals_without_gain: int
    best: tuple[float, int, list[float], torch.Tensor, torch.Tensor] | None
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """``(tensors, plain JSON)`` of an optimiser ``state_dict``."""
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, Any] = {"param_groups": state["param_groups"], "scalars": {}}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"opt.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                plain["scalars"][f"{idx}.{key}"] = value
    return tensors, plain


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], plain: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, t in tensors.items():
        if not name.startswith("opt."):
            continue
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = t
    for name, value in plain["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": plain["param_groups"]}


def save_state(
    folder: Path, key: str, weight: torch.Tensor, bias: torch.Tensor, s: TrainState
) -> None:
    """Write a checkpoint of ``s`` (translators ``weight [L, d, d]``, ``bias [L, d]``) into
    ``folder``, atomically, then drop the previous state file."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    opt_tensors, opt_plain = _flatten_optimizer(s.optimizer)
    tensors = {
        "weight": weight.detach().cpu().contiguous(),
        "bias": bias.detach().cpu().contiguous(),
    }
    tensors.update(opt_tensors)
    best_meta = None
    if s.best is not None:
        mean, step, per_layer, bw, bb = s.best
        tensors["best.weight"], tensors["best.bias"] = bw.cpu().contiguous(), bb.cpu().contiguous()
        best_meta = [mean, step, per_layer]
    name = f"state-{s.steps_done}.safetensors"
    with io.atomic_path(folder / name) as tmp:
        save_file(tensors, str(tmp))
    old = _read_progress(folder)
    _FORMAT.write(
        folder / PROGRESS_FILE,
        {
            "key": key,
            "state_file": name,
            "state_sha256": io.hash_file(folder / name),
            "steps_done": s.steps_done,
            "history": s.history,
            "held_history": s.held_history,
            "evals_without_gain": s.evals_without_gain,
            "best": best_meta,
            "optimizer": opt_plain,
            "scheduler": {k: v for k, v in s.scheduler.items() if k != "lr_lambdas"},
            "extra": s.extra,
        },
    )
    if old is not None and old.get("state_file") not in (None, name):
        (folder / str(old["state_file"])).unlink(missing_ok=True)


def _read_progress(folder: Path) -> dict[str, Any] | None:
    path = folder / PROGRESS_FILE
    if not path.is_file():
        return None
    try:
        return _FORMAT.read(path)
    except io.ManifestError:
        return None


def load_state(folder: Path, key: str) -> tuple[torch.Tensor, torch.Tensor, TrainState] | None:
    """The checkpoint in ``folder`` if it was written for ``key`` and its state file is whole,
    else ``None`` (training then starts afresh)."""
    from safetensors.torch import load_file

    meta = _read_progress(folder)
    if meta is None or meta.get("key") != key:
        return None
    file = folder / str(meta["state_file"])
    if not file.is_file() or io.hash_file(file) != meta["state_sha256"]:
        return None
    tensors = load_file(str(file))
    best = None
    if meta["best"] is not None:
        mean, step, per_layer = meta["best"]
        best = (
            float(mean),
            int(step),
            list(per_layer),
            tensors["best.weight"],
            tensors["best.bias"],
        )
    state = TrainState(
        steps_done=int(meta["steps_done"]),
        history=meta["history"],
        held_history=meta["held_history"],
        evals_without_gain=int(meta["evals_without_gain"]),
        best=best,
        optimizer=_unflatten_optimizer(tensors, meta["optimizer"]),
        scheduler={**meta["scheduler"], "lr_lambdas": [None]},
        extra=meta.get("extra", {}),
    )
    return tensors["weight"], tensors["bias"], state
