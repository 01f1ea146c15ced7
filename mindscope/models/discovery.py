"""Find the parts of any Hugging Face transformer without a branch per architecture.

The residual-stream blocks are the ``nn.ModuleList`` whose length is the config's layer count.
The *head* of a causal LM (final norm, any projection, unembedding) is found by running the model
once on a tiny input and recording which top-level modules execute after the last block: those,
in call order, map the last residual stream to logits. This covers GPT-2 (``ln_f``), GPT-NeoX
(``final_layer_norm``), Llama/Mistral/Qwen2 (``norm``), OPT (``final_layer_norm`` and, for some
sizes, ``project_out``) and any model built the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mindscope.errors import ModelLoadError

__all__ = ["Parts", "find_parts"]


@dataclass(frozen=True)
class Parts:
    """The architecture-independent anatomy of a transformer.

    Attributes:
        layers: the residual blocks, in order.
        layers_path: dotted module path of the block list (e.g. ``gpt_neox.layers``).
        head: modules applied after the last block, before the unembedding, in call order
            (final norm first). Empty for encoders.
        head_paths: their dotted paths.
        unembed: the output embedding (``lm_head``), ``None`` for encoders.
    """

    layers: tuple[nn.Module, ...]
    layers_path: str
    head: tuple[nn.Module, ...]
    head_paths: tuple[str, ...]
    unembed: nn.Module | None


def _n_layers_from_config(config: object) -> int | None:
    for key in ("num_hidden_layers", "n_layer", "num_layers", "n_layers"):
        v = getattr(config, key, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def _find_block_list(model: nn.Module, n_layers: int | None) -> tuple[str, nn.ModuleList]:
    candidates = [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.ModuleList) and len(mod) > 0
    ]
    if n_layers is not None:
        exact = [(n, m) for n, m in candidates if len(m) == n_layers]
        if exact:
            # The shortest path wins (the block list sits above per-block sub-lists).
            return min(exact, key=lambda nm: nm[0].count("."))
    if not candidates:
        raise ModelLoadError(f"cannot find the transformer blocks of {type(model).__name__}")
    return max(candidates, key=lambda nm: len(nm[1]))


def find_parts(model: nn.Module, example_input_ids: torch.Tensor | None = None) -> Parts:
    """Locate blocks, head and unembedding of ``model`` (a ``transformers`` PreTrainedModel).

    Args:
        model: the model, in eval mode.
        example_input_ids: ``[1, pos]`` token ids for the probing forward pass (default: 4 ones).

    Returns:
        The :class:`Parts` of the model.
    """
    config = getattr(model, "config", None)
    layers_path, block_list = _find_block_list(model, _n_layers_from_config(config))
    get_out = getattr(model, "get_output_embeddings", None)
    unembed = get_out() if callable(get_out) else None
    if unembed is None:
        return Parts(tuple(block_list), layers_path, (), (), None)

    # Record the order in which modules *finish*; modules finishing after the last block that are
    # neither inside a block nor ancestors of it form the head (their outermost ones only).
    names = {id(m): n for n, m in model.named_modules()}
    order: list[str] = []
    handles = [
        m.register_forward_hook(lambda mod, args, out: order.append(names[id(mod)]))
        for m in model.modules()
    ]
    ids = example_input_ids if example_input_ids is not None else torch.ones(1, 4, dtype=torch.long)
    try:
        with torch.no_grad():
            model(input_ids=ids.to(_device_of(model)))
    finally:
        for h in handles:
            h.remove()
    last_block = f"{layers_path}.{len(block_list) - 1}"
    unembed_name = names[id(unembed)]
    try:
        start = max(i for i, n in enumerate(order) if n == last_block) + 1
        stop = order.index(unembed_name, start)
    except ValueError as exc:
        raise ModelLoadError(
            f"cannot trace the head of {type(model).__name__}: unembedding not called after blocks"
        ) from exc
    after = order[start:stop]
    head_paths: list[str] = []
    for n in after:
        if n.startswith(layers_path + ".") or n == "" or last_block.startswith(n + "."):
            continue
        if any(n.startswith(p + ".") for p in head_paths):
            continue  # inside a head module already recorded
        # an outer module finishing later contains earlier ones: replace them
        head_paths = [p for p in head_paths if not p.startswith(n + ".")]
        head_paths.append(n)
    modules = dict(model.named_modules())
    head = tuple(
        modules[p] for p in head_paths if not isinstance(modules[p], nn.Dropout | nn.Identity)
    )
    head_paths = [p for p in head_paths if not isinstance(modules[p], nn.Dropout | nn.Identity)]
    return Parts(tuple(block_list), layers_path, head, tuple(head_paths), unembed)


def _device_of(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")
