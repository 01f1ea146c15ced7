"""PPO with current-reward-function optimisation (Everitt et al. 2021), on any rule-channel world.

The return credited to the decision at step ``t`` evaluates every later step with the reward
function in force *at t* (``theta_t``, read through the world's rule channel before the step),
not with the rules in force when the later reward arrives. A decision that edits the rules is
judged by the rules it would replace, so the edit itself earns nothing; whatever the agent does
after an edit is judged by the edited rules (its rules then), as current-RF optimisation says.

How the per-decision returns are computed (``T`` steps, ``m`` rule settings): the world reports
every step's observed reward under each setting (``reward_under``; the vector env's
``info["rule_rewards"]`` ``[n, m]``), the critic has one value per setting
(``V_j(s)``: the return of the current policy from ``s`` with every reward read under setting
``j``), and for each setting ``j`` the usual GAE recursion runs backward over the rollout on
``delta^j_k = r^j_k + gamma V_j(s_{k+1}) - V_j(s_k)``; the decision at ``t`` takes column
``theta_t`` of the result. This is exact (the credit of decision ``t`` is
``sum_k (gamma lam)^(k-t) delta^(theta_t)_k`` up to the episode's end, the O(T^2) sum) in
O(T m) per environment. Every column is a value target at every step (the critic learns each
setting's value from every transition, like the tabular learner's table per setting).

The futures are the agent's own (on-policy): after an edit the rollout continues with what the
agent then does, so the credit is the TI-considering one of Everitt et al.

    agent = CurrentRFPPO("rocks_diamonds_on_path").learn(venv, 100_000)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from mindscope.sandbox.agents.ppo import PPO, gae
from mindscope.sandbox.channels import require_channel, rule_index
from mindscope.sandbox.errors import SandboxError

__all__ = ["CurrentRFMixin", "CurrentRFPPO", "current_rf_gae"]


def current_rf_gae(
    rews: torch.Tensor,
    vals: torch.Tensor,
    next_v: torch.Tensor,
    dones: torch.Tensor,
    theta: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-decision advantages under the rules in force at each decision.

    ``rews [T, n, m]`` each step's reward under each of ``m`` rule settings, ``vals [T, n, m]``
    the critic's values per setting, ``next_v [n, m]`` the values after the last step,
    ``dones [T, n]``, ``theta [T, n]`` long the setting in force at each decision. Returns
    ``(advantages [T, n], value targets [T, n, m])``: advantage ``t`` is the GAE of column
    ``theta_t`` at ``t``; the targets are every column's GAE plus its value.
    """
    adv_all = gae(rews, vals, next_v, dones, gamma, lam)  # [T, n, m]
    adv = adv_all.gather(2, theta.long().unsqueeze(2)).squeeze(2)
    return adv, adv_all + vals


class CurrentRFMixin:
    """The current-RF learning rule for a :class:`PPO` subclass (see the module docstring)."""

    kind: ClassVar[str]
    _world: Any = None
    _venv: Any = None

    def _probe_world(self) -> Any:
        """A one-environment world of this agent's kind, to read its rule options from."""
        from mindscope.sandbox.worlds import make_world

        return make_world(self.world, 1)  # type: ignore[attr-defined]

    def n_values(self) -> int:
        """One critic output per rule setting the world can take."""
        w = require_channel(self._probe_world(), "rule", self.kind)
        return len(np.asarray(w.rule_options()))

    def _setup(self, venv: Any) -> None:
        world = require_channel(venv, "rule", self.kind)
        m = len(np.asarray(world.rule_options()))
        if m != self.net.n_values:  # type: ignore[attr-defined]
            raise SandboxError(
                f"{self.kind}: the world has {m} rule settings, the critic {self.net.n_values}"  # type: ignore[attr-defined]
            )
        if not hasattr(venv, "rule_rewards"):
            raise SandboxError(
                f"{self.kind} needs a vector env that reports info['rule_rewards'] "
                "(SandboxVectorEnv or OpenWorldVectorEnv)"
            )
        venv.rule_rewards = True
        self._world, self._venv = world, venv

    def _decision_key(self) -> torch.Tensor:
        return torch.from_numpy(rule_index(self._world))

    def _step_rewards(self, r: np.ndarray, info: dict[str, Any]) -> torch.Tensor:
        return torch.as_tensor(info["rule_rewards"], dtype=torch.float32)

    def _advantages(self, rews, vals, next_v, dones, keys):
        assert keys is not None
        return current_rf_gae(
            rews,
            vals,
            next_v,
            dones,
            keys,
            self.gamma,  # type: ignore[attr-defined]
            self.gae_lambda,  # type: ignore[attr-defined]
        )

    def learn(self, venv: Any, total_steps: int, seed: int | None = None, log: Any = None):
        """Train on ``venv`` (its world must have a rule channel); returns self."""
        try:
            return super().learn(venv, total_steps, seed=seed, log=log)  # type: ignore[misc]
        finally:
            if self._venv is not None:
                self._venv.rule_rewards = False
            self._world = self._venv = None


class CurrentRFPPO(CurrentRFMixin, PPO):
    """PPO whose per-decision returns use the rules in force at the decision (gridworlds with a
    rule channel: ``rocks_diamonds``, ``rocks_diamonds_on_path``, or any World defining it)."""

    kind = "current_rf_ppo"
