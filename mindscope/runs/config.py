"""The schema of ``mindscope run CONFIG.yaml``: pydantic models with a description per field.

:func:`load_config` reads YAML or JSON, checks every key and type (unknown keys are refused with
a "did you mean"), every file it names, the dataset's format and fields and the layer range
(read from the model's ``config.json``, without loading weights), and raises
:class:`~mindscope.errors.ConfigError` with a one-line message *before* any model is loaded.
Relative paths are resolved against the config file's folder; the run folder keeps the fully
resolved config (``config.yaml``), which ``mindscope run`` accepts again to repeat a run.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from mindscope.data.datasets import BUILTIN_DATASETS, DATASET_SUFFIXES
from mindscope.errors import ConfigError, MindscopeError
from mindscope.schema import Schema, parse, yaml_template
from mindscope.schema import field_docs as _field_docs

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
    "model_layers",
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


DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelConfig(Schema):
    """Which model to read."""

    name: str = Field(
        default="organism:pocket-lm",
        description="Hugging Face hub id (``EleutherAI/pythia-70m``), local model folder, or "
        "``organism:NAME``.",
    )
    revision: str | None = Field(
        default=None,
        description="Hub revision or organism checkpoint (``step1000``); null: the latest.",
    )
    device: str = Field(
        default="auto",
        description="``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.",
    )
    dtype: str = Field(
        default="auto", description="``auto`` (as saved), ``float32``, ``float16`` or ``bfloat16``."
    )


class LensConfig(Schema):
    """Interpreting across depth: logit lens and tuned lens."""

    enabled: bool = Field(default=True, description="Run the lens analysis.")
    train_text: str | None = Field(
        default=None,
        description='Texts to fit the tuned lens on (JSONL with "text", or blank-line separated '
        "documents); null: the organism's corpus.",
    )
    eval_text: str | None = Field(
        default=None,
        description="Texts to evaluate the lenses on (same format); null: held-out text (the "
        "corpus's held-out split, or the last tenth of ``train_text``).",
    )
    steps: int | None = Field(
        default=None,
        description="Optimiser steps for fitting the tuned lens; null: stop by itself when the "
        "KL on held-out training text stops improving (at most ``max_steps``).",
    )
    max_steps: int = Field(
        default=250, description="Most optimiser steps when ``steps`` is null (early stopping)."
    )
    tokens_per_step: int = Field(
        default=8192,
        description="Training tokens per optimiser step (the paper uses 2**18; small models "
        "need fewer).",
    )
    max_texts: int = Field(
        default=512,
        description="At most this many texts are used for fitting and for evaluation each.",
    )
    trajectory_prompt: str = Field(
        default="The cat sat on the",
        description="Prompt whose prediction trajectory (top token per layer and position) the "
        "report shows.",
    )


class ElicitConfig(Schema):
    """Eliciting latent knowledge: reporters (probes) on contrast pairs."""

    enabled: bool = Field(default=True, description="Run the reporter analysis.")
    model: str | None = Field(
        default=None,
        description="Model to read for this analysis (e.g. a quirky organism); null: the run's "
        "``model``. ``model.device`` and ``model.dtype`` apply to it; ``model.revision`` does "
        "not.",
    )
    dataset: str = Field(
        default="quirky-arith",
        description="Built-in dataset (``quirky-arith``, ``facts``), a JSONL/CSV file of "
        "contrast pairs (raw records need ``template``) or ``hf:NAME[:SPLIT]``; loaded exactly "
        "as ``mindscope elicit --dataset`` loads it.",
    )
    n: int | None = Field(
        default=None,
        description="quirky-arith: training pairs drawn (default 1000; test: max(64, n // 4)); "
        "other datasets: use at most n pairs (null: all).",
    )
    template: str | None = Field(
        default=None,
        description="Template name or ``{field}`` pattern rendering raw records into contrast "
        "pairs; null: the records are pairs already.",
    )
    test_fraction: float = Field(
        default=0.25,
        description="Share of pairs held out for scoring (seeded), unless the pairs' "
        "``meta.split`` says train/test (quirky-arith has its own test split).",
    )
    position: str = Field(
        default="last",
        description="Token position rule of the extraction (``last``, ``mean``, ...).",
    )
    methods: list[str] = Field(
        default_factory=lambda: ["lr", "diffmean", "ccs", "random"],
        description="Reporters to fit: any of ``lr``, ``diffmean``, ``lda``, ``ccs``, ``crc``, "
        "``random``.",
    )
    layers: str | list[int] = Field(
        default="all",
        description="``all`` or a list of layer numbers (0 = embeddings, k = after block k).",
    )
    read: str = Field(
        default="completion",
        description="Where reporters read: ``completion`` (the last token of each side of a "
        "contrast pair: ``[n, 2, d]``) or ``prompt`` (the prompt's last token, before any "
        "answer: ``[n, d]``; supervised reporters and ``random`` only).",
    )
    transfer: bool = Field(
        default=True,
        description="For quirky datasets: the persona x difficulty transfer matrix (first two "
        "non-random methods) and the fraction of the gap recovered.",
    )


class RunConfig(Schema):
    """One ``mindscope run``: a model, the analyses to run on it, where to write the results."""

    name: str = Field(
        default="run",
        description="Short name of the run; the folder is ``<output_dir>/<timestamp>-<name>``.",
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="Which model to read.")
    lens: LensConfig = Field(
        default_factory=LensConfig, description="Lens analysis (interpreting across depth)."
    )
    elicit: ElicitConfig = Field(
        default_factory=ElicitConfig,
        description="Reporter analysis (eliciting latent knowledge).",
    )
    output_dir: str = Field(default="runs", description="Folder that receives the run folder.")
    seed: int = Field(
        default=0,
        description="Seed for every random choice of the run (data sampling, reporter init, "
        "lens init).",
    )


def field_docs(cls: type) -> dict[str, str]:
    """The description of each field of a config model."""
    return _field_docs(cls)  # type: ignore[arg-type]


def from_dict(data: Mapping[str, Any], source: str = "") -> RunConfig:
    """Build a :class:`RunConfig` from a plain mapping, checking keys and types (not files).

    ``source`` (e.g. the file name) prefixes error messages.
    """
    return parse(RunConfig, data, source)


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The config as plain data (what ``config.yaml`` of a run folder holds)."""
    return cfg.model_dump()


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
    if e.dataset not in BUILTIN_DATASETS and not e.dataset.startswith("hf:"):
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
    if e.dataset.startswith("hf:") and e.template is None:
        raise ConfigError(f"{prefix}elicit.template: a Hugging Face dataset needs a template")
    if not 0 < e.test_fraction < 1:
        raise ConfigError(f"{prefix}elicit.test_fraction: must be in (0, 1), got {e.test_fraction}")
    if e.template is not None:
        from mindscope.data.templates import get_template

        try:
            get_template(e.template)
        except MindscopeError as exc:
            raise ConfigError(f"{prefix}elicit.template: {exc}") from None
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
    if e.n is not None and e.n < 8:
        raise ConfigError(f"{prefix}elicit.n: need at least 8 examples, got {e.n}")


def validate(
    cfg: RunConfig, base: Path | str = ".", source: str = "", *, check_data: bool = True
) -> RunConfig:
    """Check the files, model and values a config names; returns a resolved copy.

    Relative paths are resolved against ``base`` (the config file's folder). With
    ``check_data`` the reporter dataset is loaded and checked (format, fields, labels) and the
    layers asked for are checked against the model's layer count (from its ``config.json``; no
    weights are loaded). Raises :class:`ConfigError` with a one-line message on the first
    problem found.
    """
    prefix = f"{source}: " if source else ""
    base = Path(base).resolve()
    cfg = cfg.model_copy(deep=True)  # never mutate the caller's config
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", cfg.name):
        raise ConfigError(
            f"{prefix}name: {cfg.name!r} must be 1-64 letters, digits, '.', '_' or '-'"
        )
    if cfg.seed < 0:
        raise ConfigError(f"{prefix}seed: must be >= 0, got {cfg.seed}")
    _check_model(cfg.model, base, prefix)
    cfg.lens.train_text = _check_file(cfg.lens.train_text, "lens.train_text", base, prefix)
    cfg.lens.eval_text = _check_file(cfg.lens.eval_text, "lens.eval_text", base, prefix)
    if cfg.lens.steps is not None and cfg.lens.steps < 1:
        raise ConfigError(f"{prefix}lens.steps: must be >= 1, got {cfg.lens.steps}")
    if cfg.lens.max_steps < 1:
        raise ConfigError(f"{prefix}lens.max_steps: must be >= 1, got {cfg.lens.max_steps}")
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
    if check_data:
        _check_layers(cfg, prefix)
        _check_dataset(cfg, prefix)
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
    return yaml_template(RunConfig())


# ----------------------------------------------------------------------------- data and layers


def model_layers(name: str, revision: str | None = None) -> int | None:
    """Number of blocks of a model, read from its config alone (no weights loaded).

    ``organism:NAME``: the organism's training config; a local folder: its ``config.json``
    (``transformers.AutoConfig``); a hub id: the locally cached config if there is one. None
    when the count cannot be known without the network.
    """
    if name.startswith("organism:"):
        from mindscope.organisms import default_config

        return int(default_config(name.split(":", 1)[1]).shape.n_layers)
    from transformers import AutoConfig

    try:
        if Path(name).is_dir():
            hf = AutoConfig.from_pretrained(name)
        else:
            hf = AutoConfig.from_pretrained(name, revision=revision, local_files_only=True)
    except (OSError, ValueError):
        return None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(hf, attr, None)
        if isinstance(value, int):
            return value
    return None


def _check_layers(cfg: RunConfig, prefix: str) -> None:
    e = cfg.elicit
    if not e.enabled or isinstance(e.layers, str):
        return
    name = e.model or cfg.model.name
    n = model_layers(name, cfg.model.revision if name == cfg.model.name else None)
    if n is not None and max(e.layers) > n:
        raise ConfigError(
            f"{prefix}elicit.layers: layer {max(e.layers)} does not exist; {name} has layers "
            f"0..{n} (0 = embeddings, {n} = after the last block)"
        )


def _check_dataset(cfg: RunConfig, prefix: str) -> None:
    """Load the reporter dataset as the stage will, so format and field errors show now."""
    e = cfg.elicit
    if not e.enabled or e.dataset.startswith("hf:"):
        return
    from mindscope.data.datasets import load_split

    try:
        load_split(
            e.dataset, n=e.n, seed=cfg.seed, test_fraction=e.test_fraction, template=e.template
        )
    except (MindscopeError, ValueError, TypeError) as exc:
        msg = " ".join(str(exc).split())
        raise ConfigError(f"{prefix}elicit.dataset: {msg}") from None
