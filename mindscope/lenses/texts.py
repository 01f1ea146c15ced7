"""Text input for the lenses: read documents from a file and cut them into token windows.

A data file is either JSONL (one object per line with a ``"text"`` field) or plain text, where
documents are separated by blank lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mindscope.errors import MindscopeError

__all__ = ["read_texts", "Windows", "doc_windows", "packed_sequences", "default_seq_len"]


def read_texts(path: str | os.PathLike[str]) -> list[str]:
    """Read documents from ``path``: JSONL with a ``"text"`` field, or blank-line separated text.

    JSONL is recognised by a ``.jsonl`` suffix or by a first non-blank character ``{``.
    """
    p = Path(path)
    if not p.exists():
        raise MindscopeError(f"no such data file: {p}")
    if p.is_dir():
        raise MindscopeError(f"{p} is a directory; give a text or JSONL file")
    raw = p.read_text(encoding="utf-8")
    if not raw.strip():
        raise MindscopeError(f"data file {p} is empty")
    if p.suffix == ".jsonl" or raw.lstrip().startswith("{"):
        docs = []
        for i, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MindscopeError(f"{p}:{i}: not valid JSON ({exc.msg})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise MindscopeError(f'{p}:{i}: expected an object with a string "text" field')
            if obj["text"].strip():
                docs.append(obj["text"])
    else:
        blocks = raw.replace("\r\n", "\n").split("\n\n")
        docs = [b.strip("\n") for b in blocks if b.strip()]
    if not docs:
        raise MindscopeError(f"data file {p} holds no non-empty document")
    return docs


def check_texts(texts: Sequence[str]) -> list[str]:
    """Validate a list of documents (non-empty strings); returns the non-blank ones."""
    if isinstance(texts, str):
        raise MindscopeError("texts must be a list of documents, not one string")
    items = list(texts)
    if any(not isinstance(t, str) for t in items):
        raise MindscopeError("texts must all be strings")
    docs = [t for t in items if t.strip()]
    if not docs:
        raise MindscopeError("no text given: every document is empty")
    return docs


def default_seq_len(n_ctx: int | None, cap: int = 512) -> int:
    """Window length used when none is given: the model's context, at most ``cap``."""
    return min(cap, n_ctx) if n_ctx else cap


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def packed_sequences(tokenizer: Any, texts: Sequence[str], seq_len: int) -> torch.Tensor:
    """GPT-style packing: join documents with EOS (one EOS first), cut into ``seq_len`` rows.

    The incomplete last row is dropped, as in the tuned-lens package's ``chunk_and_tokenize``.

    Returns:
        ``[n_seq, seq_len]`` token ids (``n_seq`` may be 0).
    """
    eos = getattr(tokenizer, "eos_token_id", None)
    ids: list[int] = [] if eos is None else [eos]
    docs = check_texts(texts)
    # one batched call (the fast tokenizers encode in parallel in Rust)
    encoded = tokenizer(docs, add_special_tokens=False)["input_ids"]
    for i, seq in enumerate(encoded):
        if i and eos is not None:
            ids.append(eos)
        ids.extend(seq)
    n = len(ids) // seq_len
    return torch.tensor(ids[: n * seq_len], dtype=torch.long).view(n, seq_len)  # [n_seq, seq_len]


@dataclass(frozen=True)
class Windows:
    """Documents tokenised and cut into windows of at most ``seq_len`` tokens (right-padded).

    Attributes:
        input_ids: ``[n_win, seq_len]`` token ids (padding = the tokenizer's pad id, or 0).
        mask: ``[n_win, seq_len]`` bool, True on real tokens.
        doc: ``[n_win]`` index of the document each window comes from.
        n_docs: number of documents.
    """

    input_ids: torch.Tensor
    mask: torch.Tensor
    doc: torch.Tensor
    n_docs: int


def doc_windows(tokenizer: Any, texts: Sequence[str], seq_len: int) -> Windows:
    """Tokenise each document on its own and cut it into windows of ``seq_len`` tokens.

    A window keeps its document index, so statistics can be resampled per document.
    """
    docs = check_texts(texts)
    pad = getattr(tokenizer, "pad_token_id", None) or 0
    rows: list[list[int]] = []
    owner: list[int] = []
    for d, t in enumerate(docs):
        ids = _encode(tokenizer, t)
        for s in range(0, len(ids), seq_len):
            piece = ids[s : s + seq_len]
            if piece:
                rows.append(piece)
                owner.append(d)
    if not rows:
        raise MindscopeError("the texts tokenise to no tokens at all")
    input_ids = torch.full((len(rows), seq_len), pad, dtype=torch.long)  # [n_win, seq_len]
    mask = torch.zeros((len(rows), seq_len), dtype=torch.bool)
    for i, r in enumerate(rows):
        input_ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[i, : len(r)] = True
    return Windows(input_ids, mask, torch.tensor(owner, dtype=torch.long), len(docs))
