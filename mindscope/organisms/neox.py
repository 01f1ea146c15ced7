"""Build tiny GPT-NeoX models (the architecture of Pythia) for the organisms."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

__all__ = ["ModelShape", "build_model", "train_logits"]


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
    rotary_pct: float = 0.25
    """Fraction of each head's dimensions rotated by rotary embeddings (Pythia: 0.25)."""

    def to_dict(self) -> dict[str, float]:
        """The shape as a plain dict (for manifests)."""
        return asdict(self)


def build_model(shape: ModelShape, vocab_size: int, eos_id: int, seed: int) -> GPTNeoXForCausalLM:
    """A freshly initialised GPT-NeoX causal LM; the same ``seed`` gives the same weights.

    Dropout is off; rotary embeddings on ``shape.rotary_pct`` of each head (default a quarter, as
    in Pythia); untied embedding and unembedding, as in Pythia.
    """
    config = GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=shape.d_model,
        num_hidden_layers=shape.n_layers,
        num_attention_heads=shape.n_heads,
        intermediate_size=shape.d_mlp,
        max_position_embeddings=shape.max_len,
        rope_parameters={"rope_type": "default", "partial_rotary_factor": shape.rotary_pct},
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


def train_logits(
    model: GPTNeoXForCausalLM,
    input_ids: torch.Tensor | None = None,
    *,
    inputs_embeds: torch.Tensor | None = None,
) -> torch.Tensor:
    """The logits ``[batch, seq, vocab]`` of ``model`` for right-padded ``input_ids``
    ``[batch, seq]`` (or ``inputs_embeds [batch, seq, d_model]``): the same computation as
    ``model(input_ids=...).logits`` (a test checks they agree) without the per-call work of the
    general forward (mask building, rotary tables, output objects): a few percent of a tiny
    model's training step (``benchmarks/bench_organism_step.py``).

    Only for what :func:`build_model` makes (parallel residual, GELU, no dropout, no cache);
    any other model goes through its own forward.
    """
    c = model.config
    if not (
        isinstance(model, GPTNeoXForCausalLM)
        and c.use_parallel_residual
        and c.hidden_act == "gelu"
        and (c.rope_parameters or {}).get("rope_type", "default") == "default"
        and not (model.training and (c.hidden_dropout or c.attention_dropout))
    ):
        if inputs_embeds is not None:
            return model(inputs_embeds=inputs_embeds).logits
        return model(input_ids=input_ids).logits
    core: Any = model.gpt_neox  # (nn.Module attributes are untyped)
    first = input_ids if input_ids is not None else inputs_embeds
    assert first is not None, "train_logits needs input_ids or inputs_embeds"
    b, t = first.shape[:2]
    n_heads = c.num_attention_heads
    head = c.hidden_size // n_heads
    rot = core.layers[0].attention.rotary_ndims
    inv_freq = core.rotary_emb.inv_freq.float()  # [rot/2]
    freqs = torch.arange(t, dtype=torch.float, device=first.device)[:, None] * inv_freq[None]
    angles = torch.cat((freqs, freqs), dim=-1)  # [t, rot]
    cos, sin = angles.cos(), angles.sin()

    def rope(z: torch.Tensor) -> torch.Tensor:  # [b, heads, t, head]
        zr, zp = z[..., :rot], z[..., rot:]
        half = torch.cat((-zr[..., rot // 2 :], zr[..., : rot // 2]), dim=-1)
        return torch.cat((zr * cos + half * sin, zp), dim=-1)

    h = core.embed_in(input_ids) if inputs_embeds is None else inputs_embeds  # [b, t, d]
    for layer in core.layers:
        attn = layer.attention
        qkv = attn.query_key_value(layer.input_layernorm(h))
        q, k, v = qkv.view(b, t, n_heads, 3 * head).transpose(1, 2).chunk(3, dim=-1)
        a = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True, scale=attn.scaling)
        a = attn.dense(a.transpose(1, 2).reshape(b, t, -1))
        h = layer.mlp(layer.post_attention_layernorm(h)) + a + h
    return model.lm_head(core.final_layer_norm(h))
