"""Build tiny GPT-NeoX models (the architecture of Pythia) for the organisms."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

__all__ = ["ModelShape", "build_model"]


@dataclass(frozen=True)
class ModelShape:
    """Shape of a tiny GPT-NeoX model."""

    n_layers: int = 4
    """Number of transformer blocks."""
    d_model: int = 128
    """Width of the residual stream."""
    n_heads: int = 4
    """Attention heads per block (``d_model`` must be divisible by it)."""
    d_mlp: int = 512
    """Hidden width of each MLP."""
    max_len: int = 128
    """Longest sequence the model is trained on (``max_position_embeddings``)."""

    def to_dict(self) -> dict[str, int]:
        """The shape as a plain dict (for manifests)."""
        return asdict(self)


def build_model(shape: ModelShape, vocab_size: int, eos_id: int, seed: int) -> GPTNeoXForCausalLM:
    """A freshly initialised GPT-NeoX causal LM; the same ``seed`` gives the same weights.

    Dropout is off; rotary embeddings on a quarter of each head (the default, as in Pythia); untied
    embedding and unembedding, as in Pythia.
    """
    config = GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=shape.d_model,
        num_hidden_layers=shape.n_layers,
        num_attention_heads=shape.n_heads,
        intermediate_size=shape.d_mlp,
        max_position_embeddings=shape.max_len,
        use_parallel_residual=True,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(config)
    model.config.use_cache = False
    return model
