"""mindscope: read what a language model knows inside, and hunt for its worst cases.

Quick tour (see README.md)::

    import mindscope as ms
    h = ms.load_model("organism:pocket-lm")             # hub id, local dir, or organism
    acts = ms.extract(h, ["The cat sat on the"], layers="all", position="last")
    acts[3]                                             # [n, d_model] residual stream after layer 3
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "__version__",
    "load_model",
    "ModelHandle",
    "extract",
    "Activations",
    "ContrastPair",
    "MindscopeError",
    "data",
    "probes",
    "lenses",
    "organisms",
    "audit",
    "bayes",
    "report",
    "results",
    "sae",
    "sweep",
    "sweeps",
    "verify",
    "steering",
    "erasure",
    "patching",
]

from mindscope._version import __version__
from mindscope.errors import MindscopeError

_LAZY = {
    "load_model": ("mindscope.models", "load_model"),
    "ModelHandle": ("mindscope.models", "ModelHandle"),
    "extract": ("mindscope.activations", "extract"),
    "Activations": ("mindscope.activations", "Activations"),
    "ContrastPair": ("mindscope.data.pairs", "ContrastPair"),
    "sweep": ("mindscope.sweeps", "sweep"),
}
_SUBPACKAGES = {
    "audit",
    "bayes",
    "data",
    "probes",
    "lenses",
    "organisms",
    "report",
    "results",
    "models",
    "activations",
    "sweeps",
    "verify",
    "w2s",
    "steering",
    "erasure",
    "patching",
    "sae",
}

if TYPE_CHECKING:  # pragma: no cover
    from mindscope.activations import Activations, extract
    from mindscope.data.pairs import ContrastPair
    from mindscope.models import ModelHandle, load_model
    from mindscope.sweeps import sweep


def __getattr__(name: str) -> Any:
    # Imported lazily so `import mindscope` stays fast and light (torch loads on first use).
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"mindscope.{name}")
    raise AttributeError(f"module 'mindscope' has no attribute {name!r}")
