"""Training transcripts: what a third party needs to check that weights came from a training run.

In the manner of Proof-of-Learning (Jia et al. 2021), the trainer logs, while it trains:

- the hyper-parameters (the organism's full config, optimiser, schedule, thread count);
- the data order: a hash of every step's batch (the organism can rebuild any batch from its
  config, so a verifier can check the hashes and re-execute steps with the same data);
- the loss of every step;
- a checkpoint every ``k`` steps: the weights and AdamW's state (moments and step counts), each
  file identified by its SHA-256;
- a hash chain: ``chain_0 = H(header)``, ``chain_i = H(chain_{i-1} || segment_i)``; the last link
  is the transcript's ``root``. Changing any logged value breaks every later link.

Layout inside an organism folder::

    transcript/transcript.json
    transcript/ckpt/step<N>.model.safetensors   (omitted where step<N>/model.safetensors, the
                                                  revision folder, holds the identical bytes)
    transcript/ckpt/step<N>.adam.safetensors    (keys "<parameter name>.<state key>")

Segment ``i`` covers the updates ``boundaries[i] .. boundaries[i+1] - 1``: it starts from the
checkpoint after ``boundaries[i]`` updates and ends at the one after ``boundaries[i+1]``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from mindscope.errors import MindscopeError
from mindscope.organisms.trainer import Batch, StepObserver

__all__ = [
    "TRANSCRIPT_DIR",
    "TRANSCRIPT_FILE",
    "TranscriptError",
    "TranscriptWriter",
    "batch_hash",
    "canonical",
    "chain_links",
    "segment_boundaries",
    "weights_path",
    "adam_path",
    "model_bytes",
    "adam_bytes",
    "load_adam",
    "file_sha256",
    "machine_id",
]

TRANSCRIPT_DIR = "transcript"
TRANSCRIPT_FILE = "transcript.json"
_TAG = b"mindscope-training-transcript-v1"


class TranscriptError(MindscopeError):
    """A training transcript is missing, truncated, inconsistent or refers to missing files."""


def machine_id() -> str:
    """What must match for bit-exact re-execution besides the thread count: CPU and torch."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu} | {platform.system()} | torch {torch.__version__}"


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj`` (sorted keys, no spaces) that the chain hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def batch_hash(batch: Mapping[str, torch.Tensor]) -> str:
    """A 128-bit hex hash of a batch: every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for key in sorted(batch):
        t = batch[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:32]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def segment_boundaries(max_steps: int, segments: int) -> list[int]:
    """``segments + 1`` checkpoint steps from 0 to ``max_steps``, evenly spaced (rounded)."""
    n = max(1, min(segments, max_steps))
    return sorted({round(max_steps * i / n) for i in range(n + 1)})


def weights_path(root: Path, step: int) -> Path:
    """Where the transcript keeps the weights after ``step`` updates (see the module doc)."""
    own = root / TRANSCRIPT_DIR / "ckpt" / f"step{step}.model.safetensors"
    revision = root / f"step{step}" / "model.safetensors"
    return own if own.is_file() or not revision.is_file() else revision


def adam_path(root: Path, step: int) -> Path:
    """Where the transcript keeps AdamW's state after ``step`` updates."""
    return root / TRANSCRIPT_DIR / "ckpt" / f"step{step}.adam.safetensors"


def model_bytes(model: torch.nn.Module) -> bytes:
    """The weights as safetensors bytes, exactly as a revision folder's ``model.safetensors``."""
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    return save(state, metadata={"format": "pt"})


def adam_bytes(model: torch.nn.Module, opt: torch.optim.Optimizer) -> bytes:
    """AdamW's per-parameter state as safetensors bytes, keyed ``<param name>.<state key>``."""
    names = {id(p): n for n, p in model.named_parameters()}
    state: dict[str, torch.Tensor] = {}
    for p, s in opt.state.items():
        for key, value in s.items():
            if isinstance(value, torch.Tensor):
                state[f"{names[id(p)]}.{key}"] = value.detach().clone().contiguous()
    return save(state, metadata={"format": "pt"})


def load_adam(path: Path, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    """Put the AdamW state saved by :func:`adam_bytes` into ``opt`` (built over ``model``)."""
    saved = load_file(str(path))
    by_name = dict(model.named_parameters())
    opt.state.clear()
    for key, value in saved.items():
        pname, _, skey = key.rpartition(".")
        if pname not in by_name:
            raise TranscriptError(f"{path.name}: optimiser state for unknown parameter {pname!r}")
        opt.state[by_name[pname]][skey] = value.clone()


def chain_links(header: Mapping[str, Any], segments: Sequence[Mapping[str, Any]]) -> list[str]:
    """The hash chain: ``[H(header), H(link_0 || seg_0), ...]`` (``chain`` fields ignored)."""
    link = hashlib.sha256(_TAG + canonical(dict(header))).hexdigest()
    links = [link]
    for seg in segments:
        body = {k: v for k, v in seg.items() if k != "chain"}
        link = hashlib.sha256(link.encode() + canonical(body)).hexdigest()
        links.append(link)
    return links


class TranscriptWriter(StepObserver):
    """Writes a transcript into ``root`` while :func:`~mindscope.organisms.trainer.train_loop`
    runs (pass it as ``observer``); :meth:`finish` writes ``transcript.json``.

    Args:
        root: the organism folder being written (revision folders ``step<N>/`` live there).
        header: hyper-parameters and identity of the run (organism, config, optimiser, ...).
        max_steps: total updates.
        segments: number of segments (checkpoints every ``max_steps / segments`` steps).
    """

    def __init__(
        self, root: Path, header: Mapping[str, Any], max_steps: int, segments: int
    ) -> None:
        self.root = root
        self.boundaries = segment_boundaries(max_steps, segments)
        self.header = {**header, "max_steps": max_steps, "boundaries": self.boundaries}
        self.hashes: list[str] = []
        self.losses: list[float] = []
        self.ckpts: dict[int, dict[str, str]] = {}
        self.seconds = 0.0  # time spent writing the transcript
        (root / TRANSCRIPT_DIR / "ckpt").mkdir(parents=True, exist_ok=True)

    def on_batch(self, step: int, batch: Batch) -> None:  # noqa: D102
        t0 = time.perf_counter()
        self.hashes.append(batch_hash(batch))
        self.seconds += time.perf_counter() - t0

    def on_update(
        self, step: int, loss: float, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> None:  # noqa: D102
        t0 = time.perf_counter()
        if step >= 0:
            self.losses.append(loss)
        done = step + 1
        if done in self.boundaries:
            self._save(done, model, opt)
        self.seconds += time.perf_counter() - t0

    def _save(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        weights = model_bytes(model)
        w_hash = hashlib.sha256(weights).hexdigest()
        revision = self.root / f"step{step}" / "model.safetensors"
        if not (revision.is_file() and file_sha256(revision) == w_hash):
            (self.root / TRANSCRIPT_DIR / "ckpt" / f"step{step}.model.safetensors").write_bytes(
                weights
            )
        adam = adam_bytes(model, opt)
        adam_path(self.root, step).write_bytes(adam)
        self.ckpts[step] = {"weights": w_hash, "adam": hashlib.sha256(adam).hexdigest()}

    def finish(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Write ``transcript/transcript.json`` (``extra``: unchained notes such as timings);
        returns it."""
        b = self.boundaries
        segments: list[dict[str, Any]] = [
            {
                "index": i,
                "start": b[i],
                "end": b[i + 1],
                "start_ckpt": self.ckpts[b[i]],
                "end_ckpt": self.ckpts[b[i + 1]],
                "batches": self.hashes[b[i] : b[i + 1]],
                "losses": self.losses[b[i] : b[i + 1]],
            }
            for i in range(len(b) - 1)
        ]
        links = chain_links(self.header, segments)
        for seg, link in zip(segments, links[1:]):
            seg["chain"] = link
        doc = {
            "header": self.header,
            "header_chain": links[0],
            "segments": segments,
            "root": links[-1],
            "notes": {"write_seconds": round(self.seconds, 3), **(extra or {})},
        }
        path = self.root / TRANSCRIPT_DIR / TRANSCRIPT_FILE
        path.write_text(json.dumps(doc, indent=0) + "\n")
        return doc
