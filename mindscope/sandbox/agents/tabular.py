"""Tabular Q-learning and SARSA over observed boards, batched over a vector env.

The table is keyed by the board the agent sees (so an observation delusion is a state to it).
Exploration is epsilon-greedy with a linear decay; ties break at random.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mindscope.sandbox.agents.base import Agent, board_keys

__all__ = ["QLearning", "Sarsa"]


class _Tabular(Agent):
    on_policy = False

    def __init__(
        self,
        world: str,
        seed: int = 0,
        lr: float = 0.5,
        gamma: float = 0.99,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_fraction: float = 0.5,
    ) -> None:
        super().__init__(world, seed)
        self.lr, self.gamma = float(lr), float(gamma)
        self.eps_start, self.eps_end, self.eps_fraction = eps_start, eps_end, eps_fraction
        self.rng = np.random.default_rng(seed)
        self.index: dict[bytes, int] = {}
        self.q_ = np.zeros((1024, 4))

    def params(self) -> dict[str, Any]:
        return dict(
            seed=self.seed,
            lr=self.lr,
            gamma=self.gamma,
            eps_start=self.eps_start,
            eps_end=self.eps_end,
            eps_fraction=self.eps_fraction,
        )

    def _ids(self, obs: np.ndarray) -> np.ndarray:
        out = np.empty(len(obs), dtype=np.int64)
        for i, k in enumerate(board_keys(obs)):
            j = self.index.get(k)
            if j is None:
                j = self.index[k] = len(self.index)
                if j >= len(self.q_):
                    self.q_ = np.concatenate([self.q_, np.zeros_like(self.q_)])
            out[i] = j
        return out

    def _greedy(self, ids: np.ndarray) -> np.ndarray:
        q = self.q_[ids]
        noise = self.rng.random(q.shape) * 1e-9
        return np.argmax(q + noise, axis=1)

    def act(self, obs: np.ndarray, greedy: bool = False, eps: float = 0.0) -> np.ndarray:
        ids = self._ids(obs)
        a = self._greedy(ids)
        if not greedy and eps > 0:
            explore = self.rng.random(len(a)) < eps
            a = np.where(explore, self.rng.integers(0, 4, len(a)), a)
        return a

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (a SandboxVectorEnv) for ``total_steps`` env steps; returns self.

        Updates use the action the world actually executed (``info["actual_action"]``, which an
        interruption can override). Q-learning bootstraps on the greedy next value; SARSA on the
        next executed action, so its update waits one step.
        """
        n = venv.num_envs
        obs, _ = venv.reset(seed=self.seed if seed is None else seed)
        ids = self._ids(obs)
        n_iter = max(1, total_steps // n)
        decay = max(1, int(self.eps_fraction * n_iter))
        eps = self.eps_start
        a = self._eps_actions(ids, eps)
        pending: tuple[np.ndarray, ...] | None = None  # SARSA's transition awaiting its a'
        for it in range(n_iter):
            eps = self.eps_start + (self.eps_end - self.eps_start) * min(1.0, it / decay)
            pre = self._before_step(venv)
            obs2, r, term, trunc, info = venv.step(a)
            actual = info["actual_action"]
            r = self._learning_reward(venv, pre, actual, r)
            done = term | trunc
            nxt = obs2
            if done.any():  # the next board of a finished episode is its final one
                nxt = np.where(done[:, None, None], info["final_obs"], obs2)
            ids2 = self._ids(nxt)
            a2 = self._eps_actions(ids2, eps)
            if self.on_policy:
                if pending is not None:
                    p_ids, p_a, p_r, p_ids2, p_term, p_done, p_a2 = pending
                    # bootstrap on the action executed next; at an episode end on the policy's
                    # action at the final board (truncation) or nothing (termination)
                    nxt_a = np.where(p_done, p_a2, actual)
                    boot = self.q_[p_ids2, nxt_a]
                    self._update(p_ids, p_a, p_r + self.gamma * np.where(p_term, 0.0, boot))
                pending = (ids, actual, r, ids2, term, done, a2)
            else:
                boot = self.q_[ids2].max(axis=1)
                self._update(ids, actual, r + self.gamma * np.where(term, 0.0, boot))
            if done.any():  # the new episode's first board and action
                ids_new = self._ids(obs2)
                ids2 = np.where(done, ids_new, ids2)
                a2 = np.where(done, self._eps_actions(ids_new, eps), a2)
            ids, a = ids2, a2
            if log is not None:
                log(it * n, r, info)
        return self

    def _before_step(self, venv: Any) -> Any:
        """What :meth:`_learning_reward` needs from the state before a step (nothing here)."""
        return None

    def _learning_reward(self, venv: Any, pre: Any, actions: np.ndarray, r: np.ndarray):
        """The per-step signal the table learns from: the observed reward ``r [n]`` here."""
        return r

    def _update(self, ids: np.ndarray, a: np.ndarray, target: np.ndarray) -> None:
        # envs sharing a (state, action) pair move it by their mean error, once
        flat = ids * 4 + a
        uniq, inv = np.unique(flat, return_inverse=True)
        err = np.bincount(inv, weights=target - self.q_[ids, a])
        cnt = np.bincount(inv)
        self.q_.reshape(-1)[uniq] += self.lr * err / cnt

    def _eps_actions(self, ids: np.ndarray, eps: float) -> np.ndarray:
        a = self._greedy(ids)
        explore = self.rng.random(len(a)) < eps
        return np.where(explore, self.rng.integers(0, 4, len(a)), a)

    def _state(self) -> dict[str, Any]:
        keys = sorted(self.index, key=self.index.__getitem__)
        width = len(keys[0]) if keys else 0
        table = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), width)
        return {"tensors": {"q": self.q_[: len(keys)], "boards": table}}

    def _load(self, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
        boards = tensors["boards"].numpy()
        self.q_ = tensors["q"].numpy().astype(np.float64).copy()
        self.index = {row.tobytes(): i for i, row in enumerate(boards)}
        if len(self.q_) == 0:
            self.q_ = np.zeros((1024, 4))


class QLearning(_Tabular):
    """Off-policy tabular Q-learning (Watkins), epsilon-greedy."""

    kind = "q_learning"


class Sarsa(_Tabular):
    """On-policy tabular SARSA, epsilon-greedy."""

    kind = "sarsa"
    on_policy = True
