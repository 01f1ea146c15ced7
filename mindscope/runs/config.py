"""The schema of ``mindscope run CONFIG.yaml``: pydantic models with a description per field.

A run config names a model and the analyses to run on it: one key per registered stage
(:mod:`mindscope.analyses`), with that stage's own config. ``lens`` and ``elicit`` run unless
disabled (``enabled: false``); every other stage (``anomaly``, ``rare``, ...) runs when it is
listed. :func:`load_config` reads YAML or JSON, checks every key and type (unknown keys are
refused with a "did you mean"), then each stage checks its own files, data and layer range
(read from the model's ``config.json``, without loading weights), and raises
:class:`~mindscope.errors.ConfigError` with a one-line message *before* any model is loaded.
Relative paths are resolved against the config file's folder; the run folder keeps the fully
resolved config (``config.yaml``), which ``mindscope run`` accepts again to repeat a run.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, create_model

from mindscope.analyses import CheckContext, ElicitConfig, LensConfig, StageConfig, stage_names
from mindscope.analyses import get_stage as _get_stage
from mindscope.analyses.checks import check_model_name, model_layers, resolve
from mindscope.errors import ConfigError
from mindscope.probes.registry import PAIR_ONLY_METHODS, REPORTER_METHODS, read_mode_error
from mindscope.schema import Schema, parse, yaml_template
from mindscope.schema import field_docs as _field_docs

__all__ = [
    "ModelConfig",
    "LensConfig",
    "ElicitConfig",
    "RunConfig",
    "REPORTER_METHODS",
    "PAIR_ONLY_METHODS",
    "read_mode_error",
    "load_config",
    "validate",
    "from_dict",
    "to_dict",
    "field_docs",
    "config_template",
    "model_layers",
    "run_stages",
]

DEVICES = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "float16", "bfloat16", "fp32", "fp16", "bf16")


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


def _build_run_config() -> type[Schema]:
    """The run config model: fixed keys plus one key per registered stage."""
    fields: dict[str, Any] = {
        "name": (
            str,
            Field(
                default="run",
                description="Short name of the run; the folder is "
                "``<output_dir>/<timestamp>-<name>``.",
            ),
        ),
        "model": (
            ModelConfig,
            Field(default_factory=ModelConfig, description="Which model to read."),
        ),
    }
    for name in stage_names():
        st = _get_stage(name)
        if st.in_run:
            fields[name] = (st.config, Field(default_factory=st.config, description=st.help))
        else:
            fields[name] = (
                st.config | None,
                Field(default=None, description=f"{st.help} (runs when given)."),
            )
    fields["output_dir"] = (
        str,
        Field(default="runs", description="Folder that receives the run folder."),
    )
    fields["seed"] = (
        int,
        Field(
            default=0,
            description="Seed for every random choice of the run (data sampling, reporter "
            "init, lens init).",
        ),
    )
    model = create_model("RunConfig", __base__=Schema, **fields)
    model.__doc__ = (
        "One ``mindscope run``: a model, the analyses to run on it, where to write the results."
    )
    return model


if TYPE_CHECKING:

    class RunConfig(Schema):
        """One ``mindscope run`` (the static view of the generated model, for type checkers)."""

        name: str = "run"
        model: ModelConfig = ModelConfig()
        lens: LensConfig = LensConfig()
        elicit: ElicitConfig = ElicitConfig()
        output_dir: str = "runs"
        seed: int = 0

else:
    RunConfig = _build_run_config()


def run_stages(cfg: RunConfig) -> list[tuple[str, StageConfig]]:
    """``[(stage name, its config)]`` of the stages ``cfg`` enables, in execution order."""
    out = []
    for name in stage_names():
        sc = getattr(cfg, name, None)
        if sc is not None and sc.enabled:
            out.append((name, sc))
    return out


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


def _check_model(m: ModelConfig, base: Path, prefix: str) -> None:
    m.name = check_model_name(m.name, "model.name", base, prefix)
    if not DEVICES.match(m.device):
        raise ConfigError(
            f"{prefix}model.device: unsupported device {m.device!r}; use auto, cpu, cuda or cuda:N"
        )
    if m.dtype.lower() not in DTYPES:
        raise ConfigError(
            f"{prefix}model.dtype: unsupported dtype {m.dtype!r}; use one of {', '.join(DTYPES)}"
        )


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
    stages = run_stages(cfg)
    if not stages:
        names = ", ".join(f"{n}.enabled" for n in stage_names() if _get_stage(n).in_run)
        raise ConfigError(f"{prefix}nothing to run: {names} are all false and no stage is listed")
    ctx = CheckContext(
        base=base,
        seed=cfg.seed,
        model=cfg.model.name,
        revision=cfg.model.revision,
        prefix=prefix,
        check_data=check_data,
    )
    for name in stage_names():
        sc = getattr(cfg, name, None)
        if sc is not None:
            setattr(cfg, name, sc.check(ctx, name) if sc.enabled else sc)
    out = resolve(cfg.output_dir, base)
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
    return yaml_template(RunConfig())
