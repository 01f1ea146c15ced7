"""What every sandbox agent shares: a world name, acting on batched boards, saving/loading.

Agents save as ``config.json`` (class, world, hyper-parameters) + ``weights.safetensors``;
loading checks the world, so an agent saved for one world refuses another.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.openworld.features import OPEN_WORLD
from mindscope.sandbox.worlds import world_class

__all__ = ["Agent", "board_keys", "features", "one_hot", "load_agent", "AGENT_KINDS", "OPEN_WORLD"]

AGENT_KINDS: dict[str, type[Agent]] = {}


def board_keys(obs: np.ndarray) -> list[bytes]:
    """One hashable key per board of ``obs [n, H, W]`` (its uint8 bytes)."""
    b = obs.astype(np.uint8).reshape(len(obs), -1)
    return [row.tobytes() for row in b]


def one_hot(obs: np.ndarray, world: str) -> np.ndarray:
    """``[n, H*W*K]`` float32 one-hot of the board codes (``K`` distinct codes of ``world``)."""
    values = np.array(sorted(set(world_class(world).codes.values())), dtype=np.float32)
    flat = obs.reshape(len(obs), -1)
    return (flat[:, :, None] == values[None, None, :]).reshape(len(obs), -1).astype(np.float32)


def features(obs: np.ndarray, world: str) -> np.ndarray:
    """``[n, d]`` float32: what a network reads of the observations ``obs`` of ``world``: the
    one-hot board of a gridworld (:func:`one_hot`, ``obs [n, H, W]``) or the open world's
    one-hot view + inventory (``obs [n, 81]``, :func:`mindscope.sandbox.openworld.features.encode`).
    """
    if world == OPEN_WORLD:
        from mindscope.sandbox.openworld.features import encode

        return encode(obs)
    return one_hot(obs, world)


class Agent:
    """Base class; subclasses set ``kind`` and implement ``act``, ``_state`` and ``_load``."""

    kind: ClassVar[str] = ""

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind:
            AGENT_KINDS[cls.kind] = cls

    def __init__(self, world: str, seed: int = 0) -> None:
        self.world = self.world_name(world)
        self.seed = int(seed)

    @classmethod
    def world_name(cls, world: Any) -> str:
        """The canonical name of the world ``world`` this agent kind can play (a gridworld's
        by default); SandboxError for a world it cannot."""
        return world_class(world).name

    def params(self) -> dict[str, Any]:
        """Hyper-parameters (everything ``__init__`` takes besides ``world``)."""
        return {"seed": self.seed}

    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:  # pragma: no cover
        """Actions ``[n]`` for boards ``obs [n, H, W]``."""
        raise NotImplementedError

    def _state(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def _load(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write ``config.json`` + ``weights.safetensors`` into ``directory``."""
        import torch
        from safetensors.torch import save_file

        d = Path(directory)
        if (d / "config.json").exists() and not overwrite:
            raise SandboxError(f"{d} already holds a saved agent (pass overwrite=True)")
        d.mkdir(parents=True, exist_ok=True)
        state = self._state()
        tensors = {
            k: torch.as_tensor(np.array(v)).contiguous() for k, v in state.pop("tensors").items()
        }
        save_file(tensors, str(d / "weights.safetensors"))
        cfg = {"kind": self.kind, "world": self.world, "params": self.params(), "meta": state}
        (d / "config.json").write_text(json.dumps(cfg, indent=2))
        return d


def load_agent(directory: str | Path, world: str | None = None) -> Agent:
    """Load an agent saved by :meth:`Agent.save`; ``world`` given and different -> SandboxError."""
    from safetensors.torch import load_file

    d = Path(directory)
    if not (d / "config.json").is_file():
        raise SandboxError(f"no saved agent in {d} (config.json missing)")
    cfg = json.loads((d / "config.json").read_text())
    if cfg.get("kind") not in AGENT_KINDS:
        raise SandboxError(f"unknown agent kind {cfg.get('kind')!r} in {d}")
    cls = AGENT_KINDS[cfg["kind"]]
    if world is not None and cls.world_name(world) != cfg["world"]:
        raise SandboxError(
            f"the agent in {d} was trained on {cfg['world']}, not {cls.world_name(world)}"
        )
    agent = cls(cfg["world"], **cfg["params"])
    agent._load(load_file(str(d / "weights.safetensors")), cfg["meta"])
    return agent
