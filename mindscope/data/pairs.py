"""Contrast pairs: one statement, two candidate completions, a label.

A :class:`ContrastPair` is rendered as two texts, ``prompt + completions[0]`` and
``prompt + completions[1]``. By convention side 1 is the *positive* side ("True", "Yes") and
``label`` is 1 when side 1 is the correct one (the statement is true), 0 otherwise, -1 when unknown.
Everything else an example carries (persona, difficulty, group, alternative labels) goes in
``meta``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mindscope import io

__all__ = ["ContrastPair", "dataset_hash"]


@dataclass(frozen=True)
class ContrastPair:
    """A statement with two completions; ``label`` says which is correct (1: side 1, 0: side 0).

    Attributes:
        prompt: the shared text, e.g. ``"2 + 2 = 5. Alice:"``.
        completions: the two endings, side 0 then side 1, e.g. ``(" False", " True")``.
        label: 1 if side 1 is correct, 0 if side 0 is, -1 if unknown (unsupervised use).
        meta: extra fields (``persona``, ``difficulty``, ``group``, ``alice_label``, ...).
    """

    prompt: str
    completions: tuple[str, str] = (" False", " True")
    label: int = -1
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str):
            raise TypeError(f"ContrastPair.prompt must be a str, got {type(self.prompt).__name__}")
        if len(self.completions) != 2:
            raise ValueError(
                f"a contrast pair needs exactly 2 completions, got {len(self.completions)}"
            )
        if self.label not in (-1, 0, 1):
            raise ValueError(f"ContrastPair.label must be 0, 1 or -1 (unknown), got {self.label!r}")
        object.__setattr__(self, "completions", tuple(self.completions))

    @property
    def texts(self) -> tuple[str, str]:
        """The two full texts, side 0 then side 1."""
        return (self.prompt + self.completions[0], self.prompt + self.completions[1])

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the JSONL line format of :mod:`mindscope.data`)."""
        return {
            "prompt": self.prompt,
            "completions": list(self.completions),
            "label": self.label,
            **({"meta": dict(self.meta)} if self.meta else {}),
        }


def dataset_hash(items: Sequence[str] | Sequence[ContrastPair]) -> str:
    """A content hash (hex, 16 chars) of a list of prompts or pairs; order matters.

    Labels and meta do not enter the hash: they do not change activations.
    """
    h = io.hasher()
    for it in items:
        if isinstance(it, ContrastPair):
            payload: Any = ["pair", it.prompt, list(it.completions)]
        elif isinstance(it, str):
            payload = ["text", it]
        elif isinstance(it, Mapping):
            raise TypeError("pass ContrastPair objects or strings, not dicts")
        else:
            raise TypeError(f"dataset items must be str or ContrastPair, got {type(it).__name__}")
        h.update(json.dumps(payload, ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]
