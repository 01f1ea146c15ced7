"""Steering vectors: read from contrast pairs, applied with explicit position semantics, swept
in a dose-response report against a known truth.

::

    from mindscope import steering
    vec = steering.mean_difference(h, bob_texts, alice_texts, "resid_post.3")   # CAA
    with steering.steering(h, vec, 4.0):              # every position of every forward pass
        logits = h.forward(ids)
    steering.generate(h, prompts, 8, vector=vec, multiplier=4.0, positions="generated")
    rows = steering.dose_response(h, [vec], task, [0, 2, 4, 8], neutral_texts)
    steering.select_dose(rows, kl_budget=0.1)
    vec.save("bob-vector/"); steering.load_vector("bob-vector/", h)   # refuses another model
    pd = steering.planted_direction(seed=0)   # a model a known direction controls
"""

from __future__ import annotations

from mindscope.steering.apply import STEER_POSITIONS, generate, steering
from mindscope.steering.dose import SteerTask, dose_response, select_dose, wilson
from mindscope.steering.planted import PlantedDirection, planted_direction
from mindscope.steering.read import mean_difference, pad_batch, pca_difference, read_last
from mindscope.steering.vector import SteeringVector, load_vector

__all__ = [
    "SteeringVector",
    "load_vector",
    "mean_difference",
    "pca_difference",
    "read_last",
    "pad_batch",
    "steering",
    "generate",
    "STEER_POSITIONS",
    "SteerTask",
    "dose_response",
    "select_dose",
    "wilson",
    "PlantedDirection",
    "planted_direction",
]
