"""Where checkpoint tasks run: in this process, or one Ray task per checkpoint.

Both backends run :func:`mindscope.sweeps.runner.run_checkpoint` with the same arguments (same
torch thread count), so their tables are identical. A task whose stages warm-start from the
previous checkpoint takes that task's result as an argument: Ray chains them, independent
checkpoints run in parallel. Ray is the optional ``ray`` extra, imported only here.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["Task", "InProcessBackend", "RayBackend", "make_backend", "check_address"]


@dataclass
class Task:
    """One checkpoint to run: its dict, the stages to run, and where its warm start comes from."""

    ckpt: dict[str, Any]
    stages: list[tuple[str, dict[str, Any]]]
    prev_states: dict[str, Any] = field(default_factory=dict)
    prev_task: int | None = None
    """Index (in the same batch) of the task whose states this one starts from."""


Done = Callable[[Task, tuple[Any, Any, Any]], None]
StageDone = Callable[[Task, str, Any, Any, dict[str, Any]], None]


class InProcessBackend:
    """Runs tasks one after the other in this process; stages are recorded as they finish."""

    name = "inprocess"

    def __init__(self, **run_kwargs: Any) -> None:
        self.run_kwargs = run_kwargs

    def run(self, tasks: list[Task], on_done: Done, on_stage: StageDone | None = None) -> None:
        from mindscope.sweeps.runner import run_checkpoint

        results: list[Any] = [None] * len(tasks)
        for i, t in enumerate(tasks):
            prev = results[t.prev_task] if t.prev_task is not None else None
            cb = None
            if on_stage is not None:
                cb = lambda s, df, st, info, t=t: on_stage(t, s, df, st, info)  # noqa: E731
            results[i] = run_checkpoint(
                t.ckpt,
                t.stages,
                prev_states=t.prev_states,
                prev_result=prev,
                on_stage=cb,
                **self.run_kwargs,
            )
            on_done(t, results[i])

    def close(self) -> None:
        """Nothing to release."""


def check_address(address: str, timeout: float = 5.0) -> None:
    """Raise a one-line :class:`MindscopeError` when ``host:port`` does not answer."""
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
            f"Ray address {address} does not answer ({exc.strerror or type(exc).__name__}); "
            "finished checkpoints are kept in the sweep folder"
        ) from None


class RayBackend:
    """One Ray task per checkpoint on a local Ray instance (``num_cpus``) or a cluster."""

    name = "ray"

    def __init__(self, address: str | None, num_cpus: int, **run_kwargs: Any) -> None:
        from mindscope.extras import require

        require("ray", what="--backend ray")
        import ray

        self.ray = ray
        self.run_kwargs = run_kwargs
        env = {
            k: os.environ[k]
            for k in ("MINDSCOPE_HOME", "MINDSCOPE_STORE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
            if k in os.environ
        }
        from mindscope.paths import home

        env["MINDSCOPE_HOME"] = str(home())  # one place for organisms: never trained on a node
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(
            [pkg_root, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]
        )
        env["TOKENIZERS_PARALLELISM"] = "false"
        # one task = one CPU = ``threads`` torch threads; idle OpenMP threads sleep instead of
        # spinning on the cores the other worker needs
        n_threads = str(int(run_kwargs.get("threads", 1)))
        env.update(OMP_NUM_THREADS=n_threads, MKL_NUM_THREADS=n_threads, OMP_WAIT_POLICY="PASSIVE")
        self._started = False
        if ray.is_initialized():
            pass
        elif address:
            check_address(address)
            try:
                ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
            except Exception as exc:  # noqa: BLE001 - Ray raises many types here
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise MindscopeError(f"cannot join Ray at {address}: {first[:200]}") from None
            self._started = True
        else:
            # a local instance inherits this process's environment: setting it here (and not
            # as a runtime_env) lets the tasks use the workers Ray pre-starts with the instance
            # instead of starting new ones for a different runtime environment
            saved = {k: os.environ.get(k) for k in env}
            os.environ.update(env)
            try:
                ray.init(
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    log_to_driver=False,
                    configure_logging=False,
                )
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            self._started = True
        from mindscope.sweeps.runner import run_checkpoint

        # a task reserves as many CPUs as it runs torch threads: never more threads than cores
        decorate: Any = ray.remote(num_cpus=max(1, int(n_threads)), max_retries=0)
        self._remote: Any = decorate(run_checkpoint)

    def run(self, tasks: list[Task], on_done: Done, on_stage: StageDone | None = None) -> None:
        ray = self.ray
        refs: list[Any] = []
        for t in tasks:
            prev = refs[t.prev_task] if t.prev_task is not None else None
            refs.append(
                self._remote.remote(
                    t.ckpt,
                    t.stages,
                    prev_states=t.prev_states,
                    prev_result=prev,
                    **self.run_kwargs,
                )
            )
        pending = {r: i for i, r in enumerate(refs)}
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for r in ready:
                    i = pending.pop(r)
                    try:
                        res = ray.get(r)
                    except ray.exceptions.RayTaskError as exc:
                        cause = getattr(exc, "cause", None)
                        if isinstance(cause, MindscopeError):
                            raise type(cause)(str(cause).splitlines()[0]) from None
                        if isinstance(cause, BaseException):
                            raise cause from None
                        raise
                    on_done(tasks[i], res)
        finally:
            for r in pending:
                ray.cancel(r, force=True)

    def close(self) -> None:
        """Shut down the Ray connection this backend opened."""
        if self._started:
            self.ray.shutdown()
            self._started = False


def make_backend(name: str, address: str | None, num_cpus: int, **run_kwargs: Any) -> Any:
    """The backend called ``name`` (``"inprocess"`` or ``"ray"``)."""
    if name == "ray" or address:
        return RayBackend(address, num_cpus, **run_kwargs)
    if name != "inprocess":
        raise MindscopeError(f"unknown backend {name!r}; use inprocess or ray")
    return InProcessBackend(**run_kwargs)
