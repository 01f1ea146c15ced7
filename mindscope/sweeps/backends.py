"""Where checkpoint tasks run: in this process, or one Ray task per checkpoint.

Both backends run :func:`mindscope.sweeps.runner.run_checkpoint` through
:func:`mindscope.parallel.run_tasks` / :class:`mindscope.parallel.RayPool` with the same
arguments (same torch thread count), so their tables are identical. A task whose stages
warm-start from the previous checkpoint takes that task's result as an argument (``after``):
Ray chains them, independent checkpoints run in parallel. Ray is the optional ``ray`` extra,
imported only by :mod:`mindscope.parallel` and configured there through its ``runtime_env``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from mindscope import parallel
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


def _run_task(
    task: Task,
    *,
    previous: Any,
    run_kwargs: dict[str, Any],
    on_stage: StageDone | None = None,
) -> tuple[Any, Any, Any]:
    """:func:`~mindscope.sweeps.runner.run_checkpoint` on one task (``previous``: the result of
    the task it warm-starts from, or ``None``)."""
    from mindscope.sweeps.runner import run_checkpoint

    cb = None
    if on_stage is not None:
        cb = lambda s, df, st, info: on_stage(task, s, df, st, info)  # noqa: E731
    return run_checkpoint(
        task.ckpt,
        task.stages,
        prev_states=task.prev_states,
        prev_result=previous,
        on_stage=cb,
        **run_kwargs,
    )


class InProcessBackend:
    """Runs tasks one after the other in this process; stages are recorded as they finish."""

    name = "inprocess"

    def __init__(self, **run_kwargs: Any) -> None:
        self.run_kwargs = run_kwargs

    def run(self, tasks: list[Task], on_done: Done, on_stage: StageDone | None = None) -> None:
        fn = partial(_run_task, run_kwargs=self.run_kwargs, on_stage=on_stage)
        parallel.run_tasks(
            fn,
            tasks,
            after=[t.prev_task for t in tasks],
            progress=lambda i, res: on_done(tasks[i], res),
        )

    def close(self) -> None:
        """Nothing to release."""


def check_address(address: str, timeout: float = 5.0) -> None:
    """Raise a one-line :class:`MindscopeError` when ``host:port`` does not answer."""
    try:
        parallel.check_address(address, timeout)
    except MindscopeError as exc:
        raise MindscopeError(f"{exc}; finished checkpoints are kept in the sweep folder") from None


class RayBackend:
    """One Ray task per checkpoint on a local Ray instance (``num_cpus``) or a cluster."""

    name = "ray"

    def __init__(self, address: str | None, num_cpus: int, **run_kwargs: Any) -> None:
        if address:
            check_address(address)
        self.run_kwargs = run_kwargs
        # a task reserves as many CPUs as it runs torch threads: never more threads than cores
        self.pool = parallel.RayPool(address, num_cpus, threads=int(run_kwargs.get("threads", 1)))
        self.ray = self.pool.ray

    def run(self, tasks: list[Task], on_done: Done, on_stage: StageDone | None = None) -> None:
        """Run ``tasks``; ``on_stage`` is not called (a worker's stages come back together)."""
        self.pool.map(
            partial(_run_task, run_kwargs=self.run_kwargs),
            tasks,
            after=[t.prev_task for t in tasks],
            progress=lambda i, res: on_done(tasks[i], res),
        )

    def close(self) -> None:
        """Shut down the Ray connection this backend opened."""
        self.pool.close()


def make_backend(name: str, address: str | None, num_cpus: int, **run_kwargs: Any) -> Any:
    """The backend called ``name`` (``"inprocess"`` or ``"ray"``)."""
    if name == "ray" or address:
        return RayBackend(address, num_cpus, **run_kwargs)
    if name != "inprocess":
        raise MindscopeError(f"unknown backend {name!r}; use inprocess or ray")
    return InProcessBackend(**run_kwargs)
