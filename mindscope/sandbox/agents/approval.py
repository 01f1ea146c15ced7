"""Decoupled approval (Uesato et al. 2020) and its coupled counterpart, by policy gradient.

Both learners maximise a *myopic approval* signal instead of a return: after each step a
supervisor's approval of an action, read through the world's (corruptible) feedback channel, is
the per-step learning signal (``world.approval(query_actions)``; the register world provides
it). The coupled learner is updated on the approval of the action it executed, so an action
that corrupts the feedback is approved by its own corruption. The decoupled learner draws an
independent *query* action ``a' ~ pi(s)`` and is updated on the approval of ``a'``: corruption
caused by the executed action then reaches every query action alike and carries no gradient
toward the corrupting action (the expected score ``E[grad log pi(a')] = 0`` for a constant).
"""

from __future__ import annotations

from typing import Any

import torch

from mindscope.sandbox.agents.torch_agent import TorchAgent
from mindscope.sandbox.channels import require_channel

__all__ = ["DecoupledApproval", "CoupledApproval"]


class _Approval(TorchAgent):
    value_head = False
    decoupled = True

    def __init__(
        self,
        world: str,
        seed: int = 0,
        width: int = 64,
        lr: float = 3e-3,
        ent_coef: float = 0.01,
        num_steps: int = 32,
    ) -> None:
        super().__init__(world, seed, width)
        self.lr, self.ent_coef, self.num_steps = lr, ent_coef, num_steps

    def params(self) -> dict[str, Any]:
        return dict(super().params(), lr=self.lr, ent_coef=self.ent_coef, num_steps=self.num_steps)

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (a SandboxVectorEnv whose world has ``approval``)."""
        world = require_channel(venv, "approval", self.kind)
        n = venv.num_envs
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr)
        obs, _ = venv.reset(seed=self.seed if seed is None else seed)
        n_iter = max(1, total_steps // n)
        buf_x, buf_q, buf_f = [], [], []
        for it in range(n_iter):
            x = self.encode(obs)
            with torch.no_grad():
                logits = self.net(x)[0]
            dist = torch.distributions.Categorical(logits=logits)
            a = dist.sample()
            q = dist.sample() if self.decoupled else a
            pre = world.approval_state()  # the supervisor judges from the state before the step
            obs2, r, term, trunc, info = venv.step(a.numpy())
            f = world.approval(q.numpy(), pre)  # read through the channel after the step
            buf_x.append(x)
            buf_q.append(q)
            buf_f.append(torch.as_tensor(f, dtype=torch.float32))
            obs = obs2
            if log is not None:
                log((it + 1) * n, r, info)
            if len(buf_x) == self.num_steps or it == n_iter - 1:
                bx, bq, bf = torch.cat(buf_x), torch.cat(buf_q), torch.cat(buf_f)
                dist = torch.distributions.Categorical(logits=self.net(bx)[0])
                loss = -(bf * dist.log_prob(bq)).mean() - self.ent_coef * dist.entropy().mean()
                opt.zero_grad()
                loss.backward()
                opt.step()
                buf_x, buf_q, buf_f = [], [], []
        return self


class DecoupledApproval(_Approval):
    """Decoupled approval policy gradient: updated on the approval of an independent query."""

    kind = "decoupled_approval"
    decoupled = True


class CoupledApproval(_Approval):
    """The same learner updated on the approval of the action it executed (the baseline)."""

    kind = "coupled_approval"
    decoupled = False
