"""The stage registry: every analysis written once.

Each analysis is a *stage* (:mod:`mindscope.analyses.base`): a config (a pydantic model with a
description per field) and a function ``(model handle, config, *, seed, ...) ->``
:class:`StageOutput`. ``mindscope run``, ``mindscope sweep``, the single-purpose commands and
the Python API all call :func:`run_stage`::

    import mindscope as ms
    h = ms.load_model("organism:quirky-arith")
    out = ms.analyses.run_stage("elicit", h, {"read": "prompt", "methods": ["lr"]}, seed=0)
    out.rows          # the results table (pandas), provenance filled by ms.results.stamp

Where a new analysis goes: one module here, with a :class:`StageConfig` subclass and a function
decorated with :func:`register`, imported below. It may import the instruments (``lenses``,
``probes``, ``audit``, ``sandbox``, ...), ``models``, ``activations``, ``data`` and
``results``; it may not import ``runs``, ``sweeps``, ``cli`` or ``report`` (they sit above it).
"""

from __future__ import annotations

# the built-in stages register themselves on import
from mindscope.analyses import (  # noqa: F401
    audits,
    bayes,
    elicit,
    erase,
    lens,
    patch,
    sae,
    sandbox,
    sandbox_scheme,
    steer,
    w2s,
)
from mindscope.analyses.base import (
    Artefact,
    CheckContext,
    Stage,
    StageConfig,
    StageOutput,
    get_stage,
    isolated,
    json_artefact,
    register,
    run_stage,
    stage_names,
)
from mindscope.analyses.elicit import ElicitConfig
from mindscope.analyses.erase import EraseConfig
from mindscope.analyses.lens import LensConfig
from mindscope.analyses.patch import PatchConfig
from mindscope.analyses.sae import SaeConfig
from mindscope.analyses.sandbox import SandboxConfig
from mindscope.analyses.steer import SteerConfig
from mindscope.analyses.w2s import W2SConfig

__all__ = [
    "Artefact",
    "CheckContext",
    "Stage",
    "StageConfig",
    "StageOutput",
    "ElicitConfig",
    "EraseConfig",
    "PatchConfig",
    "SteerConfig",
    "LensConfig",
    "SaeConfig",
    "SandboxConfig",
    "W2SConfig",
    "get_stage",
    "isolated",
    "json_artefact",
    "register",
    "run_stage",
    "stage_names",
]
