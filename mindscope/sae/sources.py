"""Training sources read from a model: activations at one or several sites, streamed.

:func:`activation_source` serves any :class:`mindscope.models.HookedModule` (a Hugging Face
language model's :class:`~mindscope.models.ModelHandle` with token windows as inputs, or any
``nn.Module`` with named sites). It runs the model on a *buffer* of inputs at a time, records
every requested site in the same pass, shuffles the buffer's rows (tokens) and hands them out in
batches; memory is one buffer, whatever the number of training tokens. Batch ``t`` depends only
on ``(seed, t)``, so a killed run resumes on exactly the batches it would have seen.

:func:`store_source` serves activations already in the activation store
(:func:`mindscope.extract` -> :class:`~mindscope.activations.Activations`): it reads each
batch's rows from the shards of every requested layer at once, so memory is one
batch per layer whatever the size of the shards, and batch ``t`` depends only on ``(seed, t)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from mindscope.errors import MindscopeError

__all__ = ["activation_source", "store_source", "token_windows", "site_activations"]


def token_windows(h: Any, texts: Sequence[str], seq_len: int) -> Tensor:
    """``[n_windows, seq_len]`` token ids: the texts tokenized, joined (separated by the
    tokenizer's end-of-text token when it has one) and cut into windows."""
    ids: list[int] = []
    eos = getattr(getattr(h, "tokenizer", None), "eos_token_id", None)
    for row in h.encode(list(texts), add_special_tokens=False):
        ids.extend(row)
        if eos is not None:
            ids.append(int(eos))
    n = len(ids) // seq_len
    if n == 0:
        raise MindscopeError(
            f"the texts hold {len(ids)} tokens, fewer than one window of {seq_len}"
        )
    return torch.tensor(ids[: n * seq_len]).view(n, seq_len)  # [n_windows, seq_len]


def site_activations(
    hm: Any, inputs: Tensor, sites: Sequence[str], *, batch_size: int = 32
) -> dict[str, Tensor]:
    """``{site: [rows, width]}``: every position of every input, flattened (one pass per
    ``batch_size`` inputs records all sites)."""
    parts: dict[str, list[Tensor]] = {s: [] for s in sites}
    for i in range(0, len(inputs), batch_size):
        _, got = hm.run(inputs[i : i + batch_size], sites=list(sites), stop=True)
        for s in sites:
            t = got[s].float()
            parts[s].append(t.reshape(-1, t.shape[-1]).cpu())  # [batch * pos, width]
    return {s: torch.cat(v) for s, v in parts.items()}


def activation_source(
    hm: Any,
    inputs: Tensor,
    sites: Sequence[str],
    *,
    batch_size: int = 1024,
    buffer_inputs: int = 64,
    forward_batch: int = 32,
    seed: int = 0,
) -> Callable[[int], dict[str, Tensor]]:
    """A step -> ``{site: [batch_size, width]}`` function streaming activations of ``hm``.

    Args:
        hm: a :class:`~mindscope.models.HookedModule` (or :class:`~mindscope.models.ModelHandle`).
        inputs: ``[n, ...]`` model inputs (token windows ``[n, seq_len]`` for a language model).
        sites: site names recorded in one pass.
        batch_size: rows (tokens) per training batch.
        buffer_inputs: inputs run per buffer (memory: their activations at every site).
        seed: the order of inputs (a fresh permutation per epoch) and of rows in each buffer.
    """
    n = len(inputs)
    if n == 0:
        raise MindscopeError("no inputs to train the SAE on")
    buffer_inputs = min(buffer_inputs, n)
    cache: dict[int, dict[str, Tensor]] = {}
    per_buffer: list[int] = []

    def order(i: int) -> int:
        epoch, j = divmod(i, n)
        g = torch.Generator().manual_seed(seed * 7919 + epoch)
        return int(torch.randperm(n, generator=g)[j])

    def buffer(b: int) -> dict[str, Tensor]:
        if b not in cache:
            cache.clear()
            idx = torch.tensor([order(b * buffer_inputs + i) for i in range(buffer_inputs)])
            acts = site_activations(hm, inputs[idx], sites, batch_size=forward_batch)
            rows = len(next(iter(acts.values())))
            g = torch.Generator().manual_seed(seed * 104_729 + b)
            perm = torch.randperm(rows, generator=g)
            cache[b] = {s: a[perm] for s, a in acts.items()}
        return cache[b]

    def source(step: int) -> dict[str, Tensor]:
        if not per_buffer:
            rows = len(next(iter(buffer(0).values())))
            if rows < batch_size:
                raise MindscopeError(
                    f"a buffer of {buffer_inputs} inputs holds {rows} rows, fewer than "
                    f"batch_size={batch_size}; raise buffer_inputs"
                )
            per_buffer.append(rows // batch_size)
        b, j = divmod(step, per_buffer[0])
        return {s: a[j * batch_size : (j + 1) * batch_size] for s, a in buffer(b).items()}

    return source


def store_source(
    acts: Any,
    layers: Sequence[int] | None = None,
    *,
    batch_size: int = 1024,
    seed: int = 0,
) -> Callable[[int], dict[int, Tensor]]:
    """A step -> ``{layer: [batch_size, d]}`` function reading the activation store.

    Args:
        acts: an :class:`~mindscope.activations.Activations` (``mindscope.extract(...)``); text
            shards ``[n, d]`` give ``n`` rows, contrast-pair shards ``[n, 2, d]`` give ``2 n``.
        layers: store layers served together (default: every extracted layer); the same rows
            of each, so one source trains SAEs at several layers in one pass over the store.
        batch_size: rows per batch (at most the number of rows).
        seed: the order of rows (a fresh permutation per epoch).

    Only the rows of the current batch are read from the shards, with positioned reads
    (memory: one batch per layer, plus the epoch's permutation of row indices).
    """
    import numpy as np

    chosen = list(acts.layers if layers is None else layers)
    if not chosen:
        raise MindscopeError("store_source needs at least one layer")
    missing = [layer for layer in chosen if layer not in acts.layers]
    if missing:
        raise MindscopeError(
            f"layers {missing} are not in the activation store; extracted: {acts.layers}"
        )
    files = {layer: _RowFile(acts.numpy(layer)) for layer in chosen}
    shapes = {f.shape for f in files.values()}
    if len(shapes) != 1:
        raise MindscopeError(f"the layers' shards differ in shape: {sorted(shapes)}")
    rows, width = shapes.pop()
    if rows == 0:
        raise MindscopeError("the activation store holds no rows")
    if batch_size < 1:
        raise MindscopeError(f"batch_size must be >= 1, got {batch_size}")
    b = min(batch_size, rows)
    per_epoch = rows // b
    perms: dict[int, np.ndarray] = {}

    def source(step: int) -> dict[int, Tensor]:
        epoch, i = divmod(step, per_epoch)
        if epoch not in perms:
            perms.clear()
            perms[epoch] = np.random.default_rng([seed, epoch]).permutation(rows)
        idx = perms[epoch][i * b : (i + 1) * b]
        return {layer: torch.from_numpy(f.read(idx)) for layer, f in files.items()}

    return source


class _RowFile:
    """Rows of a float32 ``.npy`` shard read with positioned reads (no memory map, so the
    process holds only the rows asked for, not the pages of the file it has touched)."""

    def __init__(self, mm: Any) -> None:
        import numpy as np

        if mm.dtype != np.float32:
            raise MindscopeError(f"activation shard {mm.filename} is {mm.dtype}, not float32")
        self.path = str(mm.filename)
        self.offset = int(mm.offset)
        self.width = int(mm.shape[-1])
        self.shape = (int(np.prod(mm.shape[:-1])), self.width)  # pairs: both sides are rows
        self.row_bytes = self.width * 4

    def read(self, idx: Any) -> Any:
        """``[len(idx), width]`` float32 rows ``idx`` (any order)."""
        import os

        import numpy as np

        order = np.argsort(idx)
        out = np.empty((len(idx), self.width), dtype=np.float32)
        fd = os.open(self.path, os.O_RDONLY)
        try:
            s = 0
            srt = idx[order]
            while s < len(srt):  # coalesce runs of consecutive rows into one read
                e = s + 1
                while e < len(srt) and srt[e] == srt[e - 1] + 1:
                    e += 1
                buf = os.pread(
                    fd, (e - s) * self.row_bytes, self.offset + int(srt[s]) * self.row_bytes
                )
                out[order[s:e]] = np.frombuffer(buf, dtype=np.float32).reshape(e - s, self.width)
                s = e
        finally:
            os.close(fd)
        return out
