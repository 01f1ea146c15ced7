"""Recording an agent's network activations through the generic hooked module.

A thin adapter over :meth:`mindscope.models.HookedModule.record` (the engine's generic hooked
module, shared with every other instrument)::

    with capture(agent.net, ["hidden1", "hidden2"]) as acts:
        agent.net(x)
    acts["hidden1"]   # list of [batch, width] tensors, one per forward pass
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from mindscope.models.hooked import HookedModule
from mindscope.sandbox.errors import SandboxError

__all__ = ["capture"]


@contextmanager
def capture(module: nn.Module, sites: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the outputs of the submodules named ``sites`` on every forward pass.

    Yields ``{site: [tensor per forward call]}`` (detached); the hooks are removed on exit,
    also when the body raises. The module's train/eval mode is left as it is.
    """
    modules = dict(module.named_modules())
    missing = [s for s in sites if s not in modules or not s]
    if missing:
        known = [n for n in modules if n]
        raise SandboxError(f"no site(s) {missing} in {type(module).__name__} (sites: {known})")
    hm = HookedModule(module, name=type(module).__name__, eval=False)
    with hm.record(list(sites)) as log:
        yield log
