"""Concept erasure: LEACE (closed form, streaming), oracle LEACE, erasure inside the forward
pass, and the erasure audit.

::

    from mindscope import erasure
    eraser = erasure.LeaceFitter().fit(x, y).eraser_      # x [n, d], y [n] classes
    x_clean = eraser(x)                                   # every class now has the same mean
    with erasure.erasing(h, "resid_post.3", eraser):      # erased inside the model
        logits = h.forward(ids)
    erasure.erasure_audit(x_tr, y_tr, x_te, y_te)         # probe AUROCs, distortion vs oracle
"""

from __future__ import annotations

from mindscope.erasure.apply import POSITIONS, erasing
from mindscope.erasure.audit import erasure_audit, probe_auroc
from mindscope.erasure.leace import (
    LeaceEraser,
    LeaceFitter,
    concept_matrix,
    optimal_linear_shrinkage,
)
from mindscope.erasure.oracle import OracleEraser, OracleFitter

__all__ = [
    "LeaceFitter",
    "LeaceEraser",
    "OracleFitter",
    "OracleEraser",
    "concept_matrix",
    "optimal_linear_shrinkage",
    "erasing",
    "erasure_audit",
    "probe_auroc",
    "POSITIONS",
]
