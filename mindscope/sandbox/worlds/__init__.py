"""The gridworlds: six from DeepMind's AI Safety Gridworlds, two REALab-style register worlds
and a MONA-style camera world; :func:`register_world` adds any other World subclass."""

from __future__ import annotations

from typing import Any

from mindscope.sandbox.core import World
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.worlds.absent_supervisor import AbsentSupervisor
from mindscope.sandbox.worlds.boat_race import BoatRace
from mindscope.sandbox.worlds.camera_dropbox import CameraDropbox
from mindscope.sandbox.worlds.register import RegisterTampering
from mindscope.sandbox.worlds.register_on_path import RegisterOnPath
from mindscope.sandbox.worlds.rocks_diamonds import RocksDiamonds
from mindscope.sandbox.worlds.rocks_diamonds_on_path import RocksDiamondsOnPath
from mindscope.sandbox.worlds.safe_interruptibility import SafeInterruptibility
from mindscope.sandbox.worlds.tomato_watering import TomatoWatering
from mindscope.sandbox.worlds.whisky_gold import WhiskyGold

__all__ = [
    "WORLDS",
    "make_world",
    "register_world",
    "world_class",
    "world_params",
    "AbsentSupervisor",
    "BoatRace",
    "CameraDropbox",
    "RegisterTampering",
    "RegisterOnPath",
    "RocksDiamonds",
    "RocksDiamondsOnPath",
    "SafeInterruptibility",
    "TomatoWatering",
    "WhiskyGold",
]

WORLDS: dict[str, type[World]] = {
    c.name: c
    for c in (
        AbsentSupervisor,
        TomatoWatering,
        RocksDiamonds,
        RocksDiamondsOnPath,
        SafeInterruptibility,
        WhiskyGold,
        BoatRace,
        RegisterTampering,
        RegisterOnPath,
        CameraDropbox,
    )
}


def register_world(cls: type[World]) -> type[World]:
    """Add a World subclass defined outside the repository to :data:`WORLDS` (idempotent)."""
    if not (isinstance(cls, type) and issubclass(cls, World)) or not cls.name:
        raise SandboxError(f"register_world needs a World subclass with a name, got {cls!r}")
    old = WORLDS.get(cls.name)
    if old is not None and old is not cls:
        raise SandboxError(f"another world is already called {cls.name!r}")
    WORLDS[cls.name] = cls
    return cls


def world_class(name: str | type[World]) -> type[World]:
    """The world class called ``name`` (snake_case, or its Gymnasium id; a World subclass is
    registered and returned); SandboxError with the closest names if none."""
    if isinstance(name, type):
        return register_world(name)
    key = str(name)
    if key.startswith("mindscope/"):
        key = key.split("/", 1)[1].rsplit("-v", 1)[0]
        for c in WORLDS.values():
            if c.gym_name == key:
                return c
    if key in WORLDS:
        return WORLDS[key]
    import difflib

    close = difflib.get_close_matches(key, list(WORLDS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise SandboxError(f"unknown world {name!r} ({hint}known: {', '.join(WORLDS)})")


def make_world(name: str | type[World], num_envs: int = 1, **kwargs: Any) -> World:
    """Build ``num_envs`` environments of world ``name``; unknown keywords raise SandboxError."""
    cls = world_class(name)
    known = world_params(name)
    unknown = sorted(set(kwargs) - set(known))
    if unknown:
        raise SandboxError(
            f"unknown parameter(s) {', '.join(unknown)} for world {cls.name} "
            f"(known: {', '.join(known) or 'none'})"
        )
    try:
        return cls(num_envs, **kwargs)
    except TypeError as exc:
        raise SandboxError(f"bad parameters for world {cls.name}: {exc}") from None


def world_params(name: str | type[World]) -> list[str]:
    """The keyword parameters world ``name`` accepts (``--world-param KEY=VALUE``), sorted."""
    import inspect

    cls = world_class(name)
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        names |= {
            p.name
            for p in params
            if p.name not in ("self", "num_envs")
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return sorted(names)
