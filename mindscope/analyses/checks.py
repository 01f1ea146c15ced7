"""Checks shared by stage configs and the run config: model names, files, layer counts.

Each raises :class:`~mindscope.errors.ConfigError` with a one-line message before anything is
loaded (a model's ``config.json`` at most).
"""

from __future__ import annotations

import difflib
import json
import re
from pathlib import Path

from mindscope.errors import ConfigError

__all__ = [
    "HUB_ID",
    "resolve",
    "check_file",
    "check_model_name",
    "check_model_folder",
    "model_layers",
    "known_organisms",
]

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def resolve(path: str, base: Path) -> Path:
    """``path`` relative to ``base`` (``~`` expanded; absolute paths unchanged)."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (base / p)


def check_file(value: str | None, where: str, base: Path, prefix: str = "") -> str | None:
    """The resolved absolute path of an existing file, or None for None."""
    if value is None:
        return None
    path = resolve(value, base)
    if not path.is_file():
        raise ConfigError(f"{prefix}{where}: file not found: {path}")
    return str(path.resolve())


def known_organisms() -> tuple[str, ...]:
    """Names of the organisms mindscope can build."""
    from mindscope.organisms import organism_names

    return tuple(organism_names())


def check_model_name(name: str, where: str, base: Path, prefix: str = "") -> str:
    """Check a model name (hub id, folder or ``organism:NAME``); returns it resolved."""
    name = name.strip()
    if not name:
        raise ConfigError(f"{prefix}{where}: empty model name")
    if name.startswith("organism:"):
        known = known_organisms()
        org = name.split(":", 1)[1]
        if org not in known:
            close = difflib.get_close_matches(org, known, n=1)
            hint = f"; did you mean 'organism:{close[0]}'?" if close else ""
            raise ConfigError(
                f"{prefix}{where}: unknown organism {org!r} (known: {', '.join(known)}){hint}"
            )
        return name
    path = resolve(name, base)
    if name.startswith(("/", ".", "~")) or path.exists():
        if not path.is_dir():
            raise ConfigError(f"{prefix}{where}: model folder not found: {path}")
        check_model_folder(path, where, prefix)
        return str(path.resolve())
    if not HUB_ID.match(name):
        raise ConfigError(
            f"{prefix}{where}: {name!r} is not a hub id (owner/name), an existing model "
            "folder or organism:NAME"
        )
    return name


def check_model_folder(path: Path, where: str, prefix: str = "") -> None:
    """Refuse a folder that is not a decoder-only Hugging Face model transformers knows."""
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise ConfigError(
            f"{prefix}{where}: {path} has no config.json: not a Hugging Face model folder"
        )
    try:
        hf = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{prefix}{where}: cannot read {cfg_file}: {exc}") from None
    if hf.get("is_encoder_decoder"):
        raise ConfigError(
            f"{prefix}{where}: unsupported model: {path} is an encoder-decoder "
            f"({hf.get('model_type', '?')}); mindscope reads decoder-only language models"
        )
    model_type = hf.get("model_type")
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise ConfigError(
            f"{prefix}{where}: unsupported model: {path} has model_type {model_type!r}, "
            "which transformers does not know"
        )


def model_layers(name: str, revision: str | None = None) -> int | None:
    """Number of blocks of a model, read from its config alone (no weights loaded).

    ``organism:NAME``: the organism's training config; a local folder: its ``config.json``
    (``transformers.AutoConfig``); a hub id: the locally cached config if there is one. None
    when the count cannot be known without the network.
    """
    if name.startswith("organism:"):
        from mindscope.organisms import default_config

        return int(default_config(name.split(":", 1)[1]).shape.n_layers)
    from transformers import AutoConfig

    try:
        if Path(name).is_dir():
            hf = AutoConfig.from_pretrained(name)
        else:
            hf = AutoConfig.from_pretrained(name, revision=revision, local_files_only=True)
    except (OSError, ValueError):
        return None
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(hf, attr, None)
        if isinstance(value, int):
            return value
    return None
