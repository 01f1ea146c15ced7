"""The thread policy: share the machine with other jobs instead of fighting them.

Two things make a CPU run collapse beside another process: OpenMP worker threads that spin
while waiting for work (``OMP_WAIT_POLICY=ACTIVE``-like behaviour) and a thread count equal to
every core even when other jobs already use them. The policy here:

* :func:`prepare` (called by the ``mindscope`` command before anything imports torch) sets
  ``OMP_WAIT_POLICY=PASSIVE`` (waiting threads sleep) and, unless the user set it,
  ``OMP_NUM_THREADS`` to :func:`default_threads`; both only as defaults (``setdefault``).
* :func:`default_threads` is the number of cores this process may use
  (``os.sched_getaffinity``) minus the cores other processes keep busy *now*
  (:func:`busy_cores`: ``/proc/stat`` sampled over a tenth of a second; the 1-minute load
  average only where that file is missing, since it lags a new neighbour by a minute), at
  least 1. ``MINDSCOPE_THREADS`` overrides it.
* A run (:func:`mindscope.runs.run_pipeline`) asks again before each stage, so a job that
  starts or ends beside it changes its thread count at the next stage.
* :func:`resolve` turns a ``--threads`` value (``None``: the default) into a count, used by
  :func:`mindscope.runs.run_pipeline` and every long command.

OpenMP reads ``OMP_WAIT_POLICY`` once, when torch initialises it, so :func:`prepare` must run
before ``import torch``; in a Python session set the variable before importing mindscope.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path

from mindscope.errors import MindscopeError

__all__ = [
    "prepare",
    "usable_cores",
    "busy_cores",
    "free_cores",
    "default_threads",
    "resolve",
    "apply",
]

AUTO_MARK = "MINDSCOPE_OMP_AUTO"
"""Set by :func:`prepare` to the ``OMP_NUM_THREADS`` it chose, so that value is not mistaken
for the user's own setting when the policy asks again."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity; ``os.cpu_count()`` where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def _cpu_times(cpus: set[int]) -> tuple[float, float] | None:
    """``(busy, total)`` jiffies summed over ``cpus`` from ``/proc/stat``; None if unreadable."""
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return None
    busy = total = 0.0
    seen = 0
    for line in lines:
        name, _, rest = line.partition(" ")
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        if int(name[3:]) not in cpus:
            continue
        fields = [float(v) for v in rest.split()[:8]]  # user nice system idle iowait irq ...
        if len(fields) < 5:
            return None
        total += sum(fields)
        busy += sum(fields) - fields[3] - fields[4]
        seen += 1
    return (busy, total) if seen else None


def busy_cores(window: float = 0.1) -> float | None:
    """Cores of this process's affinity set that are busy now: the non-idle share of their
    time in ``/proc/stat`` over ``window`` seconds, times their number (this process sleeps
    meanwhile, so the figure is other processes' use). None where ``/proc/stat`` is missing."""
    try:
        cpus = set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None
    first = _cpu_times(cpus)
    if first is None:
        return None
    time.sleep(window)
    second = _cpu_times(cpus)
    if second is None or second[1] <= first[1]:
        return None
    share = (second[0] - first[0]) / (second[1] - first[1])
    return max(0.0, min(1.0, share)) * len(cpus)


def free_cores(load: float | None = None) -> int:
    """Usable cores not busy with other work: ``floor(cores - load + 0.5)``, at least 1.

    Args:
        load: the busy cores to subtract (default: :func:`busy_cores`, else the 1-minute load
            average).
    """
    cores = usable_cores()
    if load is None:
        load = busy_cores()
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
        if var == "OMP_NUM_THREADS" and raw and raw == os.environ.get(AUTO_MARK):
            continue  # the policy's own earlier choice: ask again
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
    if "torch" not in sys.modules and "OMP_NUM_THREADS" not in os.environ:
        n = str(default_threads())
        os.environ["OMP_NUM_THREADS"] = n
        os.environ[AUTO_MARK] = n


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
