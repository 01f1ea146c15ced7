"""GCG-style trigger search (Zou et al. 2023): one trigger for one or many prompts.

The trigger (``n_trigger`` tokens) is placed after each prompt and followed by the target; the
loss is the mean cross-entropy of the target tokens over all prompts (a *universal* trigger
when there are several). Each step:

1. one forward + backward over all prompts with the trigger as a one-hot matrix
   ``[n_trigger, vocab]`` (``inputs_embeds = onehot @ embedding_matrix``); the gradient's top-k
   most negative entries per position are the candidate substitutions;
2. ``search_width`` candidates, each changing ``n_replace`` random positions to a random
   top-k token; candidates whose text does not re-encode to the same ids are dropped;
3. every candidate is scored on every prompt in chunks of ``batch_size`` sequences (memory is
   bounded by the chunk, never by ``search_width x prompts``); the best candidate becomes the
   trigger.

The search reads only the model, the prompts and the target, never a planted trigger.

**Stopping on held-out success.** A trigger that works on a few search prompts often does not
generalise, so by default a share ``validation`` of the prompts (the last ones) is never
optimised on: after every step the current trigger's success on them is measured, the best
trigger is the one with the highest validation success (ties: the lowest search loss), and the
search stops early (``early_stop``) once the target is the arg-max after every search *and*
every validation prompt. ``validation=0`` optimises on every prompt and stops when they all
succeed (the plain GCG rule).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mindscope.audit.rare.engine import embedding_matrix, forward_logits
from mindscope.errors import MindscopeError
from mindscope.models.cache import PrefixCache

__all__ = ["GCGConfig", "TriggerResult", "search_triggers", "trigger_success", "token_recall"]


@dataclass(frozen=True)
class GCGConfig:
    """Hyper-parameters of :func:`search_triggers`."""

    n_trigger: int = 10
    """Trigger length in tokens (ignored when ``init`` is a list of ids)."""
    steps: int = 500
    """Maximum optimisation steps."""
    search_width: int = 128
    """Candidates evaluated per step."""
    topk: int = 64
    """Substitutions kept per trigger position from the gradient."""
    n_replace: int = 1
    """Positions changed per candidate."""
    batch_size: int = 512
    """Sequences per forward pass when scoring candidates (bounds memory)."""
    init: str | tuple[int, ...] = " x"
    """Initial trigger: a text repeated to ``n_trigger`` tokens, or explicit token ids."""
    allowed_tokens: tuple[int, ...] | None = None
    """Token ids the trigger may use (default: every non-special token except the target's, so
    that a model that repeats its bad token is not "triggered" by the bad token itself)."""
    filter_retokenize: bool = True
    """Drop candidates whose decoded text re-encodes to different ids."""
    early_stop: bool = True
    """Stop when the target is the arg-max on every search and validation prompt."""
    validation: float = 0.25
    """Share of the prompts held out from the optimisation for the stopping rule and the choice
    of trigger (at least one; 0: none, the search prompts decide). Ignored with one prompt."""
    seed: int = 0
    """Seeds the candidate sampling."""
    use_prefix_cache: bool = True
    """Run the prompts once and score candidates from their key/value cache (same losses up to
    float round-off; off runs every whole sequence)."""


@dataclass(frozen=True)
class TriggerResult:
    """Outcome of a search.

    Attributes:
        trigger_ids: the best trigger found (lowest loss), token ids.
        trigger_text: its decoded text.
        loss: its loss (mean target cross-entropy over the prompts, nats).
        success: fraction of the search prompts on which the target is the arg-max.
        validation_success: the same on the validation prompts (``nan`` without them).
        n_validation: validation prompts held out of the optimisation.
        losses: the current trigger's loss after every step.
        steps: steps run.
        seconds: wall time.
    """

    trigger_ids: tuple[int, ...]
    trigger_text: str
    loss: float
    success: float
    losses: list[float] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    validation_success: float = math.nan
    n_validation: int = 0


def _encode(h: Any, text: str) -> list[int]:
    return [int(i) for i in h.tokenizer(text, add_special_tokens=False).input_ids]


class _Batch:
    """Prompts left-padded to one length, with the trigger and target slots after them."""

    def __init__(
        self,
        h: Any,
        prompts: Sequence[str],
        target: Sequence[int],
        n_trigger: int,
        use_cache: bool = True,
    ):
        ids = [_encode(h, p) for p in prompts]
        if any(len(i) == 0 for i in ids):
            raise MindscopeError("a prompt is empty after tokenization")
        self.n_prompt = max(len(i) for i in ids)
        total = self.n_prompt + n_trigger + len(target)
        n_ctx = getattr(h, "n_ctx", None)
        if isinstance(n_ctx, int) and total > n_ctx:
            raise MindscopeError(
                f"prompt + trigger + target is {total} tokens, the model takes at most {n_ctx}"
            )
        pad = 0
        self.prompt = torch.full((len(ids), self.n_prompt), pad, dtype=torch.long)
        self.mask = torch.zeros(len(ids), total, dtype=torch.long)
        for r, seq in enumerate(ids):
            self.prompt[r, self.n_prompt - len(seq) :] = torch.tensor(seq)
            self.mask[r, self.n_prompt - len(seq) :] = 1
        self.position = (self.mask.cumsum(-1) - 1).clamp(min=0)  # [prompts, total]
        self.target = torch.tensor(list(target), dtype=torch.long)
        self.n_trigger = n_trigger
        self.use_cache = use_cache

    @property
    def n(self) -> int:
        return int(self.prompt.shape[0])

    def prefix_cache(self, h: Any) -> PrefixCache | None:
        """The prompts' key/value cache (built on first use; ``None`` without one, or when
        ``use_prefix_cache`` is off)."""
        if not self.use_cache:
            return None
        if not hasattr(self, "_cache"):
            self._cache = PrefixCache.build(
                h, self.prompt, self.mask[:, : self.n_prompt], self.position[:, : self.n_prompt]
            )
        return self._cache

    def sequences(self, triggers: torch.Tensor) -> torch.Tensor:
        """Every (trigger, prompt) pair: ``[c, n_trigger]`` -> ids ``[c * prompts, total]``."""
        c = triggers.shape[0]
        p = self.prompt.repeat(c, 1)  # [c*prompts, n_prompt]
        t = triggers.repeat_interleave(self.n, 0)  # [c*prompts, n_trigger]
        y = self.target.expand(c * self.n, -1)
        return torch.cat([p, t, y], dim=1)


def _target_ce(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy ``[b]`` of the target (the last ``len(target)`` positions) and whether it
    is the arg-max at all of them ``[b]``; logits ``[b, total, vocab]``."""
    k = target.shape[0]
    pred = logits[:, -k - 1 : -1].float()  # [b, k, vocab]
    tgt = target.to(pred.device).expand(pred.shape[0], -1)
    ce = torch.nn.functional.cross_entropy(pred.transpose(1, 2), tgt, reduction="none").mean(-1)
    return ce, (pred.argmax(-1) == tgt).all(-1)


def _losses(
    h: Any, batch: _Batch, triggers: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean loss ``[c]`` over prompts and per-candidate success fraction ``[c]``.

    The prompts run once per search (their key/value cache, :class:`PrefixCache`); each
    candidate runs only its trigger and the target. Models without a cache run whole
    sequences."""
    c = triggers.shape[0]
    ces, oks = [], []
    pc = batch.prefix_cache(h)
    if pc is not None:
        n_p = batch.n_prompt
        conts = torch.cat(
            [triggers.repeat_interleave(batch.n, 0), batch.target.expand(c * batch.n, -1)], dim=1
        )  # [c*prompts, n_trigger + k]
        index = torch.arange(batch.n).repeat(c)  # [c*prompts]: candidate-major, as sequences()
        pos = batch.position[:, n_p:].repeat(c, 1)
        for s in range(0, conts.shape[0], chunk):
            logits = pc.logits(
                index[s : s + chunk],
                conts[s : s + chunk],
                pos[s : s + chunk],
                keep=len(batch.target) + 1,
            )
            ce, ok = _target_ce(logits, batch.target)
            ces.append(ce.cpu())
            oks.append(ok.cpu())
    else:
        seqs = batch.sequences(triggers)  # [c*prompts, total]
        mask = batch.mask.repeat(c, 1)
        pos = batch.position.repeat(c, 1)
        dev = h.device
        for s in range(0, seqs.shape[0], chunk):
            logits = forward_logits(
                h,
                seqs[s : s + chunk].to(dev),
                attention_mask=mask[s : s + chunk].to(dev),
                position_ids=pos[s : s + chunk].to(dev),
            )
            ce, ok = _target_ce(logits, batch.target)
            ces.append(ce.cpu())
            oks.append(ok.cpu())
    ce_all = torch.cat(ces).view(c, batch.n)
    ok_all = torch.cat(oks).view(c, batch.n).float()
    return ce_all.mean(-1), ok_all.mean(-1)


def _gradient(h: Any, batch: _Batch, trigger: torch.Tensor) -> torch.Tensor:
    """Gradient ``[n_trigger, vocab]`` of the mean loss with respect to the one-hot trigger."""
    emb = embedding_matrix(h).detach()  # [vocab, d_model]
    onehot = torch.nn.functional.one_hot(trigger.to(emb.device), emb.shape[0]).to(emb.dtype)
    onehot.requires_grad_(True)  # [n_trigger, vocab]
    dev = emb.device
    with torch.enable_grad():
        pe = emb[batch.prompt.to(dev)]  # [prompts, n_prompt, d]
        te = (onehot @ emb).expand(batch.n, -1, -1)  # [prompts, n_trigger, d]
        ye = emb[batch.target.to(dev)].expand(batch.n, -1, -1)  # [prompts, k, d]
        logits = forward_logits(
            h,
            inputs_embeds=torch.cat([pe, te, ye], dim=1),
            attention_mask=batch.mask.to(dev),
            position_ids=batch.position.to(dev),
            grad=True,
        )
        ce, _ = _target_ce(logits, batch.target)
        (g,) = torch.autograd.grad(ce.mean(), onehot)
    return g.detach().cpu()


def _allowed(h: Any, config: GCGConfig, target: Sequence[int]) -> torch.Tensor:
    v = int(h.vocab_size)
    mask = torch.zeros(v, dtype=torch.bool)
    if config.allowed_tokens is not None:
        ids = [int(t) for t in config.allowed_tokens]
        if not ids or any(not 0 <= t < v for t in ids):
            raise MindscopeError(f"allowed_tokens must be non-empty ids in [0, {v})")
        mask[ids] = True
        return mask
    mask[:] = True
    special = [int(t) for t in getattr(h.tokenizer, "all_special_ids", []) if 0 <= int(t) < v]
    mask[special] = False
    n_tok = len(h.tokenizer)
    mask[n_tok:] = False  # embedding rows past the tokenizer's vocabulary
    mask[list(target)] = False
    return mask


def _initial(h: Any, config: GCGConfig) -> torch.Tensor:
    if isinstance(config.init, tuple):
        ids = list(config.init)
    else:
        piece = _encode(h, config.init)
        if not piece:
            raise MindscopeError(f"initial trigger text {config.init!r} is empty")
        ids = (piece * config.n_trigger)[: config.n_trigger]
    if not ids:
        raise MindscopeError("the trigger needs at least one token")
    return torch.tensor(ids, dtype=torch.long)


def _retokenizes(h: Any, cands: torch.Tensor) -> torch.Tensor:
    texts = h.tokenizer.batch_decode(cands.tolist())
    enc = h.tokenizer(texts, add_special_tokens=False).input_ids
    return torch.tensor([list(e) == c for e, c in zip(enc, cands.tolist(), strict=True)])


def search_triggers(
    h: Any,
    prompts: str | Sequence[str],
    target: str | Sequence[int],
    config: GCGConfig | None = None,
    *,
    progress: Callable[[int, float, float], None] | None = None,
    **overrides: Any,
) -> TriggerResult:
    """Search for a trigger that makes ``h`` emit ``target`` after every prompt.

    Args:
        h: a causal-LM model handle.
        prompts: one prompt or several (a universal trigger); the trigger goes after each.
        target: the text (or token ids) the model should emit right after the trigger.
        config: hyper-parameters (:class:`GCGConfig`); keyword ``overrides`` replace fields.
        progress: called as ``progress(step, loss, success)`` after every step.

    Returns:
        A :class:`TriggerResult` with the best trigger (highest validation success, then lowest
        loss; see the module docstring) and the loss curve.
    """
    import dataclasses

    config = dataclasses.replace(config or GCGConfig(), **overrides)
    if not getattr(h, "is_causal", True):
        raise MindscopeError(f"{h.name} is not a causal LM")
    if config.steps < 0 or config.search_width < 1 or config.topk < 1 or config.n_replace < 1:
        raise MindscopeError("steps must be >= 0 and search_width, topk, n_replace >= 1")
    prompt_list = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompt_list:
        raise MindscopeError("search_triggers needs at least one prompt")
    tgt = _encode(h, target) if isinstance(target, str) else [int(t) for t in target]
    if not tgt:
        raise MindscopeError("the target is empty")
    bad = [t for t in tgt if not 0 <= t < h.vocab_size]
    if bad:
        raise MindscopeError(f"target token ids {bad} are not in the vocabulary")
    if not 0.0 <= config.validation < 1.0:
        raise MindscopeError(f"validation must be in [0, 1), got {config.validation}")
    n_val = 0
    if config.validation > 0 and len(prompt_list) > 1:
        n_val = min(len(prompt_list) - 1, max(1, round(config.validation * len(prompt_list))))
    search, held = prompt_list[: len(prompt_list) - n_val], prompt_list[len(prompt_list) - n_val :]
    trigger = _initial(h, config)
    batch = _Batch(h, search, tgt, len(trigger), use_cache=config.use_prefix_cache)
    vbatch = _Batch(h, held, tgt, len(trigger), use_cache=config.use_prefix_cache) if held else None
    allowed = _allowed(h, config, tgt)
    gen = torch.Generator().manual_seed(config.seed)
    t0 = time.perf_counter()

    def val_success(t: torch.Tensor) -> float:
        if vbatch is None:
            return math.nan
        return float(_losses(h, vbatch, t[None], config.batch_size)[1][0])

    def key(b: tuple[float, torch.Tensor, float, float]) -> tuple[float, float]:
        return (b[3] if vbatch is not None else 0.0, -b[0])  # validation success, then loss

    def done(b: tuple[float, torch.Tensor, float, float]) -> bool:
        return b[2] >= 1.0 and (vbatch is None or b[3] >= 1.0)

    loss_t, ok_t = _losses(h, batch, trigger[None], config.batch_size)
    best = (float(loss_t[0]), trigger.clone(), float(ok_t[0]), val_success(trigger))
    losses: list[float] = []
    step = 0
    n = len(trigger)
    topk = min(config.topk, int(allowed.sum()))
    for step in range(1, config.steps + 1):
        if config.early_stop and done(best):
            step -= 1
            break
        g = _gradient(h, batch, trigger)  # [n_trigger, vocab]
        g[:, ~allowed] = math.inf
        top = (-g).topk(topk, dim=-1).indices  # [n_trigger, topk]
        w = config.search_width
        cands = trigger.expand(w, -1).clone()  # [w, n_trigger]
        r = min(config.n_replace, n)
        pos = torch.rand(w, n, generator=gen).argsort(-1)[:, :r]  # [w, r] distinct positions
        pick = torch.randint(0, topk, (w, r), generator=gen)
        cands.scatter_(1, pos, top[pos, pick])
        if config.filter_retokenize:
            keep = _retokenizes(h, cands)
            cands = cands[keep] if keep.any() else trigger[None]
        cand_loss, cand_ok = _losses(h, batch, cands, config.batch_size)
        j = int(cand_loss.argmin())
        trigger = cands[j].clone()
        cur = float(cand_loss[j])
        losses.append(cur)
        now = (cur, trigger.clone(), float(cand_ok[j]), val_success(trigger))
        if key(now) > key(best):
            best = now
        if progress:
            progress(step, cur, float(cand_ok[j]))
    ids = tuple(int(t) for t in best[1])
    return TriggerResult(
        ids,
        h.tokenizer.decode(list(ids)),
        best[0],
        best[2],
        losses,
        step,
        time.perf_counter() - t0,
        best[3],
        n_val,
    )


def trigger_success(
    h: Any,
    trigger: Sequence[int],
    contexts: Sequence[str],
    target: str | Sequence[int],
    *,
    batch_size: int = 256,
) -> float:
    """Fraction of ``contexts`` after which ``trigger`` makes the target the arg-max at every
    target position (the Trojan Detection Challenge's attack success rate, REASR, when the
    contexts are held out from the search)."""
    tgt = _encode(h, target) if isinstance(target, str) else [int(t) for t in target]
    batch = _Batch(h, list(contexts), tgt, len(trigger))
    _, ok = _losses(h, batch, torch.tensor([list(trigger)]), batch_size)
    return float(ok[0])


def token_recall(found: Sequence[int], planted: Sequence[int]) -> float:
    """Fraction of the planted trigger's tokens that occur in the found trigger (with
    multiplicity)."""
    if not planted:
        raise MindscopeError("the planted trigger is empty")
    pool = list(found)
    hit = 0
    for t in planted:
        if t in pool:
            pool.remove(t)
            hit += 1
    return hit / len(planted)
