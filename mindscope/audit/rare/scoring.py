"""Running the model on inputs of a distribution: bad-output hits, scores and one-hot gradients.

:class:`Scorer` counts every sequence it runs (``calls``), with or without a backward pass; the
estimators' budgets are in these model calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from mindscope.audit.rare.bad import BadOutput
from mindscope.audit.rare.distributions import InputDistribution
from mindscope.audit.rare.engine import embedding_matrix, forward_logits, next_logits
from mindscope.errors import MindscopeError

__all__ = ["Scorer"]


class Scorer:
    """Evaluate a bad output on free tokens of ``dist`` with model handle ``h``.

    Args:
        h: a causal-LM model handle.
        dist: the input distribution (its vocabulary must be the model's).
        bad: the bad output.
        batch_size: sequences per forward pass.
    """

    def __init__(self, h: Any, dist: InputDistribution, bad: BadOutput, batch_size: int = 512):
        if not getattr(h, "is_causal", True):
            raise MindscopeError(f"{h.name} is not a causal LM: no next token to audit")
        vocab = int(h.vocab_size)
        if dist.vocab_size != vocab:
            raise MindscopeError(
                f"input distribution is over {dist.vocab_size} tokens, the model has {vocab}"
            )
        bad.check_vocab(vocab)
        n_ctx = getattr(h, "n_ctx", None)
        if isinstance(n_ctx, int) and dist.seq_len > n_ctx:
            raise MindscopeError(
                f"inputs are {dist.seq_len} tokens, the model takes at most {n_ctx}"
            )
        if batch_size < 1:
            raise MindscopeError(f"batch_size must be >= 1, got {batch_size}")
        self.h, self.dist, self.bad, self.batch_size = h, dist, bad, batch_size
        self.calls = 0

    def _run(
        self, x: torch.Tensor, value: Callable[[torch.Tensor], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hits ``[n]`` and ``value(logits)`` ``[n]`` (float64) of free tokens ``x``, in batches."""
        hits, values = [], []
        for start in range(0, x.shape[0], self.batch_size):
            logits = next_logits(self.h, self.dist.full(x[start : start + self.batch_size]))
            hits.append(self.bad.hit(logits).cpu())
            values.append(value(logits).double().cpu())
        self.calls += int(x.shape[0])
        if not hits:
            return torch.zeros(0, dtype=torch.bool), torch.zeros(0, dtype=torch.float64)
        return torch.cat(hits), torch.cat(values)

    def evaluate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Free tokens ``x [n, n_positions]`` -> ``(hit bool [n], score float64 [n])``."""
        return self._run(x, self.bad.score)

    def margins(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Free tokens ``x [n, n_positions]`` -> ``(hit bool [n], margin float64 [n])``
        (:meth:`BadOutput.margin`: ``>= 0`` on bad outputs)."""
        return self._run(x, self.bad.margin)

    def gradient(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Score and its gradient with respect to one-hot inputs at the free positions.

        Returns ``(hit [n], score [n], grad [n, n_positions, vocab])``: ``grad[j, i, v]`` is
        d score / d onehot[j, i, v], the first-order change of the score when token ``v`` is put
        at free position ``i`` (up to the constant of the current token).
        """
        emb = embedding_matrix(self.h)  # [vocab, d_model]
        hits, scores, grads = [], [], []
        for start in range(0, x.shape[0], self.batch_size):
            xb = x[start : start + self.batch_size]
            full = self.dist.full(xb).to(emb.device)  # [b, seq]
            onehot = torch.nn.functional.one_hot(xb.to(emb.device), emb.shape[0]).to(emb.dtype)
            onehot.requires_grad_(True)  # [b, n_positions, vocab]
            with torch.enable_grad():
                embeds = emb.detach()[full]  # [b, seq, d_model]
                off = self.dist.offset
                free = onehot @ emb.detach()  # [b, n_positions, d_model]
                embeds = torch.cat(
                    [embeds[:, :off], free, embeds[:, off + xb.shape[1] :]], dim=1
                )  # [b, seq, d_model]
                logits = forward_logits(self.h, inputs_embeds=embeds, grad=True)[:, -1]
                score = self.bad.score(logits)  # [b]
                (g,) = torch.autograd.grad(score.sum(), onehot)
            hits.append(self.bad.hit(logits.detach()).cpu())
            scores.append(score.detach().double().cpu())
            grads.append(g.detach().double().cpu())
        self.calls += int(x.shape[0])
        return torch.cat(hits), torch.cat(scores), torch.cat(grads)
