"""Shared plumbing of the torch agents: observation encoding, acting, saving the network."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mindscope.sandbox.agents.base import Agent, features
from mindscope.sandbox.agents.nets import MLP
from mindscope.sandbox.worlds import world_class

__all__ = ["TorchAgent"]


class TorchAgent(Agent):
    """An agent whose policy is ``self.net`` (an :class:`MLP`) on one-hot boards."""

    value_head = True

    def __init__(self, world: str, seed: int = 0, width: int = 64, **kw: Any) -> None:
        super().__init__(world, seed)
        self.width = int(width)
        d_in, self.n_actions = self.net_shape()
        torch.manual_seed(self.seed)
        self.net = MLP(
            d_in, self.width, self.n_actions, value_head=self.value_head, n_values=self.n_values()
        )
        self.rng = np.random.default_rng(self.seed)

    def net_shape(self) -> tuple[int, int]:
        """``(d_in, n_actions)`` of the policy network: the one-hot board's width and the four
        moves of a gridworld (subclasses for other worlds override this and :meth:`encode`)."""
        cls = world_class(self.world)
        n_codes = len(set(cls.codes.values()))
        return len(cls.art) * len(cls.art[0]) * n_codes, 4

    def n_values(self) -> int:
        """Outputs of the critic: 1 (one value per state) unless a subclass needs more."""
        return 1

    def params(self) -> dict[str, Any]:
        return {"seed": self.seed, "width": self.width}

    def encode(self, obs: np.ndarray) -> torch.Tensor:
        """``[n, H, W]`` boards -> ``[n, d_in]`` float tensor (:func:`features`)."""
        return torch.from_numpy(features(obs, self.world))

    @torch.no_grad()
    def logits(self, obs: np.ndarray) -> torch.Tensor:
        return self.net(self.encode(obs))[0]

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:
        logits = self.logits(obs)
        if greedy:
            return logits.argmax(-1).numpy()
        p = torch.softmax(logits, -1).numpy().astype(np.float64)
        u = self.rng.random((len(p), 1))
        return np.minimum((p.cumsum(1) < u).sum(1), self.n_actions - 1)

    def _state(self) -> dict[str, Any]:
        return {"tensors": {k: v.detach().numpy() for k, v in self.net.state_dict().items()}}

    def _load(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        self.net.load_state_dict({k: v for k, v in tensors.items()})
