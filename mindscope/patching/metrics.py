"""What patching measures at the answer position: logit difference or probability."""

from __future__ import annotations

import torch

from mindscope.errors import MindscopeError

__all__ = ["METRICS", "answer_metric"]

METRICS = ("logit_diff", "prob")


def answer_metric(
    logits: torch.Tensor,
    answer: torch.Tensor,
    wrong: torch.Tensor | None,
    metric: str,
    position: int = -1,
) -> torch.Tensor:
    """The metric of each row at ``position``.

    Args:
        logits: ``[batch, pos, vocab]``.
        answer: ``[batch]`` the answer token of each row (the clean run's answer).
        wrong: ``[batch]`` the competing token (the corrupted run's answer); needed for
            ``logit_diff``.
        metric: ``"logit_diff"`` (``logit[answer] - logit[wrong]``) or ``"prob"``
            (``softmax[answer]``).
        position: the position read (default the last).

    Returns:
        ``[batch]`` float32.
    """
    last = logits[:, position].float()  # [batch, vocab]
    rows = torch.arange(last.shape[0], device=last.device)
    a = answer.to(last.device)
    if metric == "logit_diff":
        if wrong is None:
            raise MindscopeError("metric 'logit_diff' needs the wrong (corrupted) answer tokens")
        return last[rows, a] - last[rows, wrong.to(last.device)]
    if metric == "prob":
        return last.softmax(-1)[rows, a]
    raise MindscopeError(f"unknown patching metric {metric!r}; choose from {', '.join(METRICS)}")
