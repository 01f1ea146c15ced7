"""Reporters (probes) that read a credence of truth from activations, and their evaluation.

Every reporter follows one contract (see :mod:`mindscope.probes.base`): hyper-parameters in
``__init__``, ``fit(x, y=None) -> self`` on ``[n, 2, d]`` contrast pairs or ``[layers, n, 2, d]``
(all layers at once), or single texts ``[n, d]`` / ``[layers, n, d]`` for supervised reporters;
``predict_proba(x)`` gives ``[n]`` or ``[layers, n]``; ``save``/``load`` use safetensors.
"""

from __future__ import annotations

from mindscope.probes.base import Reporter, load_reporter, reporter_config
from mindscope.probes.ccs import CcsReporter
from mindscope.probes.crc import CrcReporter
from mindscope.probes.diffmean import DiffMeanReporter
from mindscope.probes.lda import LdaReporter
from mindscope.probes.logistic import LogisticReporter
from mindscope.probes.metrics import bootstrap_auroc_ci, roc_auc
from mindscope.probes.random_baseline import RandomReporter
from mindscope.probes.ridge import RidgeReporter

__all__ = [
    "RidgeReporter",
    "Reporter",
    "load_reporter",
    "reporter_config",
    "LogisticReporter",
    "DiffMeanReporter",
    "LdaReporter",
    "CcsReporter",
    "CrcReporter",
    "RandomReporter",
    "roc_auc",
    "bootstrap_auroc_ci",
]
