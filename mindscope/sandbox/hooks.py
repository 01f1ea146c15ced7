"""A small forward-hook recorder for the agents' networks.

Stand-in for the generic ``mindscope.models.HookedModule(module, sites=...).capture(sites)``
the engine is getting (not on main yet); same idea, so it can be swapped for it later::

    with capture(agent.net, ["hidden1", "hidden2"]) as acts:
        agent.net(x)
    acts["hidden1"]   # list of [batch, width] tensors, one per forward pass
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from mindscope.sandbox.errors import SandboxError

__all__ = ["capture"]


@contextmanager
def capture(module: nn.Module, sites: Sequence[str]) -> Iterator[dict[str, list[torch.Tensor]]]:
    """Record the outputs of the submodules named ``sites`` on every forward pass.

    Yields ``{site: [tensor per forward call]}`` (detached); the hooks are removed on exit,
    also when the body raises.
    """
    modules = dict(module.named_modules())
    missing = [s for s in sites if s not in modules or not s]
    if missing:
        known = [n for n in modules if n]
        raise SandboxError(f"no site(s) {missing} in {type(module).__name__} (sites: {known})")
    out: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
    handles = []
    try:
        for s in sites:

            def hook(mod: nn.Module, args: Any, output: Any, _s: str = s) -> None:
                out[_s].append(output.detach().clone())

            handles.append(modules[s].register_forward_hook(hook))
        yield out
    finally:
        for h in handles:
            h.remove()
