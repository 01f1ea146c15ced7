"""Run the stages of one checkpoint: what an in-process loop or a Ray task executes.

The checkpoint's files are re-hashed before loading (they must match the hash the sweep
planned with), the model is loaded through one adapter (:func:`load_checkpoint`), forward
passes of its base transformer are counted, and every row is stamped with the checkpoint's
provenance (:func:`stamp`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from mindscope.errors import ModelLoadError

__all__ = ["load_checkpoint", "stamp", "run_checkpoint", "RANDOM_INIT"]

RANDOM_INIT = "random-init"
"""Revision name of the random-init control."""


def load_checkpoint(ckpt: Mapping[str, Any], device: str, seed: int = 0) -> Any:
    """A :class:`~mindscope.ModelHandle` for a checkpoint dict (see ``Checkpoint.to_dict``).

    Local folders and hub revisions load with :func:`mindscope.load_model`; the handle is named
    after the series (``organism:NAME``, the folder or repo) with the checkpoint's revision.
    ``revision == "random-init"`` builds a model of the same config with fresh random weights.
    """
    from mindscope.models import load_model

    rev, path, repo = ckpt["revision"], ckpt.get("path"), ckpt["repo"]
    if rev == RANDOM_INIT:
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        from mindscope.models import wrap_model

        src = ckpt["config_from"]
        config = AutoConfig.from_pretrained(src["path"] or src["repo"])
        torch.manual_seed(seed + 100_003)  # not the seed organisms initialise with
        model = AutoModelForCausalLM.from_config(config)
        tok = AutoTokenizer.from_pretrained(src["path"] or src["repo"])
        h = wrap_model(model.to(device), tok, name=repo, revision=RANDOM_INIT)
    elif path is not None:
        h = load_model(path, device=device)
        h.name, h.revision = repo, rev
    else:
        h = load_model(repo, revision=rev, device=device)
    return h


def stamp(
    df: pd.DataFrame, *, model: str, revision: str, step: int, weights_hash: str
) -> pd.DataFrame:
    """Provenance on every row through the one stamp of :func:`mindscope.results.stamp`
    (``model``, ``revision``, ``step``, ``weights_hash`` columns; the hash also in ``extra``
    for tables read by older code)."""
    from mindscope.results import stamp as stamp_rows
    from mindscope.results import with_extra

    out = stamp_rows(df, model=model, revision=revision, step=step, weights_hash=weights_hash)
    return with_extra(out, weights_hash=weights_hash)


def run_checkpoint(
    ckpt: Mapping[str, Any],
    stages: list[tuple[str, dict[str, Any]]],
    *,
    seed: int,
    prev_states: Mapping[str, Any] | None = None,
    prev_result: Any = None,
    threads: int = 1,
    device: str = "cpu",
    store: str | None = None,
    on_stage: Callable[[str, pd.DataFrame, Any, dict[str, Any]], None] | None = None,
) -> tuple[dict[str, pd.DataFrame], dict[str, Any], dict[str, Any]]:
    """Run ``stages`` (``[(name, config dict)]``) on one checkpoint.

    Args:
        ckpt: the checkpoint (``Checkpoint.to_dict()``, plus ``config_from`` for the control).
        prev_states: ``{stage: state}`` of the previous checkpoint (warm starts).
        prev_result: the previous checkpoint's whole result (a Ray task's output), whose states
            override ``prev_states``.
        threads: torch threads (set for the call, restored after).
        on_stage: called with ``(stage, rows, state, info)`` as each stage finishes.

    Returns:
        ``(rows by stage, state by stage, stats)``; ``stats`` has ``loads``, ``forwards``,
        ``seconds`` per stage, ``load_seconds``, ``cpu_seconds`` (this process's CPU time for the
        task), the worker's ``pid`` and the wall-clock
        ``started`` / ``finished`` times (``time.time()``; for profiling backends).
    """
    import torch

    from mindscope.analyses import run_stage
    from mindscope.sweeps.series import checkpoint_hash

    states: dict[str, Any] = dict(prev_states or {})
    if prev_result is not None:
        states.update(prev_result[1])
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    rows: dict[str, pd.DataFrame] = {}
    out_states: dict[str, Any] = {}
    stats: dict[str, Any] = {
        "loads": 0,
        "forwards": 0,
        "seconds": {},
        "pid": os.getpid(),
        "started": time.time(),
    }
    cpu0 = time.process_time()
    try:
        want = ckpt.get("weights_hash", "")
        if ckpt.get("path") and want:
            got = checkpoint_hash(ckpt["path"])
            if got != want:
                raise ModelLoadError(
                    f"checkpoint {ckpt['path']} changed since the sweep hashed it ({got} != {want})"
                )
        t0 = time.perf_counter()
        h = load_checkpoint(ckpt, device, seed)
        stats["loads"] += 1
        stats["load_seconds"] = time.perf_counter() - t0
        weights_hash = h.weights_hash if ckpt["revision"] == RANDOM_INIT else want
        weights_hash = weights_hash or h.weights_hash
        counter = [0]

        def count(_mod: Any, _args: Any) -> None:
            counter[0] += 1

        hook = h.base.register_forward_pre_hook(count)
        try:
            for name, cfg_dict in stages:
                t1 = time.perf_counter()
                # every stage starts from the same seeded random state, whatever ran before it
                # (in this process, another process or a Ray worker): identical results
                out = run_stage(name, h, cfg_dict, seed=seed, state=states.get(name), store=store)
                df, state = out.rows, out.state
                secs = time.perf_counter() - t1
                df = stamp(
                    df,
                    model=ckpt["repo"],
                    revision=ckpt["revision"],
                    step=ckpt["step"],
                    weights_hash=weights_hash,
                )
                rows[name] = df
                out_states[name] = state
                stats["seconds"][name] = secs
                if on_stage is not None:
                    on_stage(name, df, state, {"seconds": secs, "forwards": counter[0]})
        finally:
            hook.remove()
        stats["forwards"] = counter[0]
        stats["finished"] = time.time()
        stats["cpu_seconds"] = time.process_time() - cpu0
    finally:
        torch.set_num_threads(old_threads)
    return rows, out_states, stats
