"""Worst-case audits: find inputs where a model knows one thing and does another.

* Anomaly detection on activations, fitted on trusted inputs only:
  :class:`MahalanobisDetector` (streaming :class:`MahalanobisFitter`, Ledoit-Wolf shrinkage),
  :class:`LofDetector`, :class:`IsolationForestDetector`, :class:`QueDetector`; per layer and
  aggregated over layers; tasks with known truth in :mod:`mindscope.audit.tasks`.
* Disagreement search (:func:`disagreements`): inputs ranked by how strongly a reporter's
  credence disagrees with the model's own answer.
* Monitors (:class:`Monitor`): flag inputs above a threshold set for a chosen false-positive
  rate on trusted data.
* Rare-event estimation (:func:`estimate_rare`, :mod:`mindscope.audit.rare`) and GCG-style
  trigger search (:func:`search_triggers`, :mod:`mindscope.audit.triggers`), imported lazily.

::

    import mindscope as ms
    det = ms.audit.MahalanobisDetector().fit(trusted)       # [n, d] or [layers, n, d]
    det.score(untrusted)                                    # [n] or [layers, n]
    ranked = ms.audit.disagreements(h, reporter, pairs, layer=5)
"""

from __future__ import annotations

import importlib
from typing import Any

from mindscope.audit import tasks
from mindscope.audit.anomaly import score_task
from mindscope.audit.base import REGISTRY as DETECTORS
from mindscope.audit.base import Detector, fingerprint
from mindscope.audit.detectors import (
    IsolationForestDetector,
    LofDetector,
    QueDetector,
    make_detector,
)
from mindscope.audit.disagree import Disagreement, disagreement_rows, disagreements
from mindscope.audit.mahalanobis import MahalanobisDetector, MahalanobisFitter
from mindscope.audit.metrics import recall_at_fpr, threshold_at_fpr
from mindscope.audit.monitor import Monitor
from mindscope.audit.tasks import TASKS, make_task
from mindscope.covariance import ClassMoments, StreamingMoments

__all__ = [
    "Detector",
    "MahalanobisDetector",
    "MahalanobisFitter",
    "LofDetector",
    "IsolationForestDetector",
    "QueDetector",
    "make_detector",
    "StreamingMoments",
    "ClassMoments",
    "fingerprint",
    "recall_at_fpr",
    "threshold_at_fpr",
    "disagreements",
    "disagreement_rows",
    "Disagreement",
    "Monitor",
    "tasks",
    "TASKS",
    "make_task",
    "score_task",
    "DETECTORS",
    "estimate_rare",
    "search_triggers",
]

_LAZY = {"estimate_rare": "mindscope.audit.rare", "search_triggers": "mindscope.audit.triggers"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mindscope.audit' has no attribute {name!r}")
