"""What the model itself answers: its log-odds between the two completions of a contrast pair.

Reporters read what a model represents; this reads what it *says*, through the same forward
path (:meth:`mindscope.models.ModelHandle.forward`) and the same tokenization
(:meth:`~mindscope.models.ModelHandle.encode`, special tokens included) as extraction, so a
probe read at the prompt and the model's answer see exactly the same input ids.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError
from mindscope.models.handle import ModelHandle

__all__ = ["lm_logodds", "answer_token_ids"]


def answer_token_ids(h: ModelHandle, pairs: Sequence[ContrastPair]) -> torch.Tensor:
    """``[n, 2]`` the first token of each completion as it is tokenized after its prompt.

    When the prompt's tokens are a prefix of ``prompt + completion``'s, the completion's first
    token is the one that follows; otherwise (a tokenizer that merges across the boundary or
    appends an end token) the completion is tokenized on its own.
    """
    prompts = h.encode([p.prompt for p in pairs])
    fulls = h.encode([t for p in pairs for t in p.texts])
    out = torch.empty(len(pairs), 2, dtype=torch.long)
    for i, p in enumerate(pairs):
        pr = prompts[i]
        for side in (0, 1):
            full = fulls[2 * i + side]
            if len(full) > len(pr) and full[: len(pr)] == pr:
                out[i, side] = full[len(pr)]
            else:
                alone = h.encode([p.completions[side]], add_special_tokens=False)[0]
                if not alone:
                    raise MindscopeError(f"pair {i}: completion {side} tokenizes to nothing")
                out[i, side] = alone[0]
        if out[i, 0] == out[i, 1]:
            raise MindscopeError(
                f"pair {i}: both completions start with the same token "
                f"({p.completions[0]!r} vs {p.completions[1]!r}); the model's answer is undefined"
            )
    return out


def lm_logodds(
    h: ModelHandle, pairs: Sequence[ContrastPair], *, batch_size: int = 32
) -> torch.Tensor:
    """The model's own log-odds of completion 1 over completion 0 after each prompt.

    Args:
        h: a causal LM handle.
        pairs: the contrast pairs.
        batch_size: prompts per forward pass.

    Returns:
        ``[n]`` float64 on the CPU: ``log p(first token of side 1) - log p(side 0)`` at the
        prompt's last position.
    """
    if not h.is_causal:
        raise MindscopeError(f"{h.name} is not a causal LM; its own answers cannot be read")
    pairs = list(pairs)
    if not pairs:
        raise MindscopeError("no pairs to read the model's answers on")
    answers = answer_token_ids(h, pairs)  # [n, 2]
    encoded = h.encode([p.prompt for p in pairs])
    pad = h.tokenizer.pad_token_id if h.tokenizer.pad_token_id is not None else 0
    order = sorted(range(len(pairs)), key=lambda i: -len(encoded[i]))  # little padding
    out = torch.empty(len(pairs), dtype=torch.float64)
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        width = max(len(encoded[i]) for i in idx)
        ids = torch.full((len(idx), width), int(pad), dtype=torch.long)  # [b, T] right-padded
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        for r, i in enumerate(idx):
            ids[r, : len(encoded[i])] = torch.tensor(encoded[i])
            mask[r, : len(encoded[i])] = 1
        logits = h.forward(ids, attention_mask=mask)  # [b, T, V]
        last = logits[torch.arange(len(idx)), (mask.sum(1) - 1).to(logits.device)].float()
        lp = last.log_softmax(-1).gather(1, answers[idx].to(logits.device))  # [b, 2]
        out[idx] = (lp[:, 1] - lp[:, 0]).double().cpu()
    return out
