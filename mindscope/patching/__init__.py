"""Activation and attribution patching: which components carry the difference between a clean
and a corrupted input to the answer.

::

    import mindscope as ms
    from mindscope import patching
    exact = patching.activation_patching(h, clean_ids, corrupt_ids, answer, wrong,
                                         kinds=("resid_pre", "attn_out", "mlp_out"))
    atp = patching.attribution_patching(h, clean_ids, corrupt_ids, answer, wrong,
                                        kinds=("resid_pre", "attn_out", "mlp_out"))
    patching.atp_error(exact, atp)            # how far the gradient estimate is, per site
    patching.localisation(exact, truth)       # precision / recall against a known circuit
    heads = patching.head_patching(h, clean_ids, corrupt_ids, answer, wrong)   # per head
    atp_h = patching.attribution_patching(h, clean_ids, corrupt_ids, answer, wrong, kinds=(),
                                          heads=True)      # the same from one backward pass

Every forward pass goes through :meth:`mindscope.models.ModelHandle.forward`; patches are
:meth:`~mindscope.models.ModelHandle.edit` hooks, so any architecture the handle serves
(grouped-query attention included) is patched the same way.
"""

from __future__ import annotations

from mindscope.patching.attribution import attribution_patching
from mindscope.patching.corrupt import CORRUPTIONS, gaussian_noise, replace_tokens
from mindscope.patching.exact import PATCH_KINDS, activation_patching, prepare_inputs
from mindscope.patching.heads import head_patching
from mindscope.patching.metrics import METRICS, answer_metric
from mindscope.patching.planted import PlantedCircuit, planted_circuit
from mindscope.patching.result import PatchResult, atp_error, localisation

__all__ = [
    "activation_patching",
    "attribution_patching",
    "head_patching",
    "PatchResult",
    "PlantedCircuit",
    "planted_circuit",
    "localisation",
    "atp_error",
    "answer_metric",
    "prepare_inputs",
    "replace_tokens",
    "gaussian_noise",
    "METRICS",
    "PATCH_KINDS",
    "CORRUPTIONS",
]
