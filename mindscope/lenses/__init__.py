"""Interpreting across depth: the logit lens and the tuned lens (Belrose et al. 2023).

Layer ``k`` runs from 0 (embeddings) to ``n_layers`` (the model's output)::

    import mindscope as ms
    h = ms.load_model("organism:pocket-lm")
    lens = ms.lenses.TunedLens.fit(h, texts)            # stops when held-out KL stops improving
    df = ms.lenses.evaluate(h, lens, heldout)          # results rows, KL/CE/entropy in nats
    ms.lenses.trajectory(h, lens, "def f(x):").table()

Naming rule (all of mindscope): modules are nouns named for their concept (``evaluation``,
``trajectories``); the functions they export are verbs or the thing they make (``evaluate``,
``trajectory``). No package has a sub-module and a function of the same name, so
``ms.lenses.evaluate`` is always the function, and its module is
:mod:`mindscope.lenses.evaluation`.
"""

from __future__ import annotations

from mindscope.lenses.base import Lens, residual_stack
from mindscope.lenses.evaluation import METRICS, evaluate
from mindscope.lenses.logit import LogitLens
from mindscope.lenses.texts import read_texts
from mindscope.lenses.train import TrainConfig
from mindscope.lenses.trajectories import Trajectory, trajectory
from mindscope.lenses.tuned import TunedLens

__all__ = [
    "Lens",
    "LogitLens",
    "TunedLens",
    "TrainConfig",
    "evaluate",
    "METRICS",
    "trajectory",
    "Trajectory",
    "read_texts",
    "residual_stack",
]
