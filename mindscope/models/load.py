"""``load_model``: a hub id, a local Hugging Face directory, or ``organism:NAME`` -> handle."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mindscope.errors import ModelLoadError
from mindscope.models.discovery import find_parts
from mindscope.models.handle import ModelHandle

__all__ = ["load_model", "wrap_model", "resolve_dtype", "resolve_device", "weight_files"]

_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    """``"bf16"``, ``"float32"``, ``torch.float16`` or ``None`` (as saved) -> a torch dtype."""
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype in ("auto", ""):
        return None
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}; use one of {sorted(_DTYPES)}") from None


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None``/``"auto"`` -> CUDA when available, else CPU; anything else as given."""
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelLoadError(f"unknown device {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError(f"device {device!r} asked for, but CUDA is not available here")
    return dev


def _is_causal(config: Any) -> bool:
    archs = getattr(config, "architectures", None) or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return True
    if archs:
        return False
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    mt = getattr(config, "model_type", "")
    return mt in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and mt not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def load_model(
    name_or_path: str | os.PathLike[str],
    revision: str | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    *,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, str | int] | None = None,
    offload_folder: str | os.PathLike[str] | None = None,
) -> ModelHandle:
    """Load a model and its tokenizer into a :class:`ModelHandle`.

    Args:
        name_or_path: a Hugging Face hub id (``"EleutherAI/pythia-70m"``), a local directory in
            Hugging Face format (``config.json`` + weights + tokenizer files), or
            ``"organism:NAME"`` for a model organism (its cached or shipped weights; never trains:
            a missing one is a one-line error naming `mindscope organism train NAME`).
        revision: hub revision / organism checkpoint (e.g. ``"step1000"``); ``None`` = latest.
        device: ``"cpu"``, ``"cuda"``, ... (default: CUDA when available).
        dtype: ``"float32"``, ``"bfloat16"``, ... (default: as saved).
        device_map: for models larger than memory: ``"auto"`` or an explicit ``{module path:
            device}`` map (devices ``0``, ``"cpu"``, ``"disk"``), handed to ``accelerate``
            (install the ``big`` extra). ``device`` is then ignored.
        max_memory: with ``device_map="auto"``: the most memory per device, e.g.
            ``{"cpu": "200MB"}``; what does not fit goes to ``offload_folder``.
        offload_folder: folder for weights offloaded to disk.

    Returns:
        The handle, model in eval mode with gradients off.
    """
    name = os.fspath(name_or_path)
    if not name.strip():
        raise ModelLoadError("empty model name")
    dev = resolve_device(device)
    dt = resolve_dtype(dtype)
    source: str | Path
    hub_revision = revision
    if name.startswith("organism:"):
        from mindscope import organisms

        source = organisms.resolve(name.split(":", 1)[1], revision)
        hub_revision = None
    elif Path(name).expanduser().exists():
        source = Path(name).expanduser()
        if not source.is_dir():
            raise ModelLoadError(f"{name} is a file; give the model's directory")
        if not (source / "config.json").is_file():
            raise ModelLoadError(f"directory {name} has no config.json: not a Hugging Face model")
        if revision is not None:
            raise ModelLoadError(
                f"revision {revision!r} given for local directory {name}; revisions are for hub ids"
            )
    elif name.startswith(("/", "./", "../", "~")):
        raise ModelLoadError(f"no such model directory: {name}")
    else:
        source = name

    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(source, revision=hub_revision)
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(
            f"cannot load model {name!r}: not a local directory or organism, and the hub "
            f"could not provide it ({detail[:160]})"
        ) from exc
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(
            f"{name} is an encoder-decoder model; mindscope reads decoders/encoders"
        )
    causal = _is_causal(config)
    cls = AutoModelForCausalLM if causal else AutoModel
    kwargs: dict[str, Any] = {"revision": hub_revision}
    if dt is not None:
        kwargs["dtype"] = dt
    if device_map is not None:
        from mindscope.extras import require

        require("big", what="device_map")
        kwargs["device_map"] = device_map
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
        if offload_folder is not None:
            kwargs["offload_folder"] = os.fspath(offload_folder)
    elif max_memory is not None or offload_folder is not None:
        raise ModelLoadError("max_memory and offload_folder need device_map (e.g. 'auto')")
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # mindscope shows its own progress; keep stderr clean
    try:
        model = cls.from_pretrained(source, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(source, revision=hub_revision)
    except (OSError, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"cannot load model {name!r}: {detail[:200]}") from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    if device_map is None:
        model = model.to(dev)  # type: ignore[arg-type]
    handle = wrap_model(model, tokenizer, name=name, revision=revision, is_causal=causal)
    if isinstance(source, Path):
        handle.source_files = weight_files(source)
    return handle


def weight_files(folder: Path) -> tuple[Path, ...]:
    """The weight files of a Hugging Face model folder (safetensors preferred, else .bin)."""
    st = sorted(folder.glob("model*.safetensors"))
    if st:
        return tuple(st)
    return tuple(sorted(folder.glob("pytorch_model*.bin")))


def wrap_model(
    model: nn.Module,
    tokenizer: Any,
    *,
    name: str = "custom",
    revision: str | None = None,
    is_causal: bool | None = None,
) -> ModelHandle:
    """Wrap an already-built ``transformers`` model and tokenizer in a :class:`ModelHandle`."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if is_causal is None:
        is_causal = _is_causal(model.config)
    if getattr(tokenizer, "pad_token_id", None) is None:
        fallback = tokenizer.eos_token or tokenizer.unk_token
        if fallback is not None:
            tokenizer.pad_token = fallback
    vocab = int(getattr(model.config, "vocab_size", 2) or 2)
    probe_ids = torch.arange(min(4, vocab)).unsqueeze(0)  # [1, pos]
    parts = find_parts(model, probe_ids)
    if not is_causal:
        parts = type(parts)(parts.layers, parts.layers_path, (), (), None)
    return ModelHandle(
        model=model,
        tokenizer=tokenizer,
        name=name,
        revision=revision,
        parts=parts,
        is_causal=is_causal,
    )
