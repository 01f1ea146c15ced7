"""Exact ground truth by enumerating every input of a small distribution.

:func:`exact_table` runs the model once on every input and accumulates, for every vocabulary token
at once, the probability mass of inputs where it is the arg-max next token, and the mass where its
probability exceeds each of some thresholds. Any single-token bad output (and any arg-max token
set) then has its exact probability without running the model again. Tables are cached under
``$MINDSCOPE_HOME/audit/rare/`` as safetensors + JSON, keyed by the model's weights hash and the
distribution's content hash.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mindscope import io
from mindscope.audit.rare.bad import BadOutput
from mindscope.audit.rare.distributions import InputDistribution
from mindscope.audit.rare.engine import next_logits, next_logits_grid
from mindscope.errors import MindscopeError
from mindscope.paths import home

__all__ = ["ExactTable", "exact_table", "exact_probability", "enumerate_logits", "MAX_ENUMERATE"]

MAX_ENUMERATE = 2**26
"""Largest number of inputs :func:`exact_table` accepts."""


@dataclass(frozen=True)
class ExactTable:
    """Exact next-token outcome masses of a model under an input distribution.

    Attributes:
        argmax_mass: ``[vocab]`` float64: probability that token ``v`` is the arg-max.
        thresholds: the probability thresholds of ``above_mass``.
        above_mass: ``[len(thresholds), vocab]`` float64: probability that token ``v``'s
            next-token probability exceeds each threshold.
        n_inputs: inputs enumerated.
        seconds: time it took to compute (0 when read from the cache).
    """

    argmax_mass: torch.Tensor
    thresholds: tuple[float, ...]
    above_mass: torch.Tensor
    n_inputs: int
    seconds: float = 0.0

    def probability(self, bad: BadOutput) -> float:
        """Exact probability of ``bad`` (arg-max token sets, or one token above a threshold)."""
        bad.check_vocab(int(self.argmax_mass.shape[0]))
        if bad.threshold is None:
            return float(self.argmax_mass[list(bad.tokens)].sum())
        if len(bad.tokens) != 1 or bad.threshold not in self.thresholds:
            raise MindscopeError(
                f"the exact table has single tokens above {list(self.thresholds)} only; "
                "use exact_probability for this bad output"
            )
        return float(self.above_mass[self.thresholds.index(bad.threshold), bad.tokens[0]])


def _cache_path(h: Any, dist: InputDistribution, thresholds: Sequence[float]) -> Path:
    key = f"{h.weights_hash}-{dist.digest}-{'_'.join(f'{t:g}' for t in thresholds) or 'none'}"
    return home() / "audit" / "rare" / key


def _check_size(dist: InputDistribution) -> None:
    if dist.size > MAX_ENUMERATE:
        raise MindscopeError(
            f"{dist.size} inputs is too many to enumerate (at most {MAX_ENUMERATE})"
        )


def enumerate_logits(
    h: Any, dist: InputDistribution, batch_size: int = 8192, *, progress: bool = False
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every input of ``dist`` once through the model: yields ``(logits [b, vocab] float32,
    weight [b] float64)``, the next-token logits and the inputs' probabilities.

    Inputs are grouped by everything before the last free position, which runs once per group
    (:func:`~mindscope.audit.rare.engine.next_logits_grid`); the last free token and the suffix
    run for every input. ``progress`` shows a tqdm bar over inputs.
    """
    from tqdm.auto import tqdm

    sup_last = dist.supports()[-1]  # [T]
    t = int(sup_last.numel())
    conts = torch.cat(
        [sup_last[:, None], torch.tensor(dist.suffix, dtype=torch.long).expand(t, -1)], dim=1
    )  # [T, 1 + len(suffix)]
    logp_last = dist.probs[-1, sup_last].log()  # [T]
    bar = tqdm(total=dist.size, desc="exact", unit="input", unit_scale=True, disable=not progress)
    try:
        if dist.n_positions == 1:
            heads: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(
                [(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, dtype=torch.float64))]
            )
        else:
            head = InputDistribution(dist.probs[:-1], prefix=dist.prefix)
            heads = head.enumerate(max(1, batch_size // t))
        for x_head, logp_head in heads:
            pre = torch.cat(
                [torch.tensor(dist.prefix, dtype=torch.long).expand(x_head.shape[0], -1), x_head],
                dim=1,
            )  # [P, prefix + n_positions - 1]
            logits = next_logits_grid(h, pre, conts).cpu()  # [P, T, vocab]
            w = (logp_head[:, None] + logp_last[None, :]).exp()  # [P, T]
            bar.update(w.numel())
            yield logits.reshape(-1, logits.shape[-1]), w.reshape(-1)
    finally:
        bar.close()


def exact_table(
    h: Any,
    dist: InputDistribution,
    *,
    thresholds: Sequence[float] = (),
    batch_size: int = 8192,
    cache: bool = True,
    progress: bool = False,
) -> ExactTable:
    """Enumerate ``dist`` on ``h`` once (or read the cached result); see the module docstring."""
    _check_size(dist)
    thr = tuple(sorted(float(t) for t in thresholds))
    if any(not 0 < t < 1 for t in thr):
        raise MindscopeError(f"thresholds must be in (0, 1), got {list(thr)}")
    if dist.vocab_size != h.vocab_size:
        raise MindscopeError(
            f"input distribution is over {dist.vocab_size} tokens, the model has {h.vocab_size}"
        )
    path = _cache_path(h, dist, thr)
    if cache and (path / "table.safetensors").is_file():
        from safetensors.torch import load_file

        t = load_file(str(path / "table.safetensors"))
        meta = json.loads((path / "table.json").read_text())
        return ExactTable(t["argmax_mass"], thr, t["above_mass"], int(meta["n_inputs"]))
    t0 = time.perf_counter()
    v = dist.vocab_size
    argmax = torch.zeros(v, dtype=torch.float64)
    above = torch.zeros(len(thr), v, dtype=torch.float64)
    thr_t = torch.tensor(thr, dtype=torch.float32)
    for logits, w in enumerate_logits(h, dist, batch_size, progress=progress):
        argmax.index_add_(0, logits.argmax(-1), w)
        if thr:
            probs = torch.softmax(logits, -1)  # [b, vocab]
            for j, t in enumerate(thr_t):
                above[j] += ((probs > t).double() * w[:, None]).sum(0)
    seconds = time.perf_counter() - t0
    table = ExactTable(argmax, thr, above, dist.size, seconds)
    if cache:
        from safetensors.torch import save_file

        meta = {
            "model": h.name,
            "weights_hash": h.weights_hash,
            "dist_digest": dist.digest,
            "thresholds": list(thr),
            "n_inputs": dist.size,
            "seconds": seconds,
        }
        with io.atomic_dir(path, replace=False) as tmp:  # a table finished meanwhile is kept
            save_file({"argmax_mass": argmax, "above_mass": above}, str(tmp / "table.safetensors"))
            io.atomic_write_json(tmp / "table.json", meta, indent=1, sort_keys=False)
    return table


def exact_probability(
    h: Any, dist: InputDistribution, bad: BadOutput, *, batch_size: int = 8192
) -> float:
    """Exact probability of ``bad`` under ``dist`` by enumeration (no cache)."""
    _check_size(dist)
    bad.check_vocab(h.vocab_size)
    total = 0.0
    for x, logp in dist.enumerate(batch_size):  # the plain path: an independent check
        hit = bad.hit(next_logits(h, dist.full(x)).cpu())
        total += float(logp.exp()[hit].sum())
    return total if math.isfinite(total) else math.nan
