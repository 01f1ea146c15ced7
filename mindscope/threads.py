"""The thread policy: share the machine with other jobs instead of fighting them.

Two things make a CPU run collapse beside another process: OpenMP worker threads that spin
while waiting for work (``OMP_WAIT_POLICY=ACTIVE``-like behaviour) and a thread count equal to
every core even when other jobs already use them. The policy here:

* :func:`prepare` (called by the ``mindscope`` command before anything imports torch) sets
  ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep) and, unless the user set it,
  ``OMP_NUM_THREADS`` to :func:`default_threads`; both only as defaults (``setdefault``).
* :func:`default_threads` is the number of cores this process may use
  (``os.sched_getaffinity``) minus the load other processes put on them (``os.getloadavg``,
  1-minute), at least 1. ``MINDSCOPE_THREADS`` overrides it.
* :func:`resolve` turns a ``--threads`` value (``None``: the default) into a count, used by
  :func:`mindscope.runs.run_pipeline` and every long command.

OpenMP reads ``OMP_WAIT_POLICY`` once, when torch initialises it, so :func:`prepare` must run
before ``import torch``; in a Python session set the variable before importing mindscope.
"""

from __future__ import annotations

import math
import os
import sys

from mindscope.errors import MindscopeError

__all__ = ["prepare", "usable_cores", "free_cores", "default_threads", "resolve", "apply"]


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def free_cores(load: float | None = None) -> int:
    """Usable cores not busy with other work: ``floor(cores - load + 0.5)``, at least 1.

    Args:
        load: the run-queue load to subtract (default: the 1-minute load average).
    """
    cores = usable_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):
            load = 0.0
    return max(1, min(cores, math.floor(cores - load + 0.5)))


def default_threads() -> int:
    """The thread count a run uses when not told: ``MINDSCOPE_THREADS``, else
    ``OMP_NUM_THREADS`` if the user set it, else :func:`free_cores`."""
    for var in ("MINDSCOPE_THREADS", "OMP_NUM_THREADS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise MindscopeError(f"{var} must be a positive int, got {raw!r}") from None
            if value < 1:
                raise MindscopeError(f"{var} must be a positive int, got {raw!r}")
            return value
    return free_cores()


def prepare() -> None:
    """Set the OpenMP defaults (passive waiting; a thread count from the free cores) for this
    process and its children, unless already set. Effective only before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if "torch" not in sys.modules:
        os.environ.setdefault("OMP_NUM_THREADS", str(default_threads()))


def resolve(threads: int | None, flag: str = "--threads") -> int:
    """``threads`` (checked: at least 1) or :func:`default_threads` when ``None``."""
    if threads is None:
        return default_threads()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise MindscopeError(f"{flag} must be a positive int, got {threads!r}")
    return threads


def apply(threads: int | None) -> int:
    """Use :func:`resolve`\\ (``threads``) torch threads in this process; returns the count."""
    import torch

    n = resolve(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
