"""Planted frauds: dishonest copies of an honest trained organism, for testing the verifier.

Each function copies the honest folder ``src`` to ``dst`` (``src`` is never modified) and then
forges it the way a consistent cheater would: file hashes and the hash chain are recomputed to
match the forged files (except in :func:`edit_chain`), so only the verifier's re-execution and
consistency checks can catch it.

- :func:`swap_data`: segment ``i`` was trained on other data (the same task with another seed),
  training then continued honestly; the transcript still claims the original batches (its
  logged losses are those of the run that happened).
- :func:`add_noise`: checkpoint ``step`` perturbed by Gaussian noise of norm ``scale`` times the
  update of the segment ending there (the verifier's tolerance x 10 in the tests).
- :func:`interpolate`: segments ``first .. last`` never trained: their checkpoints (weights and
  AdamW state) are linear interpolations between the ends, their losses too.
- :func:`fine_tune_after`: ``steps`` more updates on other data after the last checkpoint, into
  the released weights (``also_transcript``: the last checkpoint replaced as well).
- :func:`edit_chain`: one logged batch hash changed, the chain left as it was.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save

from mindscope import io
from mindscope.organisms import config_from_dict, make_task, store
from mindscope.organisms.trainer import deterministic, make_optimizer, run_segment
from mindscope.organisms.transcript import (
    TRANSCRIPT_DIR,
    TRANSCRIPT_FILE,
    adam_bytes,
    adam_path,
    chain_links,
    load_adam,
    model_bytes,
    weights_path,
)

__all__ = ["swap_data", "add_noise", "interpolate", "fine_tune_after", "edit_chain"]


def _copy(src: Path, dst: Path) -> tuple[dict[str, Any], Any]:
    if dst.exists():
        raise FileExistsError(f"{dst} exists; frauds are written into a new folder")
    shutil.copytree(src, dst)
    doc = json.loads((dst / TRANSCRIPT_DIR / TRANSCRIPT_FILE).read_text())
    config = config_from_dict(doc["header"]["organism"], doc["header"]["config"])
    return doc, config


def _write_weights(root: Path, step: int, data: bytes, doc: dict[str, Any]) -> None:
    """Replace the weights after ``step`` updates everywhere they appear; fix the hashes."""
    digest = io.hash_bytes(data)
    own = root / TRANSCRIPT_DIR / "ckpt" / f"step{step}.model.safetensors"
    own.write_bytes(data)
    revision = root / f"step{step}" / "model.safetensors"
    if revision.is_file():
        revision.write_bytes(data)
        _fix_manifest(root, f"step{step}")
    for seg in doc["segments"]:
        for key, at in (("start_ckpt", seg["start"]), ("end_ckpt", seg["end"])):
            if at == step:
                seg[key]["weights"] = digest


def _write_adam(root: Path, step: int, data: bytes, doc: dict[str, Any]) -> None:
    digest = io.hash_bytes(data)
    adam_path(root, step).write_bytes(data)
    for seg in doc["segments"]:
        for key, at in (("start_ckpt", seg["start"]), ("end_ckpt", seg["end"])):
            if at == step:
                seg[key]["adam"] = digest


def _fix_manifest(root: Path, revision: str) -> None:
    manifest = store.read_manifest(root)
    if manifest is not None and revision in manifest["revisions"]:
        manifest["revisions"][revision]["files"] = store.hash_dir(root / revision)
        store.write_manifest(root, manifest)


def _rechain(root: Path, doc: dict[str, Any]) -> None:
    links = chain_links(doc["header"], doc["segments"])
    doc["header_chain"] = links[0]
    for seg, link in zip(doc["segments"], links[1:]):
        seg["chain"] = link
    doc["root"] = links[-1]
    (root / TRANSCRIPT_DIR / TRANSCRIPT_FILE).write_text(json.dumps(doc, indent=0) + "\n")


def _state(root: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(weights_path(root, step)))


def _run(
    task: Any, config: Any, root: Path, doc: dict[str, Any], start: int, end: int, batches: Any
) -> list[float]:
    """Continue training from the (forged) checkpoint at ``start`` to ``end`` on ``batches``,
    writing every boundary checkpoint on the way; returns the losses."""
    model = task.model
    with torch.no_grad():
        model.load_state_dict(_state(root, start))
    opt = make_optimizer(model, config.optim)
    load_adam(adam_path(root, start), model, opt)
    bounds = [b for b in doc["header"]["boundaries"] if start < b <= end]
    losses: list[float] = []
    at = start
    for b in bounds:
        chunk = itertools.islice(batches, b - at)
        losses += run_segment(task, opt, at, b, config.optim, doc["header"]["max_steps"], chunk)
        _write_weights(root, b, model_bytes(model), doc)
        _write_adam(root, b, adam_bytes(model, opt), doc)
        at = b
    return losses


def swap_data(src: Path, dst: Path, segment: int) -> Path:
    """Segment ``segment`` trained on other data (claimed as the logged data); see the module."""
    doc, config = _copy(src, dst)
    seg = doc["segments"][segment]
    name = doc["header"]["organism"]
    other = make_task(name, dataclasses.replace(config, seed=config.seed + 1000))
    with deterministic(config.seed, config.threads):
        task = make_task(name, config)
        honest = itertools.islice(task.batches(), seg["end"], None)
        fake = itertools.islice(other.batches(), seg["start"], seg["end"])
        stream = itertools.chain(fake, honest)
        losses = _run(task, config, dst, doc, seg["start"], doc["header"]["max_steps"], stream)
    for s in doc["segments"][segment:]:
        s["losses"] = losses[s["start"] - seg["start"] : s["end"] - seg["start"]]
    _rechain(dst, doc)
    return dst


def add_noise(src: Path, dst: Path, step: int, scale: float, seed: int = 0) -> Path:
    """Checkpoint ``step`` + Gaussian noise of norm ``scale * |update of the segment ending
    there|`` (the parameters only, buffers untouched)."""
    doc, _ = _copy(src, dst)
    bounds = doc["header"]["boundaries"]
    prev = bounds[bounds.index(step) - 1]
    state, before = _state(dst, step), _state(dst, prev)
    names = [k for k, v in state.items() if v.is_floating_point() and "rotary" not in k]
    update = torch.stack([((state[k] - before[k]).double() ** 2).sum() for k in names]).sum().sqrt()
    gen = torch.Generator().manual_seed(seed)
    noise = {k: torch.randn(state[k].shape, generator=gen, dtype=torch.float64) for k in names}
    norm = torch.stack([(n**2).sum() for n in noise.values()]).sum().sqrt()
    for k in names:
        state[k] = (state[k].double() + noise[k] * (scale * update / norm)).to(state[k].dtype)
    _write_weights(dst, step, save(state, metadata={"format": "pt"}), doc)
    _rechain(dst, doc)
    return dst


def interpolate(src: Path, dst: Path, first: int, last: int) -> Path:
    """Segments ``first .. last`` skipped: checkpoints in between interpolated linearly."""
    doc, _ = _copy(src, dst)
    segs = doc["segments"]
    a, b = segs[first]["start"], segs[last]["end"]
    wa, wb = _state(dst, a), _state(dst, b)
    oa, ob = load_file(str(adam_path(dst, a))), load_file(str(adam_path(dst, b)))
    la, lb = segs[first]["losses"][0], segs[last]["losses"][-1]
    for seg in segs[first : last + 1]:
        if seg["end"] != b:
            t = (seg["end"] - a) / (b - a)
            w = {k: (1 - t) * wa[k] + t * wb[k] if wa[k].is_floating_point() else wa[k] for k in wa}
            o = {k: (1 - t) * oa[k] + t * ob[k] for k in ob if k in oa}
            _write_weights(dst, seg["end"], save(w, metadata={"format": "pt"}), doc)
            _write_adam(dst, seg["end"], save(o, metadata={"format": "pt"}), doc)
        n = seg["end"] - seg["start"]
        seg["losses"] = [la + (lb - la) * (seg["start"] + j - a) / max(1, b - a) for j in range(n)]
    _rechain(dst, doc)
    return dst


def fine_tune_after(src: Path, dst: Path, steps: int, also_transcript: bool = False) -> Path:
    """``steps`` more updates on other data after the last checkpoint, into the released
    weights (``also_transcript``: written as the transcript's last checkpoint too)."""
    doc, config = _copy(src, dst)
    name, end = doc["header"]["organism"], doc["header"]["max_steps"]
    other = make_task(name, dataclasses.replace(config, seed=config.seed + 2000))
    with deterministic(config.seed, config.threads):
        task = make_task(name, config)
        model = task.model
        with torch.no_grad():
            model.load_state_dict(_state(dst, end))
        opt = make_optimizer(model, config.optim)
        load_adam(adam_path(dst, end), model, opt)
        run_segment(task, opt, end - 1, end - 1 + steps, config.optim, end, iter(other.batches()))
    data = model_bytes(model)
    final = dst / doc["header"]["final_revision"] / "model.safetensors"
    final.write_bytes(data)
    _fix_manifest(dst, doc["header"]["final_revision"])
    if also_transcript:
        _write_weights(dst, end, data, doc)
        _rechain(dst, doc)
    return dst


def edit_chain(src: Path, dst: Path, segment: int) -> Path:
    """One logged batch hash of ``segment`` replaced; the chain not recomputed."""
    doc, _ = _copy(src, dst)
    seg = doc["segments"][segment]
    seg["batches"][0] = io.hash_bytes(b"other data")[:32]
    (dst / TRANSCRIPT_DIR / TRANSCRIPT_FILE).write_text(json.dumps(doc, indent=0) + "\n")
    return dst
