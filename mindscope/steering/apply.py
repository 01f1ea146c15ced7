"""Apply a steering vector during forward passes and generation, with explicit positions.

Position semantics (``positions``):

* ``"all"``: every real token (pads never);
* ``"prompt"``: only the prompt's tokens;
* ``"generated"``: only tokens the model generated. The vector is added at a token's own
  position, so the *first* generated token (predicted from the last prompt position) is never
  steered by ``"generated"``; steering changes generation from the second token on.

Padding: :func:`generate` takes ``padding="right"`` or ``"left"``; positions are counted from
each row's first real token (``position_ids`` from the attention mask), so both paddings give
the same tokens, and pads are never steered.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.steering.read import pad_batch
from mindscope.steering.vector import SteeringVector

__all__ = ["steering", "generate", "STEER_POSITIONS"]

STEER_POSITIONS = ("all", "prompt", "generated")


def _multiplier(m: float) -> float:
    m = float(m)
    if not math.isfinite(m):
        raise MindscopeError(f"steering multiplier must be finite, got {m}")
    return m


@contextmanager
def steering(
    h: Any,
    vector: SteeringVector,
    multiplier: float = 1.0,
    *,
    mask: torch.Tensor | None = None,
) -> Iterator[None]:
    """Add ``multiplier * vector`` at the vector's site during forward passes in the block.

    Args:
        h: the model the vector was read from (hash and width are checked).
        vector: the :class:`SteeringVector`.
        multiplier: its coefficient (finite).
        mask: ``[batch, pos]`` where to add it (1/True) in the next forward passes; ``None``:
            every position. Build it with the attention mask so that pads are not steered.
    """
    vector.check_model(h)
    m = _multiplier(multiplier)
    v = vector.vector
    ready: dict[Any, torch.Tensor] = {}  # the addition, built once per (device, dtype, shape)

    def fn(x: torch.Tensor) -> torch.Tensor:
        key = (x.device, x.dtype, None if mask is None else tuple(x.shape[:2]))
        add = ready.get(key)
        if add is None:
            add = (m * v).to(device=x.device, dtype=x.dtype)  # [d]
            if mask is not None:
                if tuple(mask.shape) != tuple(x.shape[:2]):
                    raise MindscopeError(
                        f"steering mask is {tuple(mask.shape)}, the forward pass "
                        f"{tuple(x.shape[:2])}"
                    )
                add = mask.to(device=x.device, dtype=x.dtype)[..., None] * add  # [b, pos, d]
            ready[key] = add
        return x + add

    with h.edit({vector.site: fn}):
        yield


def generate(
    h: Any,
    prompts: Sequence[str],
    max_new_tokens: int = 16,
    *,
    vector: SteeringVector | None = None,
    multiplier: float = 1.0,
    positions: str = "all",
    padding: str = "right",
) -> list[list[int]]:
    """Greedy generation, optionally steered; returns the generated token ids of each prompt.

    Each step runs the whole sequence through :meth:`ModelHandle.forward` (no key/value cache:
    the steering mask is then exact at every position, at quadratic cost; for short texts).

    Args:
        prompts: the prompts (tokenized as :meth:`ModelHandle.encode` does).
        max_new_tokens: tokens generated per prompt.
        vector, multiplier: the steering (``None``: unsteered).
        positions: ``"all"``, ``"prompt"`` or ``"generated"`` (module docstring).
        padding: ``"right"`` or ``"left"``.
    """
    if positions not in STEER_POSITIONS:
        raise MindscopeError(f"positions must be one of {STEER_POSITIONS}, got {positions!r}")
    if max_new_tokens < 1:
        raise MindscopeError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    ids = h.encode(list(prompts))
    x0, m0 = pad_batch(h, ids, padding)
    b, t0 = x0.shape
    total = t0 + max_new_tokens
    pad = int(h.tokenizer.pad_token_id or 0)
    x = torch.full((b, total), pad, dtype=torch.long)
    am = torch.zeros((b, total), dtype=torch.long)
    x[:, :t0], am[:, :t0] = x0, m0
    is_prompt = am.bool().clone()  # [b, total]
    cur = m0.sum(1) if padding == "right" else torch.full((b,), t0)  # next write index
    rows = torch.arange(b)
    out: list[list[int]] = [[] for _ in range(b)]
    for _ in range(max_new_tokens):
        width = int(cur.max())
        xs, ms = x[:, :width], am[:, :width]
        pos_ids = (ms.cumsum(-1) - 1).clamp(min=0)  # [b, width]
        if positions == "all":
            smask = ms.bool()
        elif positions == "prompt":
            smask = is_prompt[:, :width]
        else:
            smask = ms.bool() & ~is_prompt[:, :width]
        if vector is None:
            logits = h.forward(xs, attention_mask=ms, position_ids=pos_ids)
        else:
            with steering(h, vector, multiplier, mask=smask):
                logits = h.forward(xs, attention_mask=ms, position_ids=pos_ids)
        nxt = logits[rows, (cur - 1).to(logits.device)].argmax(-1).cpu()
        x[rows, cur], am[rows, cur] = nxt, 1
        cur = cur + 1
        for i in range(b):
            out[i].append(int(nxt[i]))
    return out
