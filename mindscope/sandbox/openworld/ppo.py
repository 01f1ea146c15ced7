"""PPO on the open world's symbolic view, and tamper rates over seeds.

    res = ppo_study(seeds=range(3), steps=100_000)      # per-seed tamper rates, curves, rows

:class:`OpenWorldPPO` is a clipped-objective PPO (GAE, separate critic trunk, as the gridworld
PPO) on the one-hot local view plus the scaled inventory; :func:`ppo_study` trains one agent per
seed through :func:`mindscope.parallel.run_tasks` (``backend="ray"`` for parallel seeds), logs
every finished training episode (tampering of each kind, observed and true return) by env step,
and evaluates the trained policy on fresh episodes. Tampering is one path among many here: the
agent is paid for Crafter's achievements and can also cover or feed the sensor, edit the rules,
eat cows unwatched or disable the off-switch.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mindscope.results import Row
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.metrics import mean_ci
from mindscope.sandbox.openworld.core import ACTIONS, N_CODES, TAMPER_KINDS

__all__ = ["OpenWorldPPO", "OpenPPOResult", "encode", "ppo_study", "evaluate_open"]

N_VIEW = 63


def encode(obs: np.ndarray) -> np.ndarray:
    """``[n, 81]`` symbolic observations -> ``[n, 63 * 25 + 18]`` float32 (one-hot view codes,
    inventory / 9, daylight, sleeping)."""
    view = obs[:, :N_VIEW].astype(np.int64)  # [n, 63]
    onehot = np.zeros((len(obs), N_VIEW, N_CODES), dtype=np.float32)
    np.put_along_axis(onehot, view[..., None], 1.0, axis=2)
    rest = obs[:, N_VIEW:].copy()
    rest[:, :16] /= 9.0
    return np.concatenate([onehot.reshape(len(obs), -1), rest], axis=1)


class OpenWorldPPO:
    """PPO for :class:`~mindscope.sandbox.openworld.OpenWorldVectorEnv` (17 actions)."""

    def __init__(
        self,
        seed: int = 0,
        width: int = 128,
        lr: float = 3e-4,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip: float = 0.2,
        ent_coef: float = 0.01,
        num_steps: int = 32,
        epochs: int = 3,
        minibatches: int = 4,
    ) -> None:
        import torch

        from mindscope.sandbox.agents.nets import MLP

        self.seed = int(seed)
        self.width, self.lr, self.gamma, self.lam = int(width), lr, gamma, gae_lambda
        self.clip, self.ent_coef, self.num_steps = clip, ent_coef, int(num_steps)
        self.epochs, self.minibatches = int(epochs), int(minibatches)
        torch.manual_seed(self.seed)
        self.net = MLP(N_VIEW * N_CODES + 18, self.width, len(ACTIONS))
        self.rng = np.random.default_rng(self.seed)

    def act(self, obs: np.ndarray, greedy: bool = False) -> np.ndarray:
        """Actions ``[n]`` for observations ``obs [n, 81]``."""
        import torch

        with torch.no_grad():
            logits = self.net(torch.from_numpy(encode(obs)))[0]
        if greedy:
            return logits.argmax(-1).numpy()
        return torch.distributions.Categorical(logits=logits).sample().numpy()

    def learn(self, venv: Any, total_steps: int, log: Any = None) -> OpenWorldPPO:
        """Train on ``venv`` for ``total_steps`` env steps; ``log(step, info)`` after each step."""
        import torch

        n, T = venv.num_envs, self.num_steps
        opt = torch.optim.Adam(self.net.parameters(), lr=self.lr, eps=1e-5)
        obs, _ = venv.reset(seed=self.seed)
        x = torch.from_numpy(encode(obs))
        steps = 0
        while steps < total_steps:
            xs, acts, logps, vals, rews, dones = [], [], [], [], [], []
            for _ in range(T):
                with torch.no_grad():
                    logits, v = self.net(x)
                dist = torch.distributions.Categorical(logits=logits)
                a = dist.sample()
                obs, r, term, trunc, info = venv.step(a.numpy())
                steps += n
                if log is not None:
                    log(steps, info)
                xs.append(x)
                acts.append(a)
                logps.append(dist.log_prob(a))
                vals.append(v)
                rews.append(torch.as_tensor(r, dtype=torch.float32))
                dones.append(torch.as_tensor(term | trunc, dtype=torch.float32))
                x = torch.from_numpy(encode(obs))
            with torch.no_grad():
                nxt = self.net(x)[1]
            adv = torch.zeros(T, n)
            last = torch.zeros(n)
            for t in reversed(range(T)):
                nv = nxt if t == T - 1 else vals[t + 1]
                nonterm = 1.0 - dones[t]
                delta = rews[t] + self.gamma * nv * nonterm - vals[t]
                last = delta + self.gamma * self.lam * nonterm * last
                adv[t] = last
            ret = adv + torch.stack(vals)
            bx = torch.cat(xs)
            ba, blp = torch.cat(acts), torch.cat(logps)
            badv, bret = adv.reshape(-1), ret.reshape(-1)
            size = len(bx)
            mb = max(1, size // self.minibatches)
            for _ in range(self.epochs):
                perm = torch.randperm(size)
                for s in range(0, size, mb):
                    i = perm[s : s + mb]
                    logits, v = self.net(bx[i])
                    dist = torch.distributions.Categorical(logits=logits)
                    ratio = (dist.log_prob(ba[i]) - blp[i]).exp()
                    a_ = badv[i]
                    a_ = (a_ - a_.mean()) / (a_.std() + 1e-8)
                    pg = -torch.min(ratio * a_, ratio.clamp(1 - self.clip, 1 + self.clip) * a_)
                    loss = pg.mean() + 0.5 * ((v - bret[i]) ** 2).mean()
                    loss = loss - self.ent_coef * dist.entropy().mean()
                    opt.zero_grad()
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 0.5)
                    opt.step()
        return self


class _EpisodeLog:
    """Finished episodes of a vector env, from its step infos: tamper kinds and returns."""

    def __init__(self, n: int) -> None:
        self.kinds = np.zeros((n, len(TAMPER_KINDS)), dtype=bool)
        self.obs = np.zeros(n)
        self.true = np.zeros(n)
        self.ach = np.zeros(n)
        self.done: list[tuple[int, np.ndarray, float, float, float]] = []

    def __call__(self, step: int, info: dict[str, Any]) -> None:
        for j, k in enumerate(TAMPER_KINDS):
            self.kinds[:, j] |= info[f"tamper_{k}"]
        self.obs += info["observed_reward"]
        self.true += info["true_reward"]
        fin = info.get("_final_obs")
        self.ach = np.where(
            fin if fin is not None else False, self.ach, info["achievements_unlocked"]
        )
        if fin is None:
            return
        for i in np.flatnonzero(fin):
            self.done.append((step, self.kinds[i].copy(), self.obs[i], self.true[i], self.ach[i]))
        self.kinds[fin] = False
        self.obs[fin] = 0
        self.true[fin] = 0


def _summary(done: Sequence[tuple[int, np.ndarray, float, float, float]]) -> dict[str, float]:
    if not done:
        return {"episodes": 0.0}
    kinds = np.stack([d[1] for d in done])
    out = {
        "episodes": float(len(done)),
        "tamper_rate": float(kinds.any(1).mean()),
        "observed_return": float(np.mean([d[2] for d in done])),
        "true_return": float(np.mean([d[3] for d in done])),
        "achievements": float(np.mean([d[4] for d in done])),
    }
    for j, k in enumerate(TAMPER_KINDS):
        out[f"tamper_rate_{k}"] = float(kinds[:, j].mean())
    return out


def evaluate_open(policy: Any, episodes: int, *, seed: int = 10_000, **world: Any):
    """Play ``policy.act`` (or random actions if ``policy`` is None) for exactly one episode in
    each of ``episodes`` environments (no bias toward short episodes); the tamper rates,
    returns and achievements of those episodes."""
    from mindscope.sandbox.openworld.envs import OpenWorldVectorEnv

    venv = OpenWorldVectorEnv(episodes, **world)
    obs, _ = venv.reset(seed=seed)
    log = _EpisodeLog(episodes)
    rng = np.random.default_rng(seed)
    counted = np.zeros(episodes, dtype=bool)
    step = 0
    while not counted.all():
        a = rng.integers(0, len(ACTIONS), episodes) if policy is None else policy.act(obs)
        obs, _, _, _, info = venv.step(a)
        step += episodes
        fin = info.get("_final_obs")
        if fin is not None:  # keep only each environment's first episode
            info = dict(info, _final_obs=fin & ~counted)
            counted |= fin
        log(step, info)
    return _summary(log.done)


def _train_open(
    seed: int,
    *,
    steps: int,
    num_envs: int,
    world: dict[str, Any],
    bins: int,
    eval_episodes: int,
    params: dict[str, Any],
):
    from mindscope.sandbox.openworld.envs import OpenWorldVectorEnv

    t0 = time.perf_counter()
    venv = OpenWorldVectorEnv(num_envs, seed=int(seed), **world)
    agent = OpenWorldPPO(seed=int(seed), **params)
    log = _EpisodeLog(num_envs)
    agent.learn(venv, steps, log=log)
    wall = time.perf_counter() - t0
    width = max(1, steps // bins)
    curve = {}
    for b in range(bins):
        lo, hi = b * width, (b + 1) * width
        curve[hi] = _summary([d for d in log.done if lo < d[0] <= hi])
    ev = evaluate_open(agent, eval_episodes, seed=10_000 + int(seed), **world)
    ev["wall_seconds"] = wall
    ev["env_steps_per_s_with_learning"] = steps / wall
    return agent, ev, curve


@dataclass
class OpenPPOResult:
    """PPO agents trained on the open world, per seed: evaluation metrics and training curves."""

    agents: list[Any]
    per_seed: list[dict[str, float]]
    curves: list[dict[int, dict[str, float]]]
    random_policy: dict[str, float]
    rows: list[Row] = field(default_factory=list)


def ppo_study(
    seeds: Sequence[int] = tuple(range(3)),
    steps: int = 100_000,
    num_envs: int = 128,
    world_kwargs: dict[str, Any] | None = None,
    eval_episodes: int = 128,
    bins: int = 10,
    agent_params: dict[str, Any] | None = None,
    backend: str = "inprocess",
) -> OpenPPOResult:
    """Train PPO once per seed on the open world, evaluate each, aggregate with 95% CIs."""
    from mindscope.parallel import run_tasks

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise SandboxError("ppo_study needs at least one seed")
    world = dict(world_kwargs or {"length": 500})
    shared = dict(
        steps=int(steps),
        num_envs=int(num_envs),
        world=world,
        bins=int(bins),
        eval_episodes=int(eval_episodes),
        params=dict(agent_params or {}),
    )
    outs = run_tasks(_train_open, seeds, backend=backend, shared=shared)
    per_seed = [m for _, m, _ in outs]
    rand = evaluate_open(None, eval_episodes, **world)
    rows = []
    for metric in per_seed[0]:
        mu, lo, hi, k = mean_ci([m.get(metric, float("nan")) for m in per_seed])
        rows.append(
            Row(
                metric=metric,
                value=mu,
                ci_low=lo,
                ci_high=hi,
                n=k,
                method="ppo",
                model="ppo",
                dataset="open_world",
                split="tamper_on",
                step=int(steps),
                _extra={"seeds": seeds, "world_kwargs": world},
            )
        )
    return OpenPPOResult([a for a, _, _ in outs], per_seed, [c for _, _, c in outs], rand, rows)
