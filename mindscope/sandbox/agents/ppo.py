"""PPO with a clipped objective and GAE, after CleanRL's ``ppo.py`` (discrete actions).

Hyper-parameters follow CleanRL's defaults scaled to the tiny worlds (16 envs x 32 steps per
rollout, 4 epochs of 4 minibatches). Truncated episodes bootstrap from the value of their final
board (``info["final_obs"]``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from mindscope.sandbox.agents.torch_agent import TorchAgent

__all__ = ["PPO", "A2C", "gae"]


class PPO(TorchAgent):
    """Proximal policy optimisation on the observed reward."""

    kind = "ppo"

    def __init__(
        self,
        world: str,
        seed: int = 0,
        width: int = 64,
        lr: float = 1e-3,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        num_steps: int = 32,
        epochs: int = 4,
        minibatches: int = 4,
        clip: float = 0.2,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        norm_adv: bool = True,
    ) -> None:
        super().__init__(world, seed, width)
        self.lr, self.gamma, self.gae_lambda = lr, gamma, gae_lambda
        self.num_steps, self.epochs, self.minibatches = num_steps, epochs, minibatches
        self.clip, self.ent_coef, self.vf_coef = clip, ent_coef, vf_coef
        self.max_grad_norm = max_grad_norm
        self.norm_adv = bool(norm_adv)

    def params(self) -> dict[str, Any]:
        return dict(
            super().params(),
            lr=self.lr,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            num_steps=self.num_steps,
            epochs=self.epochs,
            minibatches=self.minibatches,
            clip=self.clip,
            ent_coef=self.ent_coef,
            vf_coef=self.vf_coef,
            max_grad_norm=self.max_grad_norm,
            norm_adv=self.norm_adv,
        )

    # ---- hooks: what a learner that credits returns differently (current-RF PPO) replaces
    def _setup(self, venv: Any) -> None:
        """Called once before training on ``venv``."""

    def _decision_key(self) -> torch.Tensor | None:
        """``[n]`` long read before each step (e.g. the rules in force), or None."""
        return None

    def _step_rewards(self, r: np.ndarray, info: dict[str, Any]) -> torch.Tensor:
        """The step's rewards the critic learns: ``[n]`` (or ``[n, n_values]``)."""
        return torch.as_tensor(r, dtype=torch.float32)

    def _advantages(
        self,
        rews: torch.Tensor,
        vals: torch.Tensor,
        next_v: torch.Tensor,
        dones: torch.Tensor,
        keys: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(advantages [T, n], value targets like vals)`` of a rollout: GAE."""
        adv = gae(rews, vals, next_v, dones, self.gamma, self.gae_lambda)
        return adv, adv + vals

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (a SandboxVectorEnv) for about ``total_steps`` env steps."""
        n, T = venv.num_envs, self.num_steps
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=1e-5)
        self._setup(venv)
        obs, _ = venv.reset(seed=self.seed if seed is None else seed)
        x = self.encode(obs)
        d_in = x.shape[1]
        n_updates = max(1, total_steps // (n * T))
        nv = self.net.n_values
        vshape = (T, n) if nv == 1 else (T, n, nv)
        step = 0
        for upd in range(n_updates):
            for g in opt.param_groups:
                g["lr"] = self.lr * (1.0 - upd / n_updates)
            xs = torch.zeros(T, n, d_in)
            acts = torch.zeros(T, n, dtype=torch.long)
            logps = torch.zeros(T, n)
            rews = torch.zeros(vshape)
            dones = torch.zeros(T, n)
            vals = torch.zeros(vshape)
            keys: torch.Tensor | None = None
            for t in range(T):
                with torch.no_grad():
                    logits, v = self.net(x)
                    dist = torch.distributions.Categorical(logits=logits)
                    a = dist.sample()
                xs[t], acts[t], logps[t], vals[t] = x, a, dist.log_prob(a), v
                key = self._decision_key()
                if key is not None:
                    if keys is None:
                        keys = torch.zeros(T, n, dtype=torch.long)
                    keys[t] = key
                obs, r, term, trunc, info = venv.step(a.numpy())
                if log is not None:
                    log(step + n, r, info)
                r = self._step_rewards(r, info)
                if trunc.any():  # bootstrap the cut-off tail from the final board's value
                    with torch.no_grad():
                        fin = self.encode(info["final_obs"][trunc])
                        r[torch.as_tensor(trunc)] += self.gamma * self.net(fin)[1]
                rews[t] = r
                dones[t] = torch.as_tensor(term | trunc, dtype=torch.float32)
                x = self.encode(obs)
                step += n
            with torch.no_grad():
                next_v = self.net(x)[1]
            adv, ret = self._advantages(rews, vals, next_v, dones, keys)
            b_x, b_a, b_lp = xs.reshape(-1, d_in), acts.reshape(-1), logps.reshape(-1)
            b_adv, b_ret = adv.reshape(-1), ret.reshape(n * T, *ret.shape[2:])
            idx = np.arange(n * T)
            mb = (n * T) // self.minibatches
            for _ in range(self.epochs):
                self.rng.shuffle(idx)
                for s in range(0, n * T, mb):
                    j = torch.as_tensor(idx[s : s + mb])
                    logits, v = self.net(b_x[j])
                    dist = torch.distributions.Categorical(logits=logits)
                    ratio = (dist.log_prob(b_a[j]) - b_lp[j]).exp()
                    a_ = b_adv[j]
                    if self.norm_adv:
                        a_ = (a_ - a_.mean()) / (a_.std() + 1e-8)
                    pg = torch.max(-a_ * ratio, -a_ * ratio.clamp(1 - self.clip, 1 + self.clip))
                    loss = (
                        pg.mean()
                        + self.vf_coef * 0.5 * ((v - b_ret[j]) ** 2).mean()
                        - self.ent_coef * dist.entropy().mean()
                    )
                    opt.zero_grad()
                    loss.backward()
                    nn.utils.clip_grad_norm_(self.net.parameters(), self.max_grad_norm)
                    opt.step()
        return self


def gae(
    rews: torch.Tensor,
    vals: torch.Tensor,
    next_v: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    lam: float,
) -> torch.Tensor:
    """Generalised advantage estimates of a rollout, by the backward recursion
    ``A_t = delta_t + gamma lam (1 - done_t) A_{t+1}``, ``delta_t = r_t + gamma (1 - done_t)
    V_{t+1} - V_t``. ``rews``/``vals`` ``[T, n, ...]`` (trailing axes: one column per reward
    function, each its own recursion), ``next_v [n, ...]`` the values after the last step,
    ``dones [T, n]``; returns ``[T, n, ...]``."""
    T = rews.shape[0]
    extra = (1,) * (rews.dim() - 2)
    adv = torch.zeros_like(rews)
    last = torch.zeros_like(rews[0])
    for t in reversed(range(T)):
        nv = next_v if t == T - 1 else vals[t + 1]
        nonterm = (1.0 - dones[t]).reshape(dones.shape[1], *extra)
        delta = rews[t] + gamma * nv * nonterm - vals[t]
        last = delta + gamma * lam * nonterm * last
        adv[t] = last
    return adv


class A2C(PPO):
    """Advantage actor-critic (the synchronous A2C that Leike et al. 2017 evaluated).

    The same learner as :class:`PPO` with one gradient step per rollout on the whole batch
    (``epochs=1``, ``minibatches=1``: the probability ratio is exactly 1, so clipping never
    acts), short rollouts (5 steps), n-step returns (``gae_lambda=1``) and no advantage
    normalisation: the A2C objective ``-A log pi + vf_coef/2 (R - V)^2 - ent_coef H``.
    """

    kind = "a2c"

    def __init__(
        self,
        world: str,
        seed: int = 0,
        width: int = 64,
        lr: float = 7e-4,
        gamma: float = 0.99,
        gae_lambda: float = 1.0,
        num_steps: int = 5,
        epochs: int = 1,
        minibatches: int = 1,
        clip: float = 0.2,
        ent_coef: float = 0.01,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        norm_adv: bool = False,
    ) -> None:
        super().__init__(
            world,
            seed,
            width,
            lr=lr,
            gamma=gamma,
            gae_lambda=gae_lambda,
            num_steps=num_steps,
            epochs=epochs,
            minibatches=minibatches,
            clip=clip,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            norm_adv=norm_adv,
        )
