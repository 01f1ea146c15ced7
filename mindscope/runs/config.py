"""The schema of ``mindscope run CONFIG.yaml``: dataclasses with a docstring per field.

:func:`load_config` reads YAML or JSON, checks every key and type and every file it names, and
raises :class:`~mindscope.errors.ConfigError` with a one-line message *before* any model is
loaded. Relative paths are resolved against the config file's folder; the run folder keeps the
fully resolved config (``config.yaml``), which ``mindscope run`` accepts again to repeat a run.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import json
import re
import textwrap
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindscope.errors import ConfigError

__all__ = [
    "ModelConfig",
    "LensConfig",
    "ElicitConfig",
    "RunConfig",
    "REPORTER_METHODS",
    "BUILTIN_DATASETS",
    "load_config",
    "validate",
    "from_dict",
    "to_dict",
    "field_docs",
    "config_template",
]

REPORTER_METHODS = ("lr", "diffmean", "lda", "ccs", "crc", "random")
"""Reporter keys accepted in ``elicit.methods`` (see :mod:`mindscope.probes`)."""

PAIR_ONLY_METHODS = ("ccs", "crc")
"""Reporters that need both sides of a contrast pair (they cannot read a prompt alone)."""

READ_MODES = ("completion", "prompt")
"""Where reporters read: each side of a pair, or the prompt alone (``elicit.read``, ``--read``)."""


def read_mode_error(read: str, methods: Sequence[str]) -> str | None:
    """Why ``methods`` cannot read at ``read``, or None when they can."""
    if read not in READ_MODES:
        return f"expected 'completion' or 'prompt', got {read!r}"
    pair_only = [m for m in methods if m in PAIR_ONLY_METHODS]
    if read == "prompt" and pair_only:
        return f"{', '.join(pair_only)} need contrast pairs; drop them or read the completion"
    return None


BUILTIN_DATASETS = ("quirky-arith",)
"""Dataset names accepted in ``elicit.dataset`` besides a JSONL/CSV file of contrast pairs."""

DATASET_SUFFIXES = (".jsonl", ".json", ".csv")
DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


@dataclass
class ModelConfig:
    """Which model to read."""

    name: str = "organism:pocket-lm"
    """Hugging Face hub id (``EleutherAI/pythia-70m``), local model folder, or ``organism:NAME``."""
    revision: str | None = None
    """Hub revision or organism checkpoint (``step1000``); null: the latest."""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``."""
    dtype: str = "auto"
    """``auto`` (as saved), ``float32``, ``float16`` or ``bfloat16``."""


@dataclass
class LensConfig:
    """Interpreting across depth: logit lens and tuned lens."""

    enabled: bool = True
    """Run the lens analysis."""
    train_text: str | None = None
    """Texts to fit the tuned lens on (JSONL with "text", or blank-line separated documents);
    null: the organism's corpus."""
    eval_text: str | None = None
    """Texts to evaluate the lenses on (same format); null: held-out text (the corpus's
    held-out split, or the last tenth of ``train_text``)."""
    steps: int = 250
    """Optimiser steps for fitting the tuned lens."""
    tokens_per_step: int = 8192
    """Training tokens per optimiser step (the paper uses 2**18; small models need fewer)."""
    max_texts: int = 512
    """At most this many texts are used for fitting and for evaluation each."""
    trajectory_prompt: str = "The cat sat on the"
    """Prompt whose prediction trajectory (top token per layer and position) the report shows."""


@dataclass
class ElicitConfig:
    """Eliciting latent knowledge: reporters (probes) on contrast pairs."""

    enabled: bool = True
    """Run the reporter analysis."""
    model: str | None = None
    """Model to read for this analysis (e.g. a quirky organism); null: the run's ``model``.
    ``model.device`` and ``model.dtype`` apply to it; ``model.revision`` does not."""
    dataset: str = "quirky-arith"
    """Built-in dataset (``quirky-arith``) or a JSONL/CSV file of contrast pairs."""
    n: int = 1000
    """Number of examples drawn from a built-in dataset (ignored for files)."""
    methods: list[str] = field(default_factory=lambda: ["lr", "diffmean", "ccs", "random"])
    """Reporters to fit: any of ``lr``, ``diffmean``, ``lda``, ``ccs``, ``crc``, ``random``."""
    layers: str | list[int] = "all"
    """``all`` or a list of layer numbers (0 = embeddings, k = after block k)."""
    read: str = "completion"
    """Where reporters read: ``completion`` (the last token of each side of a contrast pair:
    ``[n, 2, d]``) or ``prompt`` (the prompt's last token, before any answer: ``[n, d]``;
    supervised reporters and ``random`` only)."""
    transfer: bool = True
    """For quirky datasets: the persona x difficulty transfer matrix (first two non-random
    methods) and the fraction of the gap recovered."""


@dataclass
class RunConfig:
    """One ``mindscope run``: a model, the analyses to run on it, where to write the results."""

    name: str = "run"
    """Short name of the run; the folder is ``<output_dir>/<timestamp>-<name>``."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Which model to read."""
    lens: LensConfig = field(default_factory=LensConfig)
    """Lens analysis (interpreting across depth)."""
    elicit: ElicitConfig = field(default_factory=ElicitConfig)
    """Reporter analysis (eliciting latent knowledge)."""
    output_dir: str = "runs"
    """Folder that receives the run folder."""
    seed: int = 0
    """Seed for every random choice of the run (data sampling, reporter init, lens init)."""


# ----------------------------------------------------------------------------- docs from source


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of a config dataclass (read from the source)."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs: dict[str, str] = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
            and isinstance(nxt.value.value, str)
        ):
            docs[node.target.id] = " ".join(nxt.value.value.split())
    return docs


# ----------------------------------------------------------------------------- dict <-> config


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def _given(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _convert(value: Any, tp: Any, where: str, source: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, where, source)
            except ConfigError:
                continue
        raise ConfigError(f"{source}{where}: expected {_type_name(tp)}, got {_given(value)}")
    if tp is type(None):
        if value is None:
            return None
    elif origin is list:
        if isinstance(value, list):
            (item,) = typing.get_args(tp)
            return [_convert(v, item, f"{where}[{i}]", source) for i, v in enumerate(value)]
    elif dataclasses.is_dataclass(tp):
        if isinstance(value, Mapping):
            return _from_mapping(tp, value, where, source)  # type: ignore[arg-type]
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif isinstance(value, tp):
        return value
    raise ConfigError(f"{source}{where}: expected {_type_name(tp)}, got {_given(value)}")


def _from_mapping(cls: type, data: Mapping[str, Any], where: str, source: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"{source}{path}: unknown key {key!r}{hint}")
        kwargs[key] = _convert(value, hints[key], path, source)
    return cls(**kwargs)


def from_dict(data: Mapping[str, Any], source: str = "") -> RunConfig:
    """Build a :class:`RunConfig` from a plain mapping, checking keys and types (not files).

    ``source`` (e.g. the file name) prefixes error messages.
    """
    prefix = f"{source}: " if source else ""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix}a run config must be a mapping, got {_given(data)}")
    cfg = _from_mapping(RunConfig, data, "", prefix)
    assert isinstance(cfg, RunConfig)
    return cfg


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain data (what ``config.yaml`` of a run folder holds)."""
    return dataclasses.asdict(cfg)


# ----------------------------------------------------------------------------- semantic checks


def _resolve(path: str, base: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def _check_file(value: str | None, where: str, base: Path, prefix: str) -> str | None:
    if value is None:
        return None
    path = _resolve(value, base)
    if not path.is_file():
        raise ConfigError(f"{prefix}{where}: file not found: {path}")
    return str(path.resolve())


def _known_organisms() -> tuple[str, ...] | None:
    """Names of the organisms mindscope can build (None if the zoo cannot say)."""
    try:
        from mindscope.organisms import organism_names
    except ImportError:  # pragma: no cover - organisms are part of the package
        return None
    return tuple(organism_names())


def _check_model_name(name: str, where: str, base: Path, prefix: str) -> str:
    """Check a model name (hub id, folder or organism:NAME); returns it resolved."""
    name = name.strip()
    if not name:
        raise ConfigError(f"{prefix}{where}: empty model name")
    if name.startswith("organism:"):
        known = _known_organisms()
        org = name.split(":", 1)[1]
        if known is not None and org not in known:
            close = difflib.get_close_matches(org, known, n=1)
            hint = f"; did you mean 'organism:{close[0]}'?" if close else ""
            raise ConfigError(
                f"{prefix}{where}: unknown organism {org!r} (known: {', '.join(known)}){hint}"
            )
        return name
    path = _resolve(name, base)
    if name.startswith(("/", ".", "~")) or path.exists():
        if not path.is_dir():
            raise ConfigError(f"{prefix}{where}: model folder not found: {path}")
        _check_model_folder(path, where, prefix)
        return str(path.resolve())
    if not HUB_ID.match(name):
        raise ConfigError(
            f"{prefix}{where}: {name!r} is not a hub id (owner/name), an existing model "
            "folder or organism:NAME"
        )
    return name


def _check_model(m: ModelConfig, base: Path, prefix: str) -> None:
    m.name = _check_model_name(m.name, "model.name", base, prefix)
    if not DEVICES.match(m.device):
        raise ConfigError(
            f"{prefix}model.device: unsupported device {m.device!r}; use auto, cpu, cuda or cuda:N"
        )
    if m.dtype.lower() not in DTYPES:
        raise ConfigError(
            f"{prefix}model.dtype: unsupported dtype {m.dtype!r}; use one of {', '.join(DTYPES)}"
        )


def _check_model_folder(path: Path, where: str, prefix: str) -> None:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(
            f"{prefix}{where}: {path} has no config.json: not a Hugging Face model folder"
        )
    try:
        hf = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{prefix}{where}: cannot read {cfg_file}: {exc}") from None
    if hf.get("is_encoder_decoder"):
        raise ConfigError(
            f"{prefix}{where}: unsupported model: {path} is an encoder-decoder "
            f"({hf.get('model_type', '?')}); mindscope reads decoder-only language models"
        )
    model_type = hf.get("model_type")
    try:
        from transformers import CONFIG_MAPPING
    except ImportError:  # pragma: no cover
        return
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(
            f"{prefix}{where}: unsupported model: {path} has model_type {model_type!r}, "
            "which transformers does not know"
        )


def _check_elicit(e: ElicitConfig, base: Path, prefix: str) -> None:
    if e.model is not None:
        e.model = _check_model_name(e.model, "elicit.model", base, prefix)
    if e.dataset not in BUILTIN_DATASETS:
        path = _resolve(e.dataset, base)
        if not path.is_file():
            close = difflib.get_close_matches(e.dataset, BUILTIN_DATASETS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{prefix}elicit.dataset: {e.dataset!r} is neither a built-in dataset "
                f"({', '.join(BUILTIN_DATASETS)}) nor an existing file{hint}"
            )
        if path.suffix.lower() not in DATASET_SUFFIXES:
            raise ConfigError(
                f"{prefix}elicit.dataset: {path.name} has suffix {path.suffix!r}; "
                f"use one of {', '.join(DATASET_SUFFIXES)}"
            )
        e.dataset = str(path.resolve())
    if not e.methods:
        raise ConfigError(f"{prefix}elicit.methods: give at least one reporter")
    for i, method in enumerate(e.methods):
        if method not in REPORTER_METHODS:
            close = difflib.get_close_matches(method, REPORTER_METHODS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"{prefix}elicit.methods[{i}]: unknown reporter {method!r} "
                f"(known: {', '.join(REPORTER_METHODS)}){hint}"
            )
    problem = read_mode_error(e.read, e.methods)
    if problem:
        raise ConfigError(f"{prefix}elicit.read: {problem}")
    if isinstance(e.layers, str) and e.layers != "all":
        raise ConfigError(f"{prefix}elicit.layers: expected 'all' or a list of ints")
    if isinstance(e.layers, list) and (not e.layers or min(e.layers) < 0):
        raise ConfigError(f"{prefix}elicit.layers: layers must be a non-empty list of ints >= 0")
    if e.n < 8:
        raise ConfigError(f"{prefix}elicit.n: need at least 8 examples, got {e.n}")


def validate(cfg: RunConfig, base: Path | str = ".", source: str = "") -> RunConfig:
    """Check the files, model and values a config names; returns a resolved copy.

    Relative paths are resolved against ``base`` (the config file's folder). Raises
    :class:`ConfigError` with a one-line message on the first problem found.
    """
    prefix = f"{source}: " if source else ""
    base = Path(base).resolve()
    cfg = from_dict(to_dict(cfg), source)  # a deep copy; never mutate the caller's config
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", cfg.name):
        raise ConfigError(
            f"{prefix}name: {cfg.name!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    if cfg.seed < 0:
        raise ConfigError(f"{prefix}seed: must be >= 0, got {cfg.seed}")
    _check_model(cfg.model, base, prefix)
    cfg.lens.train_text = _check_file(cfg.lens.train_text, "lens.train_text", base, prefix)
    cfg.lens.eval_text = _check_file(cfg.lens.eval_text, "lens.eval_text", base, prefix)
    if cfg.lens.steps < 1:
        raise ConfigError(f"{prefix}lens.steps: must be >= 1, got {cfg.lens.steps}")
    if cfg.lens.tokens_per_step < 1:
        raise ConfigError(
            f"{prefix}lens.tokens_per_step: must be >= 1, got {cfg.lens.tokens_per_step}"
        )
    if cfg.lens.max_texts < 1:
        raise ConfigError(f"{prefix}lens.max_texts: must be >= 1, got {cfg.lens.max_texts}")
    _check_elicit(cfg.elicit, base, prefix)
    if (
        cfg.lens.enabled
        and cfg.lens.train_text is None
        and not cfg.model.name.startswith("organism:")
    ):
        raise ConfigError(
            f"{prefix}lens.train_text: required for {cfg.model.name!r} (only organisms come "
            "with a built-in corpus)"
        )
    if not (cfg.lens.enabled or cfg.elicit.enabled):
        raise ConfigError(f"{prefix}nothing to run: lens.enabled and elicit.enabled are both false")
    out = _resolve(cfg.output_dir, base)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{prefix}output_dir: {out} exists and is not a folder")
    cfg.output_dir = str(out.resolve())
    return cfg


def load_config(path: str | Path) -> RunConfig:
    """Read, check and resolve a run config (YAML or JSON); raises :class:`ConfigError`."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except (json.JSONDecodeError, ValueError) as exc:
        raise ConfigError(f"{path.name}: not valid JSON: {str(exc).splitlines()[0]}") from None
    except Exception as exc:  # yaml.YAMLError and friends
        first = " ".join(str(exc).split())[:160]
        raise ConfigError(f"{path.name}: not valid YAML: {first}") from None
    if data is None:
        data = {}
    cfg = from_dict(data, path.name)
    return validate(cfg, path.parent, path.name)


def config_template() -> str:
    """A commented YAML config with every field at its default (``mindscope run --template``)."""
    import yaml

    def emit(cls: type, obj: Any, indent: int) -> list[str]:
        docs = field_docs(cls)
        lines: list[str] = []
        pad = "  " * indent
        for f in dataclasses.fields(cls):
            value = getattr(obj, f.name)
            lines.append(f"{pad}# {docs.get(f.name, '').replace('``', '')}")
            if dataclasses.is_dataclass(value):
                lines.append(f"{pad}{f.name}:")
                lines += emit(type(value), value, indent + 1)
            else:
                dumped = yaml.safe_dump({f.name: value}, default_flow_style=True, width=1000)
                lines.append(pad + dumped.strip().removeprefix("{").removesuffix("}"))
        return lines

    return "\n".join(emit(RunConfig, RunConfig(), 0)) + "\n"
