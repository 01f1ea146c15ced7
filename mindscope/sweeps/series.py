"""Checkpoint series: list a model's revisions, select some, hash them before loading.

Three sources, one listing rule (Pythia's ``step<N>`` names):

* ``organism`` - a mindscope organism trained with ``mindscope organism train NAME`` (its
  folder holds one ``step<N>/`` Hugging Face folder per checkpoint); nothing is trained here.
* ``folder`` - any local folder laid out the same way.
* ``hub`` - the ``step<N>`` branches of a hub repository (``EleutherAI/pythia-70m``); the
  content hash comes from the hub's LFS metadata, so nothing is downloaded to compare.

The content hash of a local checkpoint is taken over its weight files' names and bytes before
the model is loaded; it equals :attr:`mindscope.ModelHandle.weights_hash` of the loaded model,
so activations cached for one checkpoint serve every checkpoint with identical weights.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mindscope import io
from mindscope.errors import ConfigError, ModelLoadError

__all__ = [
    "Checkpoint",
    "parse_step",
    "folder_checkpoints",
    "organism_checkpoints",
    "hub_checkpoints",
    "list_checkpoints",
    "select",
    "log_spaced",
    "checkpoint_hash",
    "hash_checkpoints",
    "check_architectures",
    "duplicates",
]

_STEP_RE = re.compile(r"^step(\d+)$")


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint of a series.

    Attributes:
        revision: its name (``"step1000"``).
        step: the training step (``-1`` for a control such as ``"random-init"``).
        path: local Hugging Face folder, or ``None`` for a hub revision.
        repo: hub repository id (hub source) or the series name.
        weights_hash: content hash of the weight files (16 hex digits), ``""`` until hashed.
    """

    revision: str
    step: int
    path: str | None
    repo: str
    weights_hash: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what workers receive)."""
        return {
            "revision": self.revision,
            "step": self.step,
            "path": self.path,
            "repo": self.repo,
            "weights_hash": self.weights_hash,
        }


def parse_step(name: str) -> int | None:
    """``"step12" -> 12``; ``None`` for any other name."""
    m = _STEP_RE.match(name)
    return int(m.group(1)) if m else None


def folder_checkpoints(root: str | Path, *, repo: str | None = None) -> list[Checkpoint]:
    """The ``step<N>/`` Hugging Face sub-folders of ``root``, in step order.

    Raises:
        ModelLoadError: no such folder, no checkpoint in it, or a mixed folder (a model folder
            not named ``step<N>``, or a ``step<N>`` folder that is not a model).
    """
    p = Path(root).expanduser()
    if not p.is_dir():
        raise ModelLoadError(f"no checkpoint folder at {p}")
    found: list[Checkpoint] = []
    for sub in sorted(x for x in p.iterdir() if x.is_dir() and not x.name.startswith(".")):
        step = parse_step(sub.name)
        is_model = (sub / "config.json").is_file()
        if step is None:
            if is_model:
                raise ModelLoadError(
                    f"mixed checkpoint folder {p}: model folder {sub.name!r} is not named step<N>"
                )
            continue
        if not is_model:
            raise ModelLoadError(
                f"mixed checkpoint folder {p}: {sub.name}/ has no config.json (not a model)"
            )
        from mindscope.models.load import weight_files

        if not weight_files(sub):
            raise ModelLoadError(f"checkpoint {sub} has no weight files (*.safetensors / *.bin)")
        found.append(Checkpoint(sub.name, step, str(sub.resolve()), repo or str(p)))
    if not found:
        raise ModelLoadError(f"checkpoint folder {p} holds no step<N>/ model folder")
    return sorted(found, key=lambda c: c.step)


def organism_checkpoints(name: str, seed: int = 0) -> list[Checkpoint]:
    """The checkpoints of organism ``name`` as trained in ``$MINDSCOPE_HOME`` (never trains).

    Raises:
        ModelLoadError: unknown organism, or not trained (run ``mindscope organism train``).
    """
    from mindscope import organisms

    known = organisms.organism_names()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(known)}"
        raise ModelLoadError(f"unknown organism {name!r}{hint}")
    status = next(s for s in organisms.list_organisms(seed) if s.name == name)
    root = Path(status.path)
    if not root.is_dir() or not any(parse_step(x.name) is not None for x in root.iterdir()):
        raise ModelLoadError(
            f"organism {name!r} (seed {seed}) has no checkpoints in {root}; train it once with "
            f"`mindscope organism train {name}`"
        )
    return folder_checkpoints(root, repo=f"organism:{name}")


def hub_checkpoints(repo: str, *, api: Any = None) -> list[Checkpoint]:
    """The ``step<N>`` branches of hub repository ``repo`` (Pythia naming), in step order."""
    if api is None:
        try:
            from huggingface_hub import HfApi
        except ImportError:  # pragma: no cover - transformers depends on it
            raise ModelLoadError("listing hub revisions needs huggingface_hub") from None
        api = HfApi()
    try:
        refs = api.list_repo_refs(repo)
    except Exception as exc:  # noqa: BLE001 - network / auth / missing repo
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot list the revisions of {repo!r}: {first[:160]}") from None
    found = [
        Checkpoint(b.name, s, None, repo)
        for b in refs.branches
        if (s := parse_step(b.name)) is not None
    ]
    if not found:
        raise ModelLoadError(f"hub repository {repo!r} has no step<N> branches")
    return sorted(found, key=lambda c: c.step)


def list_checkpoints(source: str, name: str, seed: int = 0) -> list[Checkpoint]:
    """All checkpoints of a series (see the module docstring for the sources)."""
    if source == "organism":
        return organism_checkpoints(name, seed)
    if source == "folder":
        return folder_checkpoints(name)
    if source == "hub":
        return hub_checkpoints(name)
    raise ConfigError(f"unknown checkpoint source {source!r}; use organism, folder or hub")


def log_spaced(steps: Sequence[int], n: int) -> list[int]:
    """``n`` of ``steps`` spread evenly in ``log(1 + step)``, first and last included."""
    avail = sorted(set(steps))
    if n >= len(avail):
        return avail
    if n < 2:
        return [avail[-1]] if n == 1 else []
    lo, hi = math.log1p(avail[0]), math.log1p(avail[-1])
    chosen: set[int] = set()
    for i in range(n):
        target = math.expm1(lo + (hi - lo) * i / (n - 1))
        free = [s for s in avail if s not in chosen]
        chosen.add(min(free, key=lambda s: (abs(math.log1p(s) - math.log1p(target)), s)))
    return sorted(chosen)


def _nearest(step: int, avail: Sequence[int]) -> list[int]:
    i = bisect.bisect_left(avail, step)
    return [avail[j] for j in (i - 1, i) if 0 <= j < len(avail)]


def select(checkpoints: Sequence[Checkpoint], selection: Any) -> list[Checkpoint]:
    """Pick checkpoints: ``"all"``, an int ``N`` (log-spaced) or a list of steps / names.

    Raises:
        ConfigError: unknown steps (named, with the nearest existing ones), or an empty pick.
    """
    by_step = {c.step: c for c in checkpoints}
    avail = sorted(by_step)
    if selection == "all":
        return list(checkpoints)
    if isinstance(selection, int) and not isinstance(selection, bool):
        if selection < 1:
            raise ConfigError(f"select: need at least 1 checkpoint, got {selection}")
        return [by_step[s] for s in log_spaced(avail, selection)]
    if not isinstance(selection, list | tuple) or not selection:
        raise ConfigError(f"select: expected 'all', a count or a list of steps, got {selection!r}")
    wanted: list[int] = []
    for item in selection:
        step = item if isinstance(item, int) else parse_step(str(item))
        if step is None:
            raise ConfigError(f"select: {item!r} is neither a step number nor a step<N> name")
        wanted.append(int(step))
    unknown = [s for s in dict.fromkeys(wanted) if s not in by_step]
    if unknown:
        parts = [
            f"step{s} (nearest: {', '.join(f'step{n}' for n in _nearest(s, avail))})"
            for s in unknown
        ]
        raise ConfigError(f"unknown checkpoint(s) {'; '.join(parts)}")
    return [by_step[s] for s in sorted(set(wanted))]


def checkpoint_hash(path: str | Path) -> str:
    """Content hash (16 hex digits) of a local checkpoint's weight files, read from disk before
    any model is built; equal to the loaded handle's ``weights_hash``."""
    from mindscope.models.handle import files_hash
    from mindscope.models.load import weight_files

    files = weight_files(Path(path))
    if not files:
        raise ModelLoadError(f"checkpoint {path} has no weight files")
    return files_hash(files)


def _hub_hash(repo: str, revision: str, api: Any = None) -> str:
    """Hash of a hub revision's weight files from their LFS sha256 (no download)."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    try:
        info = api.model_info(repo, revision=revision, files_metadata=True)
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot read {repo}@{revision} metadata: {first[:160]}") from None
    h = io.hasher("blake2b")
    weights = [s for s in info.siblings if s.rfilename.endswith((".safetensors", ".bin")) and s.lfs]
    if not weights:
        raise ModelLoadError(f"{repo}@{revision} lists no weight files")
    for s in sorted(weights, key=lambda s: s.rfilename):
        h.update(s.rfilename.encode())
        h.update(str(s.lfs.sha256).encode())
    return "hub-" + h.hexdigest()[:12]


def hash_checkpoints(
    checkpoints: Sequence[Checkpoint], *, hub_hash: Callable[[str, str], str] | None = None
) -> list[Checkpoint]:
    """The checkpoints with ``weights_hash`` filled (from files, or hub metadata)."""
    out = []
    for c in checkpoints:
        if c.weights_hash:
            out.append(c)
        elif c.path is not None:
            out.append(replace(c, weights_hash=checkpoint_hash(c.path)))
        else:
            fn = hub_hash or _hub_hash
            out.append(replace(c, weights_hash=fn(c.repo, c.revision)))
    return out


def _arch(path: Path) -> tuple[Any, ...]:
    try:
        cfg = json.loads((path / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {path / 'config.json'}: {exc}") from None
    layers = next((cfg[k] for k in ("num_hidden_layers", "n_layer", "n_layers") if k in cfg), None)
    width = next((cfg[k] for k in ("hidden_size", "n_embd", "d_model") if k in cfg), None)
    return (cfg.get("model_type"), layers, width, cfg.get("vocab_size"))


def check_architectures(checkpoints: Sequence[Checkpoint]) -> None:
    """Refuse a series whose local checkpoints have different architectures or shapes."""
    first: tuple[str, tuple[Any, ...]] | None = None
    for c in checkpoints:
        if c.path is None:
            continue
        arch = _arch(Path(c.path))
        if first is None:
            first = (c.revision, arch)
        elif arch != first[1]:
            fmt = lambda a: f"{a[0]} ({a[1]} layers, width {a[2]}, vocab {a[3]})"  # noqa: E731
            raise ModelLoadError(
                f"checkpoints of different architectures in one series: {first[0]} is "
                f"{fmt(first[1])}, {c.revision} is {fmt(arch)}"
            )


def duplicates(checkpoints: Sequence[Checkpoint]) -> dict[str, str]:
    """``{revision: revision it duplicates}`` for checkpoints whose weights hash equals an
    earlier (lower-step) checkpoint's."""
    first: dict[str, str] = {}
    out: dict[str, str] = {}
    for c in sorted(checkpoints, key=lambda c: c.step):
        if c.weights_hash in first:
            out[c.revision] = first[c.weights_hash]
        else:
            first[c.weights_hash] = c.revision
    return out
