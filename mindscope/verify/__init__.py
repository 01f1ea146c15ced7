"""Verifiable computation: training transcripts checked by re-execution, runs that re-verify.

::

    import mindscope as ms
    report = ms.verify.training("path/to/organism")    # or its transcript/transcript.json
    print(report.summary())                            # per segment, then ACCEPT/REJECT
    ms.verify.run("runs/20260101-120000-demo").verdict()

See :mod:`mindscope.verify.training` (Proof-of-Learning style segment re-execution and
Proof-of-Training-Data style data checks), :mod:`mindscope.verify.runs` (run folders) and
:mod:`mindscope.testing.frauds` (planted frauds the tests check are caught).
"""

from __future__ import annotations

from mindscope.organisms.transcript import TranscriptError
from mindscope.verify.runs import RunVerification, verify_run
from mindscope.verify.training import (
    CROSS_THREAD_LOSS_TOLERANCE,
    CROSS_THREAD_TOLERANCE,
    SegmentCheck,
    TrainingVerification,
    verify_training,
)

training = verify_training
"""``ms.verify.training(transcript, ...)``: :func:`verify_training`."""
run = verify_run
"""``ms.verify.run(run_dir, ...)``: :func:`verify_run`."""

__all__ = [
    "training",
    "run",
    "verify_training",
    "verify_run",
    "TrainingVerification",
    "SegmentCheck",
    "RunVerification",
    "TranscriptError",
    "CROSS_THREAD_TOLERANCE",
    "CROSS_THREAD_LOSS_TOLERANCE",
]
