"""Model access: the only place in mindscope that knows about architectures.

``load_model`` takes a hub id, a local Hugging Face directory or ``organism:NAME`` and returns a
:class:`ModelHandle` exposing the tokenizer, blocks, final norm, unembedding and residual sites.
:class:`HookedModule` gives any ``torch.nn.Module`` (a policy network, a custom model) the same
capture / add / run / extract API with sites named by submodule path.
"""

from __future__ import annotations

from mindscope.models.discovery import Parts, find_parts
from mindscope.models.handle import ModelHandle
from mindscope.models.hooked import HookedModule, SitePoint
from mindscope.models.hooks import SITE_KINDS, StopForward, parse_site
from mindscope.models.load import load_model, resolve_device, resolve_dtype, wrap_model

__all__ = [
    "load_model",
    "wrap_model",
    "ModelHandle",
    "HookedModule",
    "SitePoint",
    "Parts",
    "find_parts",
    "parse_site",
    "SITE_KINDS",
    "StopForward",
    "resolve_device",
    "resolve_dtype",
]
