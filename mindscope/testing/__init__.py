"""Helpers for tests and examples: tiny random-weight models, example results tables, frauds.

- tiny random-weight models of every supported architecture (below). Nothing here downloads:
  configs are built in code and a word-level tokenizer is made with the ``tokenizers`` library,
  then saved in Hugging Face format so ``load_model(dir)`` exercises the real loading path;
- :func:`example_table` (:mod:`mindscope.testing.example_tables`): a realistic synthetic
  results table with rows for every report section, to try the report without a model;
- :mod:`mindscope.testing.frauds`: planted frauds, dishonest copies of an honest trained
  organism that the verifier must reject (imported on its own: it needs torch).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mindscope.testing.example_tables import example_table

__all__ = [
    "ARCHS",
    "tiny_tokenizer",
    "tiny_config",
    "save_tiny_model",
    "tiny_run_setup",
    "example_table",
]

ARCHS = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2", "opt", "bert")

_WORDS = (
    "the a cat dog sat on mat is true false yes no alice bob one two three four five six seven "
    "eight nine zero plus equals paris london france capital of and to in it was red blue green"
).split()


def tiny_tokenizer(vocab_extra: int = 0) -> Any:
    """A whitespace/word-level ``PreTrainedTokenizerFast`` with ~60 tokens (+ specials)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", "[CLS]", "[SEP]", "[MASK]"]
    words = specials + _WORDS + [str(i) for i in range(10)] + [".", ",", "?", "=", "+"]
    words += [f"w{i}" for i in range(vocab_extra)]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        bos_token="[BOS]",
        eos_token="[EOS]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def tiny_config(arch: str, vocab_size: int, *, n_layers: int = 3, d_model: int = 32) -> Any:
    """A tiny ``transformers`` config for ``arch`` (one of :data:`ARCHS`)."""
    import transformers as tf

    common: dict[str, Any] = {
        "vocab_size": vocab_size,
        "bos_token_id": 2,
        "eos_token_id": 3,
        "pad_token_id": 0,
    }
    if arch == "gpt2":
        return tf.GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=4, n_positions=128, **common)
    if arch == "gpt_neox":
        return tf.GPTNeoXConfig(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=4,
            intermediate_size=4 * d_model,
            max_position_embeddings=128,
            **common,
        )
    if arch in ("llama", "mistral", "qwen2"):
        cls = {"llama": tf.LlamaConfig, "mistral": tf.MistralConfig, "qwen2": tf.Qwen2Config}[arch]
        return cls(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=4,
            num_key_value_heads=2,
            intermediate_size=2 * d_model,
            max_position_embeddings=128,
            **common,
        )
    if arch == "opt":
        return tf.OPTConfig(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=4,
            ffn_dim=2 * d_model,
            max_position_embeddings=128,
            word_embed_proj_dim=d_model,
            **common,
        )
    if arch == "bert":
        return tf.BertConfig(
            num_hidden_layers=n_layers,
            hidden_size=d_model,
            num_attention_heads=4,
            intermediate_size=2 * d_model,
            max_position_embeddings=128,
            **common,
        )
    raise ValueError(f"unknown tiny architecture {arch!r}; known: {ARCHS}")


def save_tiny_model(arch: str, out: str | Path, *, seed: int = 0, **cfg: Any) -> Path:
    """Build a random-weight ``arch`` model + tokenizer and save them to ``out`` (HF format)."""
    import torch
    import transformers as tf

    tok = tiny_tokenizer()
    config = tiny_config(arch, len(tok), **cfg)
    torch.manual_seed(seed)
    if arch == "bert":
        model = tf.BertModel(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config)
    out = Path(out)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_run_setup(
    root: str | Path,
    words: list[str],
    *,
    n_docs: int,
    doc_words: int,
    tokens_per_step: int,
    max_texts: int,
    n: int,
    methods: list[str],
) -> Path:
    """A folder for a tiny ``mindscope run``: a 2-layer random GPT-NeoX in ``model/``, a random
    word corpus (``n_docs`` documents of ``doc_words`` words, seed 0) in ``corpus.txt`` and a
    ``run.yaml`` running a 2-step lens and the given reporters on quirky-arith; returns ``root``."""
    import random

    import yaml

    root = Path(root)
    save_tiny_model("gpt_neox", root / "model", n_layers=2)
    rng = random.Random(0)
    docs = [" ".join(rng.choice(words) for _ in range(doc_words)) for _ in range(n_docs)]
    (root / "corpus.txt").write_text("\n\n".join(docs))
    config = {
        "name": "tiny",
        "model": {"name": "model", "device": "cpu"},
        "lens": {
            "train_text": "corpus.txt",
            "steps": 2,
            "tokens_per_step": tokens_per_step,
            "max_texts": max_texts,
            "trajectory_prompt": "the cat sat on",
        },
        "elicit": {"n": n, "methods": methods, "layers": [0, 2]},
        "output_dir": "runs",
    }
    (root / "run.yaml").write_text(yaml.safe_dump(config))
    return root
