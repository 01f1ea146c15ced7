"""Sparse autoencoders scored against planted truth first, used on real activations second.

Architectures (one module each, sharing :class:`SparseAutoencoder`): :class:`TopKSAE` (with the
AuxK dead-latent loss), :class:`BatchTopKSAE`, :class:`MatryoshkaSAE`, :class:`JumpReLUSAE` and
:class:`L1SAE`. :class:`PlantedDictionary` generates activations from known features;
:mod:`mindscope.sae.metrics` scores an SAE against them (Hungarian MCC, firing F1, uniqueness)
and on any activations (L0, variance explained, dead and dense fractions, shrinkage)::

    from mindscope import sae
    gen = sae.planted("small", seed=0)                    # 2048 features in 128 dims
    model = sae.TopKSAE(2048, k=8, n_steps=1500).fit(sae.planted_source(gen, 512))
    sae.evaluate_planted(model, gen)                      # {"mcc": ..., "f1": ..., ...}
"""

from __future__ import annotations

from mindscope.sae.base import REGISTRY, Active, SparseAutoencoder, load_sae
from mindscope.sae.evaluate import compare_planted, evaluate_planted, make_sae, planted_source
from mindscope.sae.features import feature_card
from mindscope.sae.jumprelu import L1SAE, JumpReLUSAE
from mindscope.sae.matryoshka import MatryoshkaSAE
from mindscope.sae.metrics import (
    Matching,
    firing_scores,
    match_features,
    mcc,
    null_mcc,
    reconstruction_metrics,
    uniqueness,
)
from mindscope.sae.sources import (
    activation_source,
    site_activations,
    store_source,
    token_windows,
)
from mindscope.sae.synthetic import SETTINGS, PlantedDictionary, planted
from mindscope.sae.topk import BatchTopKSAE, TopKSAE

ARCHITECTURES = ("topk", "batchtopk", "jumprelu", "l1", "matryoshka")
"""Architecture names accepted by :func:`make_sae` (and the ``sae`` stage and command)."""

__all__ = [
    "ARCHITECTURES",
    "REGISTRY",
    "Active",
    "SparseAutoencoder",
    "TopKSAE",
    "BatchTopKSAE",
    "MatryoshkaSAE",
    "JumpReLUSAE",
    "L1SAE",
    "PlantedDictionary",
    "SETTINGS",
    "planted",
    "planted_source",
    "activation_source",
    "store_source",
    "site_activations",
    "token_windows",
    "make_sae",
    "load_sae",
    "evaluate_planted",
    "feature_card",
    "compare_planted",
    "Matching",
    "match_features",
    "mcc",
    "null_mcc",
    "firing_scores",
    "uniqueness",
    "reconstruction_metrics",
]
