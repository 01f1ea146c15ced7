"""Interpreting across time: checkpoint sweeps as one resumable job, in-process or on Ray.

::

    import mindscope as ms
    res = ms.sweep({"series": {"source": "organism", "name": "quirky-arith", "select": 6},
                    "stages": {"elicit": {}}, "out": "sweeps/quirky"})
    res.table          # results rows with step / revision, controls and duplicates included

See ``docs/sweeps.md``.
"""

from __future__ import annotations

from mindscope.sweeps.config import SweepConfig, load_config, parse_config
from mindscope.sweeps.job import SweepResult, refine_candidate, sweep
from mindscope.sweeps.series import (
    Checkpoint,
    checkpoint_hash,
    duplicates,
    folder_checkpoints,
    hub_checkpoints,
    list_checkpoints,
    log_spaced,
    organism_checkpoints,
    select,
)

__all__ = [
    "sweep",
    "SweepResult",
    "SweepConfig",
    "load_config",
    "parse_config",
    "Checkpoint",
    "list_checkpoints",
    "folder_checkpoints",
    "organism_checkpoints",
    "hub_checkpoints",
    "select",
    "log_spaced",
    "checkpoint_hash",
    "duplicates",
    "refine_candidate",
]
