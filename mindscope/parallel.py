"""Run independent tasks in this process or on Ray: the one parallel backend.

    from mindscope.parallel import run_tasks
    rows = run_tasks(train_one_seed, [0, 1, 2, 3])                  # in this process
    rows = run_tasks(train_one_seed, [0, 1, 2, 3], backend="ray")   # same list, in parallel

``fn(task, **shared)`` runs once per task and the results come back **in task order**, whatever
order they finished in. Each task carries everything that makes it random (its seed), so both
backends return the same results; with ``threads`` set, both run every task at that many torch
threads, which makes float results identical too. ``shared`` holds large read-only arguments
(a model handle) sent once to Ray's object store, not once per task. ``after[i] = j`` makes
task ``i`` wait for task ``j < i`` and receive its result as ``previous=`` (warm starts);
``progress(i, result)`` is called in this process as each task finishes (to save partial work).

Ray is the optional ``ray`` extra, imported only when ``backend="ray"``. A local instance
(``num_cpus``) or a cluster (``address``) is configured only through Ray's ``runtime_env``: this
checkout of mindscope as a ``py_modules`` entry (so workers run the driver's code) and
``env_vars`` (``MINDSCOPE_HOME`` and friends, one torch/OpenMP/MKL thread count, sleeping
OpenMP threads). This process's environment is never changed. When Ray is already initialised
(by the caller), its instance and runtime environment are used as they are and left running.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["BACKENDS", "RayPool", "check_address", "check_backend", "ray_runtime_env", "run_tasks"]

BACKENDS = ("inprocess", "ray")
"""The backends :func:`run_tasks` knows."""

_FORWARDED_ENV = ("MINDSCOPE_STORE", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def check_backend(name: str) -> str:
    """``name`` if it is one of :data:`BACKENDS`; a one-line :class:`MindscopeError` otherwise."""
    if name not in BACKENDS:
        raise MindscopeError(f"unknown backend {name!r}; use {' or '.join(BACKENDS)}")
    return name


def check_address(address: str, timeout: float = 5.0) -> None:
    """Raise a one-line :class:`MindscopeError` when the Ray address ``host:port`` does not
    answer a TCP connect within ``timeout`` seconds (``auto`` and ``local`` pass)."""
    if address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise MindscopeError(f"Ray address {address!r} is not host:port (or ray://host:port)")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as exc:
        raise MindscopeError(
            f"Ray address {address} does not answer ({exc.strerror or type(exc).__name__})"
        ) from None


def _import_ray() -> Any:
    from mindscope.extras import require

    require("ray", what="--backend ray")
    import ray

    return ray


def ray_runtime_env(threads: int | None = None, env: Mapping[str, str] | None = None) -> dict:
    """The ``runtime_env`` Ray's workers get: this mindscope package (``py_modules``) and
    ``env_vars`` (``MINDSCOPE_HOME`` resolved here, the store and Hugging Face variables when
    set, ``threads`` (default 1) torch/OpenMP/MKL threads, passive OpenMP waiting, plus ``env``).
    """
    from mindscope.paths import home

    n = str(max(1, int(threads or 1)))
    env_vars = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
    env_vars.update(
        MINDSCOPE_HOME=str(home()),  # one place for organisms: never trained on a node
        TOKENIZERS_PARALLELISM="false",
        OMP_NUM_THREADS=n,
        MKL_NUM_THREADS=n,
        OMP_WAIT_POLICY="PASSIVE",  # idle OpenMP threads sleep instead of spinning on a core
    )
    env_vars.update(env or {})
    package = str(Path(__file__).resolve().parent)  # this mindscope package
    return {"env_vars": env_vars, "py_modules": [package], "excludes": ["__pycache__/", "*.pyc"]}


def _call(
    fn: Any, task: Any, threads: int | None, chained: bool, previous: Any, shared: dict[str, Any]
) -> Any:
    """Run one task (in this process or a Ray worker) at ``threads`` torch threads."""
    kwargs = dict(shared)
    if chained:
        kwargs["previous"] = previous
    if threads is None:
        return fn(task, **kwargs)
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        return fn(task, **kwargs)
    finally:
        torch.set_num_threads(old)


def _remote_call(
    fn: Any,
    task: Any,
    threads: int | None,
    chained: bool,
    previous: Any,
    *shared_values: Any,
    names: tuple[str, ...],
) -> Any:
    # Ray resolves object references only at the top level of the arguments
    shared = dict(zip(names, shared_values, strict=True))
    return _call(fn, task, threads, chained, previous, shared)


def _check_after(after: Sequence[int | None] | None, n: int) -> list[int | None]:
    if after is None:
        return [None] * n
    deps = list(after)
    if len(deps) != n:
        raise MindscopeError(f"after has {len(deps)} entries for {n} tasks")
    for i, j in enumerate(deps):
        if j is not None and not 0 <= j < i:
            raise MindscopeError(f"task {i} waits for task {j}: only an earlier task is allowed")
    return deps


class RayPool:
    """A Ray instance to run tasks on, opened once and reused by several :meth:`map` calls.

    Args:
        address: ``host:port`` (or ``ray://host:port``) of a cluster; ``None`` starts a local
            instance with ``num_cpus`` CPUs (default: this machine's).
        num_cpus: CPUs of the local instance (ignored with ``address``).
        threads: torch threads (and CPUs reserved) per task; default 1.
        env: extra environment variables for the workers (see :func:`ray_runtime_env`).
    """

    def __init__(
        self,
        address: str | None = None,
        num_cpus: int | None = None,
        threads: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        ray = _import_ray()
        self.ray = ray
        self.threads = max(1, int(threads or 1))
        self._started = False
        if num_cpus is not None and int(num_cpus) < 1:
            raise MindscopeError(f"num_cpus must be at least 1, got {num_cpus}")
        if ray.is_initialized():
            return
        runtime_env = ray_runtime_env(self.threads, env)
        if address:
            check_address(address)
            try:
                ray.init(address=address, runtime_env=runtime_env, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many types here
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise MindscopeError(f"cannot join Ray at {address}: {first[:200]}") from None
        else:
            ray.init(
                num_cpus=int(num_cpus) if num_cpus else os.cpu_count(),
                runtime_env=runtime_env,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
        self._started = True

    def map(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[Any],
        *,
        shared: Mapping[str, Any] | None = None,
        after: Sequence[int | None] | None = None,
        progress: Callable[[int, Any], None] | None = None,
    ) -> list[Any]:
        """One Ray task per element of ``tasks``; the results in task order (see the module)."""
        ray = self.ray
        deps = _check_after(after, len(tasks))
        names = tuple(shared or {})
        shared_refs = [ray.put(v) for v in (shared or {}).values()]
        fn_ref = ray.put(fn)
        remote: Any = ray.remote(num_cpus=self.threads, max_retries=0)(_remote_call)
        refs: list[Any] = []
        for task, dep in zip(tasks, deps, strict=True):
            prev = None if dep is None else refs[dep]
            refs.append(
                remote.remote(
                    fn_ref, task, self.threads, after is not None, prev, *shared_refs, names=names
                )
            )
        results: list[Any] = [None] * len(tasks)
        pending = {r: i for i, r in enumerate(refs)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for r in ready:
                    i = pending.pop(r)
                    results[i] = self._get(r)
                    if progress is not None:
                        progress(i, results[i])
        finally:
            for r in pending:
                ray.cancel(r, force=True)
        return results

    def _get(self, ref: Any) -> Any:
        """A task's result; its error re-raised as itself (a one-line MindscopeError)."""
        ray = self.ray
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None)
            if isinstance(cause, MindscopeError):
                raise type(cause)(str(cause).splitlines()[0]) from None
            if isinstance(cause, BaseException):
                raise cause from None
            raise

    def close(self) -> None:
        """Shut Ray down if this pool started it (a caller's instance is left running)."""
        if self._started:
            self.ray.shutdown()
            self._started = False

    def __enter__(self) -> RayPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def run_tasks(
    fn: Callable[..., Any],
    tasks: Sequence[Any],
    *,
    backend: str = "inprocess",
    num_cpus: int | None = None,
    address: str | None = None,
    threads: int | None = None,
    shared: Mapping[str, Any] | None = None,
    after: Sequence[int | None] | None = None,
    progress: Callable[[int, Any], None] | None = None,
) -> list[Any]:
    """``[fn(task, **shared) for task in tasks]``, in this process or as Ray tasks.

    Args:
        fn: a picklable function (module level, or a ``functools.partial`` of one) for Ray.
        tasks: one picklable element per task; everything that makes a task random goes here.
        backend: ``"inprocess"`` (one after the other, here) or ``"ray"``.
        num_cpus: CPUs of a local Ray instance (default: this machine's).
        address: a Ray cluster to join (``host:port``) instead of a local instance.
        threads: torch threads per task, set for each call (and restored) in both backends;
            ``None`` leaves this process's setting alone and gives each Ray task one thread.
        shared: keyword arguments given to every call (sent to Ray's object store once).
        after: ``after[i] = j`` (``j < i``) hands task ``j``'s result to task ``i`` as
            ``previous=`` (``None``: no predecessor, ``previous=None``); unset, no ``previous``.
        progress: ``progress(i, result)`` in this process as each task finishes.

    Returns:
        The results, ``len(tasks)`` of them, in task order.
    """
    check_backend(backend)
    tasks = list(tasks)
    if backend == "ray":
        with RayPool(address, num_cpus, threads) as pool:
            return pool.map(fn, tasks, shared=shared, after=after, progress=progress)
    if address:
        raise MindscopeError("an address is for the ray backend; pass backend='ray'")
    deps = _check_after(after, len(tasks))
    results: list[Any] = []
    for i, (task, dep) in enumerate(zip(tasks, deps, strict=True)):
        prev = None if dep is None else results[dep]
        results.append(_call(fn, task, threads, after is not None, prev, dict(shared or {})))
        if progress is not None:
            progress(i, results[i])
    return results
