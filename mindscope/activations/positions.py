"""Token-position rules: which token(s) of a text an activation is read from.

A rule turns a tokenized text into a weight vector over its tokens; the activation is the
weighted sum of the per-token residual vectors. ``"last"`` is one-hot on the last token,
``"mean"`` uniform over all tokens, ``"first"`` one-hot on the first, and ``"mark:TEXT"`` one-hot
on the last token that overlaps the last occurrence of ``TEXT`` in the text (e.g.
``"mark:="`` reads the ``=`` sign of ``"2 + 2 = 4"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mindscope.errors import MindscopeError

__all__ = ["PositionRule", "parse_position"]


@dataclass(frozen=True)
class PositionRule:
    """A parsed position rule.

    Attributes:
        kind: ``"last"``, ``"first"``, ``"mean"`` or ``"mark"``.
        mark: the marked substring for ``kind == "mark"``.
    """

    kind: str
    mark: str = ""

    @property
    def spec(self) -> str:
        """The rule as the string it was parsed from (its store key)."""
        return f"mark:{self.mark}" if self.kind == "mark" else self.kind

    @property
    def needs_offsets(self) -> bool:
        """Whether the rule needs character offsets of tokens."""
        return self.kind == "mark"

    def weights(
        self, n_tokens: int, text: str = "", offsets: np.ndarray | None = None
    ) -> np.ndarray:
        """Weights over the ``n_tokens`` tokens of one text.

        Args:
            n_tokens: length of the tokenized text.
            text: the text (for ``mark``).
            offsets: ``[n_tokens, 2]`` character spans of the tokens (for ``mark``).

        Returns:
            ``[n_tokens]`` float32 weights summing to 1.
        """
        w = np.zeros(n_tokens, dtype=np.float32)
        if self.kind == "last":
            w[-1] = 1.0
        elif self.kind == "first":
            w[0] = 1.0
        elif self.kind == "mean":
            w[:] = 1.0 / n_tokens
        else:
            w[self.mark_index(text, offsets)] = 1.0
        return w

    def mark_index(self, text: str, offsets: np.ndarray | None) -> int:
        """Index of the last token overlapping the last occurrence of the mark in ``text``."""
        start = text.rfind(self.mark)
        if start < 0:
            raise MindscopeError(f"position mark {self.mark!r} not found in text {text[:60]!r}")
        if offsets is None:
            raise MindscopeError("position 'mark:' needs a fast tokenizer (character offsets)")
        end = start + len(self.mark)
        hits = [i for i, (a, b) in enumerate(offsets) if a < end and b > start and b > a]
        if not hits:
            raise MindscopeError(f"position mark {self.mark!r} falls on no token of {text[:60]!r}")
        return hits[-1]


def parse_position(position: str | PositionRule) -> PositionRule:
    """Parse ``"last"``, ``"first"``, ``"mean"`` or ``"mark:TEXT"`` into a :class:`PositionRule`."""
    if isinstance(position, PositionRule):
        return position
    if not isinstance(position, str):
        raise TypeError(f"position must be a str, got {type(position).__name__}")
    if position in ("last", "first", "mean"):
        return PositionRule(position)
    if position.startswith("mark:") and len(position) > len("mark:"):
        return PositionRule("mark", position[len("mark:") :])
    raise MindscopeError(
        f"unknown position rule {position!r}; use 'last', 'first', 'mean' or 'mark:TEXT'"
    )
