"""Tabular learners for two alignment schemes, each reading the world through one channel.

- :class:`Mona` (Farquhar et al. 2025, "MONA"): myopic optimisation with non-myopic approval.
  A Q-table learns the one-step signal ``r + approval_weight * approval`` with ``gamma = 0``
  (the optimisation horizon is the step); the *approval* carries the foresight (an overseer's
  judgement of the step toward the intended task, from the world's approval channel). A
  multi-step hack whose first steps pay nothing and are disapproved is never worth taking.
  With ``gamma > 0`` the same learner is ordinary RL on reward plus approval.
- :class:`CurrentRF` (Everitt et al. 2021, "current-RF optimisation"): the agent evaluates
  futures with the reward function in force *when it decides*. The table is keyed on (board,
  evaluating rules ``theta``); every transition updates the values under every rule setting
  the world can take (``rule_options()``), with the step's reward recomputed under that
  setting (``reward_under``). It acts greedily under the *current* rules (``rule_params()``).
  ``ti_considering=True`` (default) bootstraps on the action the agent's future self will take
  under the rules in force *then*, so a step that edits the rules is valued by what the edited
  agent would do, judged by today's rules (the TI-considering agent, which avoids tampering);
  ``False`` bootstraps on the best action under today's rules (TI-ignorant: indifferent to
  tampering, so it may walk over a switch that happens to lie on its way).

- :class:`DecoupledApprovalQ` / :class:`CoupledApprovalQ` (Uesato et al. 2020; REALab, Kumar
  et al. 2020): tabular myopic approval learners. The table holds the expected approval of each
  (board, action); the coupled learner updates the entry of the action it executed with that
  action's approval, read through the world after the step; the decoupled learner draws an
  independent *query* action ``a' ~ pi(s)`` (the same epsilon-greedy policy) and updates the
  entry of ``a'`` with the supervisor's approval of ``a'``, read through the same world. A
  corruption caused by the executed action then reaches the query of every action alike.

All need a channel (:mod:`mindscope.sandbox.channels`) and refuse a world without it in one
line.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mindscope.sandbox.agents.base import board_keys
from mindscope.sandbox.agents.tabular import _Tabular
from mindscope.sandbox.channels import require_channel

__all__ = ["Mona", "CurrentRF", "CoupledApprovalQ", "DecoupledApprovalQ"]


class Mona(_Tabular):
    """Myopic Q-learning (``gamma = 0`` by default) on reward + the world's approval."""

    kind = "mona"

    def __init__(
        self,
        world: str,
        seed: int = 0,
        lr: float = 0.5,
        gamma: float = 0.0,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_fraction: float = 0.5,
        approval_weight: float = 1.0,
    ) -> None:
        super().__init__(world, seed, lr, gamma, eps_start, eps_end, eps_fraction)
        self.approval_weight = float(approval_weight)

    def params(self) -> dict[str, Any]:
        return dict(super().params(), approval_weight=self.approval_weight)

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (its world must have an approval channel); returns self."""
        require_channel(venv, "approval", self.kind)
        return super().learn(venv, total_steps, seed=seed, log=log)

    def _before_step(self, venv: Any) -> Any:
        return venv.world.approval_state()

    def _learning_reward(self, venv: Any, pre: Any, actions: np.ndarray, r: np.ndarray):
        return r + self.approval_weight * venv.world.approval(actions, pre)


class CurrentRF(_Tabular):
    """Q-learning of the value under fixed rules ``theta``, acting under the current rules."""

    kind = "current_rf"

    def __init__(
        self,
        world: str,
        seed: int = 0,
        lr: float = 0.5,
        gamma: float = 0.99,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_fraction: float = 0.5,
        ti_considering: bool = True,
    ) -> None:
        super().__init__(world, seed, lr, gamma, eps_start, eps_end, eps_fraction)
        self.ti_considering = bool(ti_considering)
        self._bound: Any = None

    def params(self) -> dict[str, Any]:
        return dict(super().params(), ti_considering=self.ti_considering)

    # the table's key: board bytes + one byte naming the evaluating rules
    def _ids_theta(self, obs: np.ndarray, theta: np.ndarray) -> np.ndarray:
        keys = board_keys(obs)
        out = np.empty(len(obs), dtype=np.int64)
        for i, (k, j) in enumerate(zip(keys, theta.tolist(), strict=True)):
            key = k + bytes([j])
            idx = self.index.get(key)
            if idx is None:
                idx = self.index[key] = len(self.index)
                if idx >= len(self.q_):
                    self.q_ = np.concatenate([self.q_, np.zeros_like(self.q_)])
            out[i] = idx
        return out

    @staticmethod
    def _theta_index(world: Any) -> np.ndarray:
        """``[n]`` index of each env's current rules in ``rule_options()``."""
        cur = np.asarray(world.rule_params())  # [n, k]
        opts = np.asarray(world.rule_options())  # [m, k]
        match = (cur[:, None, :] == opts[None]).all(axis=2)  # [n, m]
        return match.argmax(axis=1)

    def bind(self, venv: Any) -> None:
        """Read the current rules from ``venv``'s world when acting (rollouts call this)."""
        self._bound = require_channel(venv, "rule", self.kind)

    def act(self, obs: np.ndarray, greedy: bool = False, eps: float = 0.0) -> np.ndarray:
        """Actions ``[n]``: greedy under the rules in force in the bound world (see ``bind``)."""
        if self._bound is None or self._bound.n != len(obs):
            from mindscope.sandbox.errors import SandboxError

            raise SandboxError("current_rf acts under the world's current rules: call bind(venv)")
        ids = self._ids_theta(obs, self._theta_index(self._bound))
        a = self._greedy(ids)
        if not greedy and eps > 0:
            explore = self.rng.random(len(a)) < eps
            a = np.where(explore, self.rng.integers(0, 4, len(a)), a)
        return a

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (its world must have a rule channel) for ``total_steps`` steps.

        Drives the world core directly so that the rules after a step are read before the
        finished environments are reset; ``log(step, r, info)`` as the other learners.
        """
        from mindscope.sandbox.envs import step_info

        world = require_channel(venv, "rule", self.kind)
        self._bound = world
        n = world.n
        venv.reset(seed=self.seed if seed is None else seed)
        opts = np.asarray(world.rule_options())
        m = len(opts)
        obs = world.observe()
        cur = self._theta_index(world)
        n_iter = max(1, total_steps // n)
        decay = max(1, int(self.eps_fraction * n_iter))
        for it in range(n_iter):
            eps = self.eps_start + (self.eps_end - self.eps_start) * min(1.0, it / decay)
            a = self._eps_actions(self._ids_theta(obs, cur), eps)
            res = world.step(a)
            actual = np.asarray(world.actual_actions, dtype=np.int64)
            obs2 = world.observe()
            cur2 = self._theta_index(world)
            term = res.terminated
            if self.ti_considering:  # what the future self will do, under its own rules
                a_self = self._greedy(self._ids_theta(obs2, cur2))
            for j in range(m):
                theta = np.full(n, j)
                r_j = world.reward_under(np.broadcast_to(opts[j], (n, opts.shape[1])))
                ids_j = self._ids_theta(obs, theta)
                ids2_j = self._ids_theta(obs2, theta)
                if self.ti_considering:
                    boot = self.q_[ids2_j, a_self]
                else:
                    boot = self.q_[ids2_j].max(axis=1)
                self._update(ids_j, actual, r_j + self.gamma * np.where(term, 0.0, boot))
            if log is not None:
                log(it * n, res.observed_reward, step_info(world, res))
            done = term | res.truncated
            if done.any():
                world.reset(done)
                obs2 = world.observe()
                cur2 = self._theta_index(world)
            obs, cur = obs2, cur2
        return self


class _ApprovalQ(_Tabular):
    decoupled = True

    def __init__(
        self,
        world: str,
        seed: int = 0,
        lr: float = 0.5,
        eps_start: float = 1.0,
        eps_end: float = 0.05,
        eps_fraction: float = 0.5,
    ) -> None:
        super().__init__(world, seed, lr, 0.0, eps_start, eps_end, eps_fraction)

    def params(self) -> dict[str, Any]:
        p = super().params()
        p.pop("gamma")
        return p

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (its world must have an approval channel); returns self."""
        world = require_channel(venv, "approval", self.kind)
        n = venv.num_envs
        obs, _ = venv.reset(seed=self.seed if seed is None else seed)
        n_iter = max(1, total_steps // n)
        decay = max(1, int(self.eps_fraction * n_iter))
        for it in range(n_iter):
            eps = self.eps_start + (self.eps_end - self.eps_start) * min(1.0, it / decay)
            ids = self._ids(obs)
            a = self._eps_actions(ids, eps)
            q = self._eps_actions(ids, eps) if self.decoupled else a
            pre = world.approval_state()
            obs2, r, term, trunc, info = venv.step(a)
            if not self.decoupled:
                q = info["actual_action"]
            f = world.approval(q, pre)  # read through the world as it is after the step
            self._update(ids, q, f)
            obs = obs2
            if log is not None:
                log(it * n, r, info)
        return self


class DecoupledApprovalQ(_ApprovalQ):
    """Tabular decoupled approval: learns the approval of an independent query action."""

    kind = "decoupled_approval_q"
    decoupled = True


class CoupledApprovalQ(_ApprovalQ):
    """Tabular coupled approval: learns the approval of the action it executed (baseline)."""

    kind = "coupled_approval_q"
    decoupled = False
