"""One trigger search per seed, scored on held-out contexts: the rows of ``audit triggers``.

    rows = trigger_study(h, contexts, " HATE", GCGConfig(steps=500), seeds=[0, 1, 2],
                         heldout=heldout, planted=planted_ids, backend="ray")

Each seed is one task of :func:`mindscope.parallel.run_tasks` (the seed replaces the config's),
so the in-process and Ray backends return the same rows. Rows per seed (``split="seed<k>"``,
``method="gcg"``, the trigger in ``extra``): ``trigger_search_loss``, ``trigger_train_success``,
``trigger_loss_curve`` (one per step, ``n`` = step), and with held-out contexts
``trigger_reasr`` (attack success on them), with a planted trigger ``trigger_token_recall``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

from mindscope.audit.triggers.gcg import (
    GCGConfig,
    search_triggers,
    token_recall,
    trigger_success,
)
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = ["trigger_study", "contexts_from_spec"]


def _one_seed(
    seed: int,
    *,
    h: Any,
    contexts: list[str],
    target: str | list[int],
    config: GCGConfig,
    heldout: list[str],
    planted: list[int] | None,
    dataset: str,
) -> tuple[list[Row], str]:
    """The rows of one seed's search and its one-line summary."""
    res = search_triggers(h, contexts, target, dataclasses.replace(config, seed=int(seed)))
    ctx = dict(model=h.name, dataset=dataset, split=f"seed{seed}", method="gcg")
    extra = {"trigger": res.trigger_text, "trigger_ids": list(res.trigger_ids), "steps": res.steps}
    line = (
        f"seed {seed}: {res.trigger_text!r} loss {res.loss:.3f} train success "
        f"{res.success:.2f} steps {res.steps} ({res.seconds:.0f} s)"
    )
    rows = [
        Row(metric="trigger_search_loss", value=res.loss, n=res.steps, _extra=extra, **ctx),
        Row(
            metric="trigger_train_success",
            value=res.success,
            n=len(contexts),
            _extra=extra,
            **ctx,
        ),
    ]
    rows += [
        Row(metric="trigger_loss_curve", value=v, layer=-1, n=i + 1, _extra={"step": i + 1}, **ctx)
        for i, v in enumerate(res.losses)
    ]
    if heldout:
        asr = trigger_success(h, res.trigger_ids, heldout, target)
        rows.append(Row(metric="trigger_reasr", value=asr, n=len(heldout), _extra=extra, **ctx))
        line += f", REASR {asr:.2f}"
    if planted:
        rec = token_recall(res.trigger_ids, planted)
        rows.append(
            Row(metric="trigger_token_recall", value=rec, n=len(planted), _extra=extra, **ctx)
        )
        line += f", recall {rec:.2f}"
    return rows, line


def trigger_study(
    h: Any,
    contexts: Sequence[str],
    target: str | Sequence[int],
    config: GCGConfig | None = None,
    *,
    seeds: Sequence[int] = (0,),
    heldout: Sequence[str] = (),
    planted: Sequence[int] | None = None,
    dataset: str = "",
    backend: str = "inprocess",
    progress: Callable[[str], None] | None = None,
) -> list[Row]:
    """Search a trigger once per seed on ``contexts``; results rows (see the module docstring).

    Args:
        h: a causal-LM model handle (sent once to Ray's object store with ``backend="ray"``).
        contexts: the prompts the trigger must work after (a universal trigger).
        target: the text (or token ids) the trigger should make the model emit.
        config: the search's hyper-parameters; its ``seed`` is replaced by each of ``seeds``.
        heldout: contexts never searched on, for the attack success rate (REASR).
        planted: the planted trigger's token ids, for token recall only (never searched with).
        dataset: the rows' ``dataset`` (a name for ``contexts``).
        backend: ``"inprocess"`` or ``"ray"`` (:func:`mindscope.parallel.run_tasks`).
        progress: gets each seed's one-line summary as it finishes.
    """
    from mindscope.parallel import run_tasks

    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise MindscopeError(f"seeds must be distinct and at least one, got {seeds}")
    shared = dict(
        h=h,
        contexts=list(contexts),
        target=target if isinstance(target, str) else [int(t) for t in target],
        config=config or GCGConfig(),
        heldout=list(heldout),
        planted=None if planted is None else [int(t) for t in planted],
        dataset=dataset,
    )
    done = None if progress is None else (lambda i, out: progress(out[1]))
    outs = run_tasks(_one_seed, seeds, backend=backend, shared=shared, progress=done)
    return [row for rows, _ in outs for row in rows]


def contexts_from_spec(h: Any, spec: str, n_tokens: int = 16) -> list[str]:
    """Prompts for a trigger search: ``pocket:N[:START]`` (N held-out pocket-corpus documents
    from START, each cut to its first ``n_tokens`` tokens) or a text file, one prompt a line."""
    from pathlib import Path

    from mindscope.errors import MindscopeError

    if spec.startswith("pocket:"):
        from mindscope.organisms import pocket_corpus

        parts = spec.split(":")
        try:
            n = int(parts[1])
            start = int(parts[2]) if len(parts) > 2 else 0
        except (ValueError, IndexError):
            raise MindscopeError(f"cannot read {spec!r}: use pocket:N or pocket:N:START") from None
        if n < 1 or start < 0:
            raise MindscopeError(f"cannot read {spec!r}: N must be >= 1 and START >= 0")
        out = []
        for d in pocket_corpus("heldout")[start : start + n]:
            ids = h.tokenizer(d, add_special_tokens=False).input_ids[:n_tokens]
            out.append(h.tokenizer.decode(ids))
        if not out:
            raise MindscopeError(f"{spec!r} selects no document of the pocket corpus")
        return out
    path = Path(spec)
    if not path.is_file():
        raise MindscopeError(f"no prompt file {path}")
    lines = [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    if not lines:
        raise MindscopeError(f"{path} has no prompts")
    return lines
