"""DQN with a replay buffer and a target network, after CleanRL's ``dqn.py``.

Transitions are stored with the action the world executed (``info["actual_action"]``), so, like
off-policy Q-learning, it learns the value of its own actions, not of an interruption's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mindscope.sandbox.agents.nets import MLP
from mindscope.sandbox.agents.torch_agent import TorchAgent

__all__ = ["DQN"]


class DQN(TorchAgent):
    """Deep Q-learning on the observed reward; ``net.pi`` is the Q head ``[batch, 4]``."""

    kind = "dqn"
    value_head = False

    def __init__(
        self,
        world: str,
        seed: int = 0,
        width: int = 64,
        lr: float = 5e-4,
        gamma: float = 0.99,
        buffer_size: int = 50_000,
        batch_size: int = 128,
        learning_starts: int = 2_000,
        train_every: int = 1,
        target_every: int = 250,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_fraction: float = 0.5,
    ) -> None:
        super().__init__(world, seed, width)
        self.lr, self.gamma = lr, gamma
        self.buffer_size, self.batch_size = buffer_size, batch_size
        self.learning_starts, self.train_every, self.target_every = (
            learning_starts,
            train_every,
            target_every,
        )
        self.eps_start, self.eps_end, self.eps_fraction = eps_start, eps_end, eps_fraction

    def params(self) -> dict[str, Any]:
        return dict(
            super().params(),
            lr=self.lr,
            gamma=self.gamma,
            buffer_size=self.buffer_size,
            batch_size=self.batch_size,
            learning_starts=self.learning_starts,
            train_every=self.train_every,
            target_every=self.target_every,
            eps_start=self.eps_start,
            eps_end=self.eps_end,
            eps_fraction=self.eps_fraction,
        )

    @torch.no_grad()
    def act(self, obs: np.ndarray, greedy: bool = False, eps: float = 0.0) -> np.ndarray:
        a = self.logits(obs).argmax(-1).numpy()
        if not greedy and eps > 0:
            explore = self.rng.random(len(a)) < eps
            a = np.where(explore, self.rng.integers(0, 4, len(a)), a)
        return a

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (a SandboxVectorEnv) for about ``total_steps`` env steps."""
        n = venv.num_envs
        obs, _ = venv.reset(seed=self.seed if seed is None else seed)
        x = self.encode(obs)
        d = x.shape[1]
        cap = self.buffer_size
        bx = torch.zeros(cap, d)
        bx2 = torch.zeros(cap, d)
        ba = torch.zeros(cap, dtype=torch.long)
        br = torch.zeros(cap)
        bterm = torch.zeros(cap)
        size = ptr = 0
        target = MLP(d, self.width, 4, value_head=False)
        target.load_state_dict(self.net.state_dict())
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        n_iter = max(1, total_steps // n)
        decay = max(1, int(self.eps_fraction * n_iter))
        for it in range(n_iter):
            eps = self.eps_start + (self.eps_end - self.eps_start) * min(1.0, it / decay)
            a = self.act(obs, eps=eps)
            obs2, r, term, trunc, info = venv.step(a)
            nxt = obs2
            if (term | trunc).any():
                nxt = np.where((term | trunc)[:, None, None], info["final_obs"], obs2)
            j = (ptr + np.arange(n)) % cap
            bx[j] = x
            bx2[j] = self.encode(nxt)
            ba[j] = torch.as_tensor(info["actual_action"])
            br[j] = torch.as_tensor(r, dtype=torch.float32)
            bterm[j] = torch.as_tensor(term, dtype=torch.float32)
            ptr = (ptr + n) % cap
            size = min(cap, size + n)
            obs, x = obs2, self.encode(obs2)
            step = (it + 1) * n
            if step >= self.learning_starts and it % self.train_every == 0:
                k = torch.as_tensor(self.rng.integers(0, size, self.batch_size))
                with torch.no_grad():
                    y = br[k] + self.gamma * (1 - bterm[k]) * target(bx2[k])[0].max(-1).values
                q = self.net(bx[k])[0].gather(1, ba[k][:, None]).squeeze(1)
                loss = F.smooth_l1_loss(q, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
            if it % self.target_every == 0:
                target.load_state_dict(self.net.state_dict())
            if log is not None:
                log(step, r, info)
        return self
