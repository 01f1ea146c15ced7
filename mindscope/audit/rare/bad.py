"""Bad-output specifications: which next-token outcome counts as the rare misbehaviour.

A :class:`BadOutput` is a set of token ids and a rule, read at the next position after the whole
input: ``threshold=None`` means "one of the tokens is the arg-max"; ``threshold=p`` means "the
tokens' total probability exceeds ``p``". Its :meth:`score` (the log-probability of the token set)
(the bad tokens' logit, or log-probability for a threshold) is the smooth quantity the
importance samplers tilt towards.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = ["BadOutput", "bad_output"]


@dataclass(frozen=True)
class BadOutput:
    """A rare next-token outcome.

    Attributes:
        tokens: the bad token ids (at least one).
        threshold: ``None`` for "a bad token is the arg-max"; else a probability in (0, 1) that the
            bad tokens' total probability must exceed.
    """

    tokens: tuple[int, ...]
    threshold: float | None = None

    def __post_init__(self) -> None:
        if not self.tokens:
            raise MindscopeError("a bad output needs at least one token")
        object.__setattr__(self, "tokens", tuple(int(t) for t in self.tokens))
        if self.threshold is not None and not 0.0 < float(self.threshold) < 1.0:
            raise MindscopeError(f"threshold must be in (0, 1), got {self.threshold}")

    def check_vocab(self, vocab_size: int) -> None:
        """Refuse token ids outside ``[0, vocab_size)``."""
        bad = [t for t in self.tokens if not 0 <= t < vocab_size]
        if bad:
            raise MindscopeError(
                f"bad-output token ids {bad} are not in the vocabulary [0, {vocab_size})"
            )

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        """The smooth score the samplers tilt towards: ``[n, vocab]`` -> ``[n]`` (differentiable).

        Arg-max mode: the bad tokens' (log-sum-exp) logit minus the mean logit, i.e. Wu & Hilton's
        target logit made shift-invariant; threshold mode: the bad tokens' log-probability.
        """
        lg = logits.float()
        target = torch.logsumexp(lg[:, list(self.tokens)], dim=-1)
        if self.threshold is None:
            return target - lg.mean(-1)
        return target - torch.logsumexp(lg, dim=-1)

    def margin(self, logits: torch.Tensor) -> torch.Tensor:
        """How far each input is from the bad output: ``[n, vocab]`` -> ``[n]``, ``>= 0``
        exactly where :meth:`hit` is true (up to ties).

        Arg-max mode: the best bad token's logit minus the best other token's logit; threshold
        mode: the bad tokens' log-probability minus ``log(threshold)``.
        """
        lg = logits.float()
        idx = torch.tensor(self.tokens, device=lg.device)
        if self.threshold is None:
            best_bad = lg[:, idx].max(-1).values
            others = lg.index_fill(1, idx, -torch.inf).max(-1).values
            return best_bad - others
        lp = torch.logsumexp(lg[:, idx], -1) - torch.logsumexp(lg, -1)
        return lp - torch.log(torch.tensor(self.threshold, device=lg.device))

    def hit(self, logits: torch.Tensor) -> torch.Tensor:
        """Whether the bad output happens: logits ``[n, vocab]`` -> bool ``[n]``."""
        if self.threshold is None:
            return torch.isin(logits.argmax(-1), torch.tensor(self.tokens, device=logits.device))
        lg = logits.float()
        lp = torch.logsumexp(lg[:, list(self.tokens)], -1) - torch.logsumexp(lg, -1)
        return lp.exp() > self.threshold

    def describe(self) -> str:
        """Short text for results rows."""
        toks = ",".join(str(t) for t in self.tokens)
        return (
            f"argmax in {{{toks}}}"
            if self.threshold is None
            else f"p({{{toks}}}) > {self.threshold:g}"
        )


def bad_output(
    h: Any, tokens: str | int | Sequence[str | int], *, threshold: float | None = None
) -> BadOutput:
    """Build a :class:`BadOutput` for model handle ``h`` from token ids or token strings.

    A string must be exactly one token of ``h.tokenizer`` (e.g. ``" HATE"``); anything else is
    refused with a one-line error, as is an id outside the model's vocabulary.
    """
    items = [tokens] if isinstance(tokens, str | int) else list(tokens)
    ids: list[int] = []
    for item in items:
        if isinstance(item, int):
            ids.append(item)
            continue
        enc = h.tokenizer(item, add_special_tokens=False).input_ids
        if len(enc) != 1:
            raise MindscopeError(f"bad-output token {item!r} is {len(enc)} tokens, not one")
        ids.append(int(enc[0]))
    out = BadOutput(tuple(ids), threshold)
    out.check_vocab(h.vocab_size)
    return out
