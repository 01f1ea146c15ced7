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

While training runs, ``transcript/progress.json`` holds what has been logged up to the last
checkpoint (plus torch's RNG state there), so that a killed training resumes from that checkpoint
(:meth:`TranscriptWriter.resume`) and ends with the same bits as an uninterrupted run.
:meth:`TranscriptWriter.finish` removes it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from mindscope import io
from mindscope.errors import MindscopeError
from mindscope.organisms.trainer import Batch, StepObserver

__all__ = [
    "TRANSCRIPT_DIR",
    "TRANSCRIPT_FILE",
    "PROGRESS_FILE",
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
PROGRESS_FILE = "progress.json"
_TAG = b"mindscope-training-transcript-v1"


class TranscriptError(MindscopeError):
    """A training transcript is missing, truncated, inconsistent or refers to missing files."""


def machine_id() -> str:
    """What must match for bit-exact re-execution besides the thread count: CPU and torch.

    The CPU is named by its model name, family, model and stepping (virtual machines often
    report only a vendor's family name, e.g. ``AMD EPYC``, for different generations) and the
    vector instructions torch dispatches to (``AVX2``, ``AVX512``, ...), which change the
    kernels and so the last bits of a float sum."""
    cpu = platform.processor() or platform.machine()
    ids: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model", "stepping") and key not in ids:
                ids[key] = value.strip()
            if not line.strip() and ids:
                break  # the first processor's block is enough
    except OSError:
        pass
    cpu = ids.get("model name", cpu)
    if "cpu family" in ids:
        cpu += f" ({ids['cpu family']}/{ids.get('model', '?')}/{ids.get('stepping', '?')})"
    try:
        isa = str(torch.backends.cpu.get_cpu_capability())
    except (AttributeError, RuntimeError):  # older torch builds
        isa = "?"
    return f"{cpu} | {isa} | {platform.system()} | torch {torch.__version__}"


def canonical(obj: Any) -> bytes:
    """The canonical JSON bytes of ``obj`` (sorted keys, no spaces) that the chain hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True).encode()


def batch_hash(batch: Mapping[str, torch.Tensor]) -> str:
    """A 128-bit hex hash of a batch: every tensor's name, dtype, shape and bytes."""
    h = io.hasher()
    for key in sorted(batch):
        t = batch[key].detach().cpu().contiguous()
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return str(h.hexdigest())[:32]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes (:func:`mindscope.io.hash_file`)."""
    return io.hash_file(path)


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
    link = io.hash_bytes(_TAG + canonical(dict(header)))
    links = [link]
    for seg in segments:
        body = {k: v for k, v in seg.items() if k != "chain"}
        link = io.hash_bytes(link.encode() + canonical(body))
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
        on_progress: called with the number of updates done after each checkpoint is saved
            (and recorded in ``progress.json``).
    """

    def __init__(
        self,
        root: Path,
        header: Mapping[str, Any],
        max_steps: int,
        segments: int,
        on_progress: Callable[[int], None] | None = None,
    ) -> None:
        self.root = root
        self.boundaries = segment_boundaries(max_steps, segments)
        self.header = {**header, "max_steps": max_steps, "boundaries": self.boundaries}
        self.hashes: list[str] = []
        self.losses: list[float] = []
        self.ckpts: dict[int, dict[str, str]] = {}
        self.seconds = 0.0  # time spent writing the transcript
        self.on_progress = on_progress
        self.resumed_from = 0
        """Updates already done when this run started (0 unless :meth:`resume` found some)."""
        self.steps_run = 0
        """Updates this writer saw run (not counting those skipped by a resume)."""
        (root / TRANSCRIPT_DIR / "ckpt").mkdir(parents=True, exist_ok=True)

    def resume(
        self, model: torch.nn.Module, opt: torch.optim.Optimizer
    ) -> tuple[int, torch.Tensor | None]:
        """Pick up an interrupted run of the same training from its last saved checkpoint.

        When ``progress.json`` in ``root`` was written under the same header (config, thread
        count, machine, versions) and its checkpoint files match their hashes, loads that
        checkpoint's weights into ``model`` and AdamW state into ``opt`` and restores what was
        logged before it.

        Returns:
            ``(updates done, torch RNG state there)``; ``(0, None)`` when there is nothing to
            resume (training then starts from scratch).
        """
        state = self._read_progress()
        if state is None:
            return 0, None
        step, ckpt, rng = state
        weights = load_file(str(weights_path(self.root, step)))
        model.load_state_dict(weights, strict=True)
        load_adam(adam_path(self.root, step), model, opt)
        self.resumed_from = step
        return step, rng

    def _read_progress(self) -> tuple[int, dict[str, str], torch.Tensor] | None:
        path = self.root / TRANSCRIPT_DIR / PROGRESS_FILE
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            step = int(doc["step"])
            same = canonical(doc["header"]) == canonical(self.header)
            ckpts = {int(k): dict(v) for k, v in doc["ckpts"].items()}
            hashes, losses = list(doc["hashes"]), [float(x) for x in doc["losses"]]
            rng = torch.frombuffer(bytearray(base64.b64decode(doc["rng"])), dtype=torch.uint8)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not same or step <= 0 or step not in self.boundaries or step not in ckpts:
            return None
        if len(hashes) != step or len(losses) != step:
            return None
        w, a = weights_path(self.root, step), adam_path(self.root, step)
        if not (w.is_file() and a.is_file()):
            return None
        if io.hash_file(w) != ckpts[step]["weights"] or io.hash_file(a) != ckpts[step]["adam"]:
            return None
        self.hashes, self.losses = hashes, losses
        self.ckpts = {k: v for k, v in ckpts.items() if k <= step}
        return step, self.ckpts[step], rng.clone()

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
            self.steps_run += 1
        done = step + 1
        if done in self.boundaries:
            self._save(done, model, opt)
        self.seconds += time.perf_counter() - t0

    def _save(self, step: int, model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
        weights = model_bytes(model)
        w_hash = io.hash_bytes(weights)
        revision = self.root / f"step{step}" / "model.safetensors"
        own = self.root / TRANSCRIPT_DIR / "ckpt" / f"step{step}.model.safetensors"
        if not (revision.is_file() and file_sha256(revision) == w_hash):
            io.atomic_write_bytes(own, weights)
        elif own.is_file():  # left by an interrupted run that did not have the revision yet
            own.unlink()
        adam = adam_bytes(model, opt)
        io.atomic_write_bytes(adam_path(self.root, step), adam)
        self.ckpts[step] = {"weights": w_hash, "adam": io.hash_bytes(adam)}
        if step < self.boundaries[-1]:  # the last checkpoint: finish() follows at once
            self._write_progress(step)
            if self.on_progress is not None:
                self.on_progress(step)

    def _write_progress(self, step: int) -> None:
        rng = base64.b64encode(torch.get_rng_state().numpy().tobytes()).decode()
        doc = {
            "header": self.header,
            "step": step,
            "ckpts": {str(k): v for k, v in self.ckpts.items()},
            "hashes": self.hashes[:step],
            "losses": self.losses[:step],
            "rng": rng,
        }
        io.atomic_write_text(
            self.root / TRANSCRIPT_DIR / PROGRESS_FILE,
            json.dumps(doc, allow_nan=True, separators=(",", ":")) + "\n",
        )

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
        io.atomic_write_text(path, json.dumps(doc, indent=0) + "\n")
        with contextlib.suppress(FileNotFoundError):
            (self.root / TRANSCRIPT_DIR / PROGRESS_FILE).unlink()
        return doc
