"""The agents' networks: plain ``torch.nn.Module`` MLPs with named sites for recording."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MLP", "SITES"]

SITES = ("hidden1", "hidden2")
"""Names of the recordable sites: the outputs of the two hidden tanh layers, ``[batch, width]``."""


class MLP(nn.Module):
    """``[batch, d_in]`` -> two tanh layers -> ``pi`` ``[batch, 4]``; own critic ``v`` ``[batch]``
    (``[batch, n_values]`` when ``n_values > 1``: one value per reward function).

    ``hidden1`` and ``hidden2`` are modules of their own (``nn.Tanh``) so that forward hooks can
    read them (see :mod:`mindscope.sandbox.hooks`).
    """

    def __init__(
        self,
        d_in: int,
        width: int = 64,
        n_out: int = 4,
        value_head: bool = True,
        n_values: int = 1,
    ):
        super().__init__()
        self.n_values = int(n_values)
        self.fc1 = nn.Linear(d_in, width)
        self.hidden1 = nn.Tanh()
        self.fc2 = nn.Linear(width, width)
        self.hidden2 = nn.Tanh()
        self.pi = nn.Linear(width, n_out)
        # the critic has its own trunk (as CleanRL's PPO): value gradients, much larger than the
        # policy's, would otherwise dominate a shared trunk under gradient clipping
        self.v = (
            nn.Sequential(
                nn.Linear(d_in, width),
                nn.Tanh(),
                nn.Linear(width, width),
                nn.Tanh(),
                nn.Linear(width, self.n_values),
            )
            if value_head
            else None
        )
        for m in (self.fc1, self.fc2):
            nn.init.orthogonal_(m.weight, 2**0.5)
            nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.pi.weight, 0.01)
        nn.init.zeros_(self.pi.bias)
        if self.v is not None:
            for i, layer in enumerate(self.v):
                if isinstance(layer, nn.Linear):
                    nn.init.orthogonal_(layer.weight, 1.0 if i == 4 else 2**0.5)
                    nn.init.zeros_(layer.bias)

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden2(self.fc2(self.hidden1(self.fc1(x))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        h = self.trunk(x)
        if self.v is None:
            return self.pi(h), None
        v = self.v(x)
        return self.pi(h), (v.squeeze(-1) if self.n_values == 1 else v)
