"""The schema of ``mindscope sweep CONFIG``: pydantic v2 models with a description per field.

Unknown keys are refused with a "did you mean" hint; every problem is one
:class:`~mindscope.errors.ConfigError` line, raised before any model is loaded::

    series: {source: organism, name: quirky-arith, select: 6}
    stages: {elicit: {n: 512}}
    out: sweeps/quirky
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, ValidationError, create_model

from mindscope.analyses import ElicitConfig, LensConfig, get_stage, stage_names
from mindscope.errors import ConfigError
from mindscope.schema import Schema

__all__ = [
    "SeriesConfig",
    "RefineConfig",
    "LensConfig",
    "ElicitConfig",
    "sweep_stages",
    "StagesConfig",
    "SweepConfig",
    "load_config",
    "parse_config",
]


class SeriesConfig(Schema):
    """Which checkpoints: where they come from and which of them to run."""

    source: Literal["organism", "folder", "hub"] = Field(
        description="organism (a trained mindscope organism), folder (one step<N>/ Hugging "
        "Face sub-folder per checkpoint) or hub (step<N> revisions of a hub repository)"
    )
    name: str = Field(
        description="organism name, folder path (relative to the config file) or hub repo id"
    )
    seed: int = Field(0, description="organism training seed (source: organism)")
    select: Literal["all"] | int | list[int | str] = Field(
        "all",
        description="all checkpoints, N log-spaced ones (first and last included), or an "
        "explicit list of steps / step<N> names",
    )


class RefineConfig(Schema):
    """Add checkpoints between the two neighbours where a metric changed most."""

    budget: int = Field(0, ge=0, description="checkpoints to add (0 = no refinement)")
    metric: str = Field("kl", description="metric of the results rows to follow")
    method: str = Field("tuned_lens", description="method of those rows")
    split: str | None = Field(None, description="only rows of this split (None = any)")
    layer: int | None = Field(None, description="one layer, or None for the mean over layers >= 0")


def _build_stages_config() -> type[Schema]:
    """One optional key per registered stage that reads a model (the stages' own configs)."""
    fields: dict[str, Any] = {
        name: (get_stage(name).config | None, Field(None, description=get_stage(name).help))
        for name in stage_names()
        if get_stage(name).needs_model
    }
    model = create_model("StagesConfig", __base__=Schema, **fields)
    model.__doc__ = "The analyses run on each checkpoint (at least one)."
    return model


if TYPE_CHECKING:

    class StagesConfig(Schema):
        """The analyses run on each checkpoint (static view for type checkers)."""

        lens: LensConfig | None = None
        elicit: ElicitConfig | None = None

else:
    StagesConfig = _build_stages_config()


def sweep_stages(cfg: SweepConfig) -> list[tuple[str, Any]]:
    """``[(stage name, its config)]`` a sweep runs on each checkpoint, in registry order."""
    out = []
    for name in stage_names():
        sc = getattr(cfg.stages, name, None)
        if sc is not None and sc.enabled:
            out.append((name, sc))
    return out


class SweepConfig(Schema):
    """One sweep: a checkpoint series x analysis stages -> one results table."""

    series: SeriesConfig = Field(description="the checkpoint series")
    stages: StagesConfig = Field(description="stages run on every checkpoint")
    refine: RefineConfig = Field(
        default_factory=lambda: RefineConfig.model_validate({}),
        description="adaptive extra checkpoints",
    )
    random_init: bool = Field(
        True, description="control: also run a random-init model of the same config"
    )
    out: str = Field("sweeps/sweep", description="output folder (manifest, rows, results)")
    backend: Literal["inprocess", "ray"] = Field("inprocess", description="where tasks run")
    address: str | None = Field(
        None, description="Ray cluster address to join (default: start a local instance)"
    )
    num_cpus: int = Field(2, ge=1, description="CPUs of the local Ray instance")
    threads: int = Field(
        1,
        ge=1,
        description="torch threads per checkpoint task (the same on every backend, so "
        "results are identical)",
    )
    device: str = Field("cpu", description="device models are loaded on")
    seed: int = Field(0, description="seed of lens training, reporters and controls")
    store: str | None = Field(
        None, description="activation store root (default $MINDSCOPE_HOME/activations)"
    )
    progress: bool = Field(False, description="print one line per finished checkpoint")


def _known(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _field_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The sub-model at ``loc`` (minus its last key), to list its known keys."""
    cur: Any = model
    for key in loc[:-1]:
        if not (isinstance(cur, type) and issubclass(cur, BaseModel)):
            return None
        f = cur.model_fields.get(str(key))
        if f is None:
            return None
        ann = f.annotation
        args = getattr(ann, "__args__", ())
        sub = next(
            (a for a in (ann, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None
        )
        cur = sub
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def parse_config(data: Any, *, base: Path | None = None) -> SweepConfig:
    """Validate a dict into a :class:`SweepConfig`; paths are resolved against ``base``."""
    if not isinstance(data, dict):
        raise ConfigError(f"a sweep config must be a mapping, got {type(data).__name__}")
    try:
        cfg = SweepConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        where = ".".join(str(x) for x in loc) or "config"
        if err["type"] == "extra_forbidden":
            sub = _field_model(SweepConfig, loc)
            names = _known(sub) if sub else []
            close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(names)}"
            raise ConfigError(f"unknown key {where!r} in the sweep config{hint}") from None
        raise ConfigError(f"sweep config {where}: {err['msg']}") from None
    if not sweep_stages(cfg):
        known = ", ".join(StagesConfig.model_fields)
        raise ConfigError(f"sweep config stages: give at least one stage ({known})")
    if base is not None:
        updates: dict[str, Any] = {}
        if not Path(cfg.out).is_absolute():
            updates["out"] = str(base / cfg.out)
        if cfg.series.source == "folder" and not Path(cfg.series.name).expanduser().is_absolute():
            updates["series"] = cfg.series.model_copy(update={"name": str(base / cfg.series.name)})
        if updates:
            cfg = cfg.model_copy(update=updates)
    from mindscope.analyses import CheckContext

    ctx = CheckContext(
        base=base or Path.cwd(), seed=cfg.seed, prefix="sweep config ", check_data=False
    )
    for name, sc in sweep_stages(cfg):
        setattr(cfg.stages, name, sc.check(ctx, f"stages.{name}"))
    return cfg


def load_config(path: str | os.PathLike[str]) -> SweepConfig:
    """Read a YAML or JSON sweep config; relative paths are taken from the file's folder."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"no sweep config at {p}")
    text = p.read_text(encoding="utf-8")
    try:
        if p.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parser error is a config error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"cannot parse {p}: {first}") from None
    return parse_config(data, base=p.parent.resolve())
