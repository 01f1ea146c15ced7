"""Weak-to-strong generalization (Burns et al. 2023), scored against a known truth.

Can a strong model supervised by a weaker, mistaken supervisor do better than it, and does it
learn the truth or the supervisor's errors? Supervisors (:mod:`~mindscope.w2s.supervisors`)
label a training split with errors we control; students (:mod:`~mindscope.w2s.students`)
learn from those labels with a loss (:mod:`~mindscope.w2s.losses`) after optional relabelling,
filtering or oracle mixing (:mod:`~mindscope.w2s.interventions`); measurements
(:mod:`~mindscope.w2s.metrics`) score weak, student and ceiling against the truth::

    import mindscope as ms
    from mindscope.w2s import RuleSupervisor, FieldSupervisor, run_w2s
    h = ms.load_model("organism:quirky-arith")
    res = run_w2s(h, train_pairs, test_pairs,
                  {"random": RuleSupervisor(0.75), "persona": FieldSupervisor("label")},
                  methods=["ce", "logconf", "reporter"], seeds=5)
    res.pgr[("random", "ce", "auroc")]      # PGR with its bootstrap interval, or refused
"""

from __future__ import annotations

from mindscope.w2s.experiment import FT_METHODS, METHODS, W2SResult, paired_comparison, run_w2s
from mindscope.w2s.interventions import mix_oracle, probe_filter, probe_relabel
from mindscope.w2s.losses import LOSSES, ce_loss, get_loss, logconf_loss
from mindscope.w2s.metrics import PGR, misfit_gain, paired_sign_flip, pgr, pgr_ci, slice_accuracy
from mindscope.w2s.students import FineTunedStudent, ReporterStudent
from mindscope.w2s.supervisors import (
    ArraySupervisor,
    FieldSupervisor,
    FunctionSupervisor,
    RuleSupervisor,
    Supervisor,
    TruthSupervisor,
    WeakModelSupervisor,
    predicate,
    truth_of,
)

__all__ = [
    "run_w2s",
    "paired_comparison",
    "W2SResult",
    "METHODS",
    "FT_METHODS",
    "Supervisor",
    "TruthSupervisor",
    "FieldSupervisor",
    "RuleSupervisor",
    "ArraySupervisor",
    "FunctionSupervisor",
    "WeakModelSupervisor",
    "predicate",
    "truth_of",
    "FineTunedStudent",
    "ReporterStudent",
    "LOSSES",
    "ce_loss",
    "logconf_loss",
    "get_loss",
    "probe_relabel",
    "probe_filter",
    "mix_oracle",
    "PGR",
    "pgr",
    "pgr_ci",
    "slice_accuracy",
    "misfit_gain",
    "paired_sign_flip",
]
