"""Agents for the sandbox: tabular Q-learning/SARSA, PPO, DQN and decoupled approval."""

from __future__ import annotations

from mindscope.sandbox.agents.base import AGENT_KINDS, Agent, load_agent, one_hot
from mindscope.sandbox.agents.tabular import QLearning, Sarsa

__all__ = ["AGENT_KINDS", "Agent", "QLearning", "Sarsa", "load_agent", "one_hot"]
