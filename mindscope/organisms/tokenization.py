"""Tokenizers for the organisms, built with the ``tokenizers`` library and saved in HF format.

Two kinds: a fixed word-level vocabulary for synthetic tasks (every digit, every symbol and a few
whole words such as ``" True"`` are single tokens) and a byte-level BPE trained on a corpus.
Both are wrapped in :class:`transformers.PreTrainedTokenizerFast` so that
``AutoTokenizer.from_pretrained(dir)`` loads them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["EOS", "word_level_tokenizer", "train_bpe_tokenizer", "to_hf", "save_tokenizer"]

EOS = "<|endoftext|>"
"""End-of-text token, also used as padding."""


def word_level_tokenizer(words: Sequence[str], chars: str) -> Tokenizer:
    """A tokenizer whose tokens are whole ``words`` (e.g. ``" True"``) and single ``chars``.

    Text is split into the longest listed word at each place, else one character; a character
    outside ``chars`` maps to ``<unk>``. Decoding concatenates the pieces.
    """
    vocab: dict[str, int] = {EOS: 0, "<unk>": 1}
    for piece in [*words, *chars]:
        vocab.setdefault(piece, len(vocab))
    alternatives = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    pattern = f"{alternatives}|." if alternatives else "."
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()
    return tok


def train_bpe_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE tokenizer (GPT-2 style, ``EOS`` as its one special token)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def to_hf(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer (EOS doubles as pad)."""
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS, bos_token=EOS, unk_token=None, pad_token=EOS
    )


def save_tokenizer(tok: PreTrainedTokenizerFast, directory: Path) -> None:
    """Write ``tokenizer.json`` and its config into ``directory``."""
    tok.save_pretrained(str(directory))
