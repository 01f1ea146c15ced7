"""Generic hooked modules: any ``torch.nn.Module`` with named sites.

A *site* is a name for a tensor inside a forward pass. For a generic module a site is the output
of a submodule, named by its dotted path (``"net.0"``) or by an alias (``{"hidden": "net.1"}``).
:class:`HookedModule` reads sites (``capture``), writes them (``add``), stops the pass after the
last site it needs (``run(..., stop=True)``) and extracts site activations from any iterable of
input batches. The Hugging Face adapter (:class:`mindscope.models.ModelHandle`) is built on the
same machinery, with TransformerLens site names.

Example::

    policy = nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 2))
    hm = HookedModule(policy, sites={"hidden": "1"})
    out, acts = hm.run(torch.randn(8, 4), sites=["hidden"])   # acts["hidden"]: [8, 32]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mindscope import io
from mindscope.errors import MindscopeError
from mindscope.models.hooks import StopForward, first_tensor, hooked, replace_first

__all__ = ["HookedModule", "SitePoint", "module_weights_hash"]


@dataclass(frozen=True)
class SitePoint:
    """Where a site lives: a module and whether the site is its input (``"pre"``) or output.

    Attributes:
        module: the submodule the hook attaches to.
        when: ``"pre"`` (the module's first input) or ``"post"`` (its output).
    """

    module: nn.Module
    when: str


def module_weights_hash(module: nn.Module) -> str:
    """Content hash (hex, 16 chars) of a module's parameters and buffers, in name order."""
    h = io.hasher("blake2b")
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(str(t.dtype).encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()[:16]


def _tensor_bytes(t: torch.Tensor) -> bytes:
    t = t.detach().contiguous().cpu()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def _input_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> torch.Tensor:
    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    for v in kwargs.values():
        if isinstance(v, torch.Tensor):
            return v
    raise TypeError("cannot find the tensor input of a module call")


class HookedModule:
    """Any ``nn.Module`` with named sites that can be read, written and extracted.

    Args:
        module: the network (kept as is: not copied, not put in eval mode unless ``eval=True``).
        sites: ``{alias: submodule path}``; ``None`` names every submodule by its dotted path.
            A path may end in ``":in"`` to name the submodule's *input* instead of its output.
        name: a label for results tables and errors.
        eval: put the module in eval mode (dropout off), as analysis usually wants.
    """

    def __init__(
        self,
        module: nn.Module,
        sites: Mapping[str, str] | None = None,
        *,
        name: str = "custom",
        eval: bool = True,
    ) -> None:
        if not isinstance(module, nn.Module):
            raise TypeError(f"HookedModule wraps a torch.nn.Module, got {type(module).__name__}")
        self.module = module
        self.name = name
        if eval:
            module.eval()
        self._site_paths = dict(sites) if sites is not None else None
        self._weights_hash: str | None = None

    # ----------------------------------------------------------------- sites
    @property
    def sites(self) -> list[str]:
        """Every site name this module exposes."""
        if self._site_paths is not None:
            return list(self._site_paths)
        return [n for n, _ in self.module.named_modules() if n]

    def site_point(self, site: str) -> SitePoint:
        """Resolve a site name to its :class:`SitePoint` (one-line error when unknown)."""
        path = self._site_paths.get(site) if self._site_paths is not None else site
        if path is None:
            raise MindscopeError(
                f"{self.name} has no site {site!r}; its sites are {', '.join(self.sites[:12])}"
                + (" ..." if len(self.sites) > 12 else "")
            )
        when = "post"
        if path.endswith(":in"):
            path, when = path[:-3], "pre"
        modules = dict(self.module.named_modules())
        if path not in modules:
            raise MindscopeError(f"{self.name} has no submodule {path!r} (site {site!r})")
        return SitePoint(modules[path], when)

    # ----------------------------------------------------------------- hooks
    def _reader(self, point: SitePoint, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> Any:
        """A hook registration calling ``fn(t)`` on the site tensor; a returned tensor replaces
        the site's value."""
        if point.when == "pre":

            def pre(mod: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
                x = _input_tensor(args, kwargs)
                y = fn(x)
                if y is None:
                    return None
                if args and isinstance(args[0], torch.Tensor):
                    return (y, *args[1:]), kwargs
                key = next(k for k, v in kwargs.items() if v is x)
                return args, {**kwargs, key: y}

            return (point.module, "pre", pre)

        def post(mod: nn.Module, args: tuple[Any, ...], out: Any) -> Any:
            y = fn(first_tensor(out))
            return None if y is None else replace_first(out, y)

        return (point.module, "post", post)

    def _registrations(
        self,
        reads: Mapping[str, Callable[[torch.Tensor], torch.Tensor | None]],
    ) -> list[Any]:
        return [self._reader(self.site_point(s), fn) for s, fn in reads.items()]

    def _site_width(self, site: str) -> int | None:
        """Width of a site when it can be known without running (``None`` otherwise)."""
        return None

    @contextmanager
    def capture(
        self, sites: Sequence[str], *, detach: bool = True
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Record the tensors at ``sites`` during forward passes run inside the block.

        Yields a dict filled as the module runs (the last pass wins); ``detach=False`` keeps the
        autograd graph. Hooks are removed on exit, even on error.
        """
        cache: dict[str, torch.Tensor] = {}

        def keep(site: str) -> Callable[[torch.Tensor], None]:
            def fn(t: torch.Tensor) -> None:
                cache[site] = t.detach() if detach else t

            return fn

        with hooked(self._registrations({s: keep(s) for s in sites})):
            yield cache

    @contextmanager
    def record(
        self, sites: Sequence[str], *, detach: bool = True
    ) -> Iterator[dict[str, list[torch.Tensor]]]:
        """Like :meth:`capture`, but keep every forward pass: ``{site: [tensor per pass]}``
        (e.g. one per environment step of an agent's episode)."""
        log: dict[str, list[torch.Tensor]] = {s: [] for s in sites}

        def keep(site: str) -> Callable[[torch.Tensor], None]:
            def fn(t: torch.Tensor) -> None:
                log[site].append(t.detach() if detach else t)

            return fn

        with hooked(self._registrations({s: keep(s) for s in sites})):
            yield log

    @contextmanager
    def add(self, additions: Mapping[str, torch.Tensor]) -> Iterator[None]:
        """Add tensors (broadcastable to the site's value) to sites during forward passes."""
        reads: dict[str, Callable[[torch.Tensor], torch.Tensor | None]] = {}
        for site, vec in additions.items():
            width = self._site_width(site)
            if width is not None and vec.shape[-1] != width:
                raise MindscopeError(
                    f"tensor added at {site} has width {vec.shape[-1]}, the site's width is {width}"
                )

            def fn(t: torch.Tensor, vec: torch.Tensor = vec, site: str = site) -> torch.Tensor:
                if vec.shape[-1] != t.shape[-1]:
                    raise MindscopeError(
                        f"tensor added at {site} has width {vec.shape[-1]}, "
                        f"the site's width is {t.shape[-1]}"
                    )
                return t + vec.to(device=t.device, dtype=t.dtype)

            reads[site] = fn
        with hooked(self._registrations(reads)):
            yield

    # ----------------------------------------------------------------- running
    def run(
        self,
        *args: Any,
        sites: Sequence[str] = (),
        stop: bool = False,
        grad: bool = False,
        **kwargs: Any,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Call the module and return ``(output, {site: tensor})``.

        Args:
            *args, **kwargs: passed to the module.
            sites: sites to record.
            stop: end the pass as soon as every site is recorded (``output`` is then ``None``).
            grad: run with autograd on and keep the graph on the recorded tensors.
        """
        cache: dict[str, torch.Tensor] = {}
        wanted = list(sites)
        if stop and not wanted:
            raise MindscopeError("run(stop=True) needs at least one site to stop after")

        def keep(site: str) -> Callable[[torch.Tensor], None]:
            def fn(t: torch.Tensor) -> None:
                cache[site] = t if grad else t.detach()
                if stop and len(cache) == len(wanted):
                    raise StopForward

            return fn

        ctx = torch.enable_grad() if grad else torch.no_grad()
        with ctx, hooked(self._registrations({s: keep(s) for s in wanted})):
            try:
                out = self.module(*args, **kwargs)
            except StopForward:
                out = None
        missing = [s for s in wanted if s not in cache]
        if missing:
            raise MindscopeError(
                f"sites {missing} were never reached in {self.name}'s forward pass"
            )
        return out, cache

    def extract(
        self,
        batches: Iterable[Any],
        sites: Sequence[str],
        *,
        reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
        stop: bool = True,
        progress: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Activations at ``sites`` over an iterable of input batches.

        Args:
            batches: each item is a tensor (passed positionally), a tuple (passed as ``*args``)
                or a dict (passed as ``**kwargs``).
            sites: the sites to read.
            reduce: maps a site tensor ``[batch, ...]`` to what is kept (default: as is).
            stop: stop each pass after the last site (skips the rest of the network).
            progress: show a progress bar.

        Returns:
            ``{site: [n, ...]}`` on the CPU, batches concatenated along the first axis.
        """
        from tqdm.auto import tqdm

        parts: dict[str, list[torch.Tensor]] = {s: [] for s in sites}
        for batch in tqdm(batches, disable=not progress, desc="extract", unit="batch"):
            if isinstance(batch, Mapping):
                _, got = self.run(sites=sites, stop=stop, **batch)
            elif isinstance(batch, tuple):
                _, got = self.run(*batch, sites=sites, stop=stop)
            else:
                _, got = self.run(batch, sites=sites, stop=stop)
            for s in sites:
                t = got[s]
                parts[s].append((reduce(t) if reduce is not None else t).detach().cpu())
        if not any(parts[s] for s in sites):
            raise MindscopeError("no input batches to extract from")
        return {s: torch.cat(v, dim=0) for s, v in parts.items()}

    # ----------------------------------------------------------------- identity
    @property
    def weights_hash(self) -> str:
        """Content hash of the module's parameters and buffers (computed once)."""
        if self._weights_hash is None:
            self._weights_hash = module_weights_hash(self.module)
        return self._weights_hash

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for a module without parameters)."""
        for p in self.module.parameters():
            return p.device
        return torch.device("cpu")

    def __repr__(self) -> str:
        return f"HookedModule({self.name!r}, {type(self.module).__name__}, sites={len(self.sites)})"
