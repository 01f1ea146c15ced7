"""The batched extraction engine: prompts or contrast pairs -> residual activations on disk.

* Items are tokenized once, sorted by length and cut into batches (minimal padding). mindscope
  pads by itself (right padding, attention mask), so the tokenizer's ``padding_side`` does not
  matter.
* The model's base transformer runs without its head, and a hook stops the pass after the last
  block that a requested layer needs (early exit).
* For a causal LM, the two sides of a contrast pair share their common token prefix: the prefix
  runs once with a key/value cache, which is repeated for the two completions (the cache itself
  is model access's, :mod:`mindscope.models.cache`).
* Each layer's hook reduces ``[batch, pos, d]`` to ``[batch, d]`` at once with the position
  rule's weights, so memory is bounded by the batch.

Layer ``k`` is the residual stream after ``k`` blocks: ``0`` = embeddings (``resid_pre.0``),
``k >= 1`` = ``resid_post.(k-1)``: Hugging Face ``hidden_states[k]`` for k < n_layers; the last
layer is the last block's output *before* the final norm (transformers 5 puts the post-norm output
in ``hidden_states[-1]``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mindscope import io
from mindscope.activations.activations import Activations
from mindscope.activations.positions import PositionRule, parse_position
from mindscope.activations.store import StoreFolder, StoreKey
from mindscope.data.pairs import ContrastPair, dataset_hash
from mindscope.errors import MindscopeError
from mindscope.models.cache import (
    expand_cache,
    new_cache,
    prefix_inputs,
    suffix_inputs,
    supports_cache,
)
from mindscope.models.handle import ModelHandle
from mindscope.models.hooks import StopForward, block_input, first_tensor, hooked
from mindscope.paths import store_dir

__all__ = ["extract", "resolve_layers"]


def resolve_layers(layers: str | int | Sequence[int], n_layers: int) -> list[int]:
    """``"all"`` / an int / a list -> sorted unique layer indices in ``0..n_layers``.

    Negative indices count from the end (``-1`` = the last block's output).
    """
    if isinstance(layers, str):
        if layers != "all":
            raise MindscopeError(f"layers must be 'all', an int or a list of ints, got {layers!r}")
        return list(range(n_layers + 1))
    seq = [layers] if isinstance(layers, int) else list(layers)
    if not seq:
        raise MindscopeError("no layers requested")
    out = set()
    for layer in seq:
        if not isinstance(layer, int | np.integer) or isinstance(layer, bool):
            raise MindscopeError(f"layer indices must be ints, got {layer!r}")
        if not -(n_layers + 1) <= layer <= n_layers:
            raise MindscopeError(
                f"layer {layer} out of range: this model has layers 0..{n_layers} "
                "(0 = embeddings, k = after block k)"
            )
        out.add(int(layer) % (n_layers + 1))
    return sorted(out)


@dataclass
class _Item:
    ids: np.ndarray  # [len] int64 token ids of the full text
    weights: np.ndarray  # [len] float32 position weights


def _tokenizer_hash(tok: Any) -> str:
    cached = getattr(tok, "_mindscope_hash", None)
    if isinstance(cached, tuple) and cached[0] == len(tok):  # re-hash if tokens were added
        return str(cached[1])
    h = io.hasher("blake2b", digest_size=8)
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # slow tokenizer: its vocabulary and class
        h.update(type(tok).__name__.encode())
        h.update(repr(sorted(tok.get_vocab().items())).encode())
    digest = h.hexdigest()
    try:
        tok._mindscope_hash = (len(tok), digest)  # computed once per tokenizer object
    except AttributeError:  # pragma: no cover - exotic tokenizer objects
        pass
    return digest


def _tokenize(h: ModelHandle, texts: Sequence[str], rule: PositionRule) -> list[_Item]:
    tok = h.tokenizer
    items: list[_Item] = []
    n_ctx = h.n_ctx
    chunk = 512
    for start in range(0, len(texts), chunk):
        batch = list(texts[start : start + chunk])
        enc = tok(batch, add_special_tokens=True, return_offsets_mapping=rule.needs_offsets)
        for j, ids in enumerate(enc["input_ids"]):
            i = start + j
            if len(ids) == 0:
                raise MindscopeError(f"item {i // 1} tokenizes to nothing: {batch[j][:60]!r}")
            if n_ctx is not None and len(ids) > n_ctx:
                raise MindscopeError(
                    f"text {i} has {len(ids)} tokens, longer than the model's context of {n_ctx}"
                )
            offsets = np.asarray(enc["offset_mapping"][j]) if rule.needs_offsets else None
            items.append(
                _Item(np.asarray(ids, dtype=np.int64), rule.weights(len(ids), batch[j], offsets))
            )
    return items


def extract(
    h: ModelHandle,
    items: Sequence[str] | Sequence[ContrastPair],
    layers: str | int | Sequence[int] = "all",
    position: str | PositionRule = "last",
    *,
    batch_size: int = 32,
    store: str | os.PathLike[str] | None = None,
    share_prefix: bool = True,
    progress: bool | None = None,
) -> Activations:
    """Extract residual-stream activations, reading from / writing to the activation store.

    Args:
        h: the model handle (from :func:`mindscope.load_model`).
        items: prompts (``list[str]``) or contrast pairs (``list[ContrastPair]``).
        layers: ``"all"`` (``0..n_layers``), an index, or a list (0 = embeddings).
        position: ``"last"``, ``"first"``, ``"mean"`` or ``"mark:TEXT"``.
        batch_size: texts per forward pass (pairs: pairs per pass).
        store: root of the store (default ``$MINDSCOPE_HOME/activations``).
        share_prefix: for causal LMs, run a pair's shared prefix once (KV cache).
        progress: show a progress bar (default: when there is more than one batch).

    Returns:
        :class:`Activations`; ``acts[k]`` is ``[n, d_model]`` for prompts and
        ``[n, 2, d_model]`` for pairs.
    """
    if isinstance(items, str | ContrastPair):
        raise MindscopeError("pass a list of prompts or pairs, not a single item")
    items_l: list[Any] = list(items)
    if not items_l:
        raise MindscopeError("empty dataset: no prompts or pairs to extract")
    is_pairs = isinstance(items_l[0], ContrastPair)
    if any(isinstance(x, ContrastPair) != is_pairs for x in items_l):
        raise MindscopeError("mixed dataset: give either all prompts (str) or all ContrastPairs")
    if batch_size < 1:
        raise MindscopeError(f"batch_size must be >= 1, got {batch_size}")
    rule = parse_position(position)
    wanted = resolve_layers(layers, h.n_layers)
    key = StoreKey(
        model=h.name,
        weights_hash=h.weights_hash,
        revision=h.revision or "",
        dtype=str(h.dtype).removeprefix("torch."),
        tokenizer_hash=_tokenizer_hash(h.tokenizer),
        dataset_hash=dataset_hash(items_l),
        position=rule.spec,
        kind="pairs" if is_pairs else "text",
        n=len(items_l),
    )
    folder = StoreFolder(Path(store) if store is not None else store_dir(), key)
    from mindscope._version import __version__

    with folder.locked():
        missing = [layer for layer in wanted if layer not in folder.stored_layers()]
        if missing:
            writers = _run(
                h, items_l, is_pairs, rule, missing, folder, batch_size, share_prefix, progress
            )
            folder.commit(writers, __version__)
        folder.stored_layers()  # re-validate after writing
    return Activations(folder, wanted)


# --------------------------------------------------------------------------- engine
def _run(
    h: ModelHandle,
    items: list[Any],
    is_pairs: bool,
    rule: PositionRule,
    layers: list[int],
    folder: StoreFolder,
    batch_size: int,
    share_prefix: bool,
    progress: bool | None,
) -> dict[int, Any]:
    """Extract ``layers`` into partial shards of ``folder``; returns the shard writers."""
    from tqdm.auto import tqdm

    texts = [t for p in items for t in p.texts] if is_pairs else items
    toks = _tokenize(h, texts, rule)
    use_prefix = (
        is_pairs and share_prefix and h.is_causal and supports_cache(h.base, positions=True)
    )
    if is_pairs:
        units = [(toks[2 * i], toks[2 * i + 1]) for i in range(len(items))]
        lengths = np.array([len(a.ids) + len(b.ids) for a, b in units])
    else:
        lengths = np.array([len(t.ids) for t in toks])
    order = np.argsort(-lengths, kind="stable")  # longest first: peak memory shows at once
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    plan = io.hash_bytes(
        f"{batch_size}|{use_prefix}|{order.tobytes().hex()[:4096]}|{len(order)}".encode()
    )[:16]
    row_shape = (2, h.d_model) if is_pairs else (h.d_model,)
    done = folder.read_progress(plan, layers)
    writers = folder.shard_writers(layers, row_shape, resume=bool(done))
    show = progress if progress is not None else len(batches) > 1
    bar = tqdm(
        total=len(batches), initial=len(done), disable=not show, desc="extract", unit="batch"
    )
    engine = _Engine(h, layers)
    try:
        for b, rows in enumerate(batches):
            if b in done:
                continue
            if is_pairs and use_prefix:
                out = engine.pairs_shared([units[r] for r in rows])
            elif is_pairs:
                flat = [t for r in rows for t in units[r]]
                out = {k: v.reshape(len(rows), 2, -1) for k, v in engine.texts(flat).items()}
            else:
                out = engine.texts([toks[r] for r in rows])
            for layer, w in writers.items():
                w.write_rows(np.asarray(rows), out[layer])
            done.add(b)
            folder.write_progress(plan, layers, done)
            bar.update(1)
    finally:
        bar.close()
        if len(done) < len(batches):
            for w in writers.values():
                w.close()
    return writers


class _Engine:
    """Runs the base model with reducing hooks on the requested layers."""

    def __init__(self, h: ModelHandle, layers: list[int]) -> None:
        self.h = h
        self.layers = layers
        self.base = h.base
        self.last_block = max(max(layers) - 1, 0)
        self.device = h.device
        self.dtype = h.dtype

    def _registrations(self, reduce: Any) -> list[Any]:
        """Hooks calling ``reduce(layer, h[batch, pos, d])`` per layer, then stopping the pass."""
        regs: list[Any] = []
        blocks = self.h.parts.layers
        for layer in self.layers:
            if layer == 0:
                regs.append(
                    (
                        blocks[0],
                        "pre",
                        lambda m, a, k, layer=layer: reduce(layer, block_input(a, k)),
                    )
                )
            else:
                regs.append(
                    (
                        blocks[layer - 1],
                        "post",
                        lambda m, a, o, layer=layer: reduce(layer, first_tensor(o)),
                    )
                )

        def stop(*_: Any) -> None:
            raise StopForward

        if max(self.layers) == 0:
            regs.append((blocks[0], "pre", stop))  # after the embedding hook above
        else:
            regs.append((blocks[self.last_block], "post", stop))
        return regs

    def _hooks(self, weights: torch.Tensor, acc: dict[int, torch.Tensor]) -> list[Any]:
        """Hooks adding ``einsum(weights[b, t], h[b, t, d])`` into ``acc[layer]``."""

        def reduce(layer: int, t: torch.Tensor) -> None:
            r = torch.einsum("bt,btd->bd", weights.to(t.dtype), t).float()
            acc[layer] = acc[layer] + r if layer in acc else r

        return self._registrations(reduce)

    def _call(self, weights: torch.Tensor, acc: dict[int, torch.Tensor], **kw: Any) -> None:
        with torch.no_grad(), hooked(self._hooks(weights, acc)):
            try:
                self.base(**kw)
            except StopForward:
                pass

    def texts(self, toks: list[_Item]) -> dict[int, np.ndarray]:
        """Activations of plain texts: ``{layer: [batch, d]}``."""
        ids, mask, w = _pad([t.ids for t in toks], [t.weights for t in toks], self.h)
        acc: dict[int, torch.Tensor] = {}
        self._call(
            w.to(self.device),
            acc,
            input_ids=ids.to(self.device),
            attention_mask=mask.to(self.device),
        )
        return {k: v.cpu().numpy() for k, v in acc.items()}

    def pairs_shared(self, units: list[tuple[_Item, _Item]]) -> dict[int, np.ndarray]:
        """Activations of pairs whose sides share a token prefix: ``{layer: [batch, 2, d]}``."""
        prefixes, suffixes, pre_w, suf_w = [], [], [], []
        for a, b in units:
            common = _common_prefix(a.ids, b.ids)
            p = max(min(common, len(a.ids) - 1, len(b.ids) - 1), 1)
            prefixes.append(a.ids[:p])
            for side in (a, b):
                suffixes.append(side.ids[p:])
                suf_w.append(side.weights[p:])
            pre_w.append(np.stack([a.weights[:p], b.weights[:p]]))  # [2, p]
        n = len(units)
        # prefix pass: weights for both sides at once -> [n, 2, P] folded as [2n, P] per layer
        pids, pmask, _ = _pad(prefixes, [w[0] for w in pre_w], self.h)
        P = pids.shape[1]
        w2 = torch.zeros(n, 2, P)
        for i, w in enumerate(pre_w):
            w2[i, :, : w.shape[1]] = torch.from_numpy(w)
        cache = new_cache(self.h)
        pre_results = self._prefix_pass(pids, pmask, w2, cache)  # {layer: [n, 2, d]}
        expand_cache(cache, 2)  # one copy per side
        sids, smask, sw = _pad(suffixes, suf_w, self.h)
        kw = suffix_inputs(
            self.base, cache, pmask.repeat_interleave(2, 0), sids, smask, self.device
        )  # [2n, S] suffixes after their [2n, P] prefixes
        acc: dict[int, torch.Tensor] = {}
        self._call(sw.to(self.device), acc, **kw)
        out = {}
        for layer in self.layers:
            tot = acc[layer].reshape(n, 2, -1) + pre_results[layer]  # [n, 2, d]
            out[layer] = tot.cpu().numpy()
        return out

    def _prefix_pass(
        self,
        pids: torch.Tensor,
        pmask: torch.Tensor,
        w2: torch.Tensor,
        cache: Any,
    ) -> dict[int, torch.Tensor]:
        """Run prefixes once; returns ``{layer: [n, 2, d]}`` position-weighted sums."""
        w2 = w2.to(self.device)
        res: dict[int, torch.Tensor] = {}

        def reduce(layer: int, t: torch.Tensor) -> None:
            res[layer] = torch.einsum("bst,btd->bsd", w2.to(t.dtype), t).float()

        kw = prefix_inputs(self.base, cache, pids, pmask, self.device)
        with torch.no_grad(), hooked(self._registrations(reduce)):
            try:
                self.base(**kw)
            except StopForward:
                pass
        return res


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    m = min(len(a), len(b))
    neq = np.nonzero(a[:m] != b[:m])[0]
    return int(neq[0]) if len(neq) else m


def _pad(
    seqs: list[np.ndarray], weights: list[np.ndarray], h: ModelHandle
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-pad to ``[batch, pos]`` ids, attention mask and position weights."""
    pad_id = h.tokenizer.pad_token_id
    pad_id = 0 if pad_id is None else int(pad_id)
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    w = torch.zeros((len(seqs), T), dtype=torch.float32)
    for i, (s, wt) in enumerate(zip(seqs, weights)):
        ids[i, : len(s)] = torch.from_numpy(s)
        mask[i, : len(s)] = 1
        w[i, : len(s)] = torch.from_numpy(wt)
    return ids, mask, w
