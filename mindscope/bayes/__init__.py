"""Model misspecification: in-context learners scored against exact Bayesian posteriors.

Closed forms for the two families of in-context tasks mindscope's ICL organisms are trained on:

* linear regression (:mod:`~mindscope.bayes.regression`): any prior with a ``posterior_mean``
  (``FiniteTaskPrior`` -> dMMSE, ``GaussianPrior`` -> ridge), vectorised over contexts and
  context lengths, memory bounded in the number of tasks;
* mixtures of hidden Markov models (:mod:`~mindscope.bayes.hmm`): exact belief states and
  predictives by the forward algorithm, ``kl_to_bayes``;
* misspecification (:mod:`~mindscope.bayes.misspec`): task vectors off the training support;
* scoring (:mod:`~mindscope.bayes.score`): per context length, a model's error, each
  posterior's error, their distances, and whether the model departs towards the truth.

This package works on tensors only; the ``bayes`` stage (:mod:`mindscope.analyses.bayes`,
``mindscope bayes``) runs a model and writes the results rows::

    import torch
    from mindscope.bayes import FiniteTaskPrior, GaussianPrior, predict, sample_contexts
    prior = FiniteTaskPrior.sample_pool(m=16, d=8, noise=0.25, seed=0)
    gen = torch.Generator().manual_seed(1)
    x, y = sample_contexts(prior.sample(1000, gen), k=16, noise_std=0.5, gen=gen)
    dmmse_pred = predict(prior, x, y)                       # [1000, 16]
    ridge_pred = predict(GaussianPrior(8, 0.25), x, y)      # [1000, 16]
"""

from __future__ import annotations

from mindscope.bayes.hmm import HMM, HMMMixture, kl_to_bayes, mess3, random_hmms
from mindscope.bayes.misspec import TASK_SHIFTS, rotation_in_plane, shift_tasks, spherical_cap
from mindscope.bayes.regression import (
    FiniteTaskPrior,
    GaussianPrior,
    RegressionPrior,
    check_context,
    dmmse,
    predict,
    ridge_posterior,
    sample_contexts,
)
from mindscope.bayes.score import hmm_scores, regression_scores, transition_point

__all__ = [
    "RegressionPrior",
    "FiniteTaskPrior",
    "GaussianPrior",
    "dmmse",
    "ridge_posterior",
    "predict",
    "check_context",
    "sample_contexts",
    "HMM",
    "HMMMixture",
    "random_hmms",
    "mess3",
    "kl_to_bayes",
    "TASK_SHIFTS",
    "shift_tasks",
    "rotation_in_plane",
    "spherical_cap",
    "regression_scores",
    "hmm_scores",
    "transition_point",
]
