"""Activation extraction engine and its content-addressed on-disk store."""

from __future__ import annotations

from mindscope.activations.activations import Activations
from mindscope.activations.answers import answer_token_ids, lm_logodds
from mindscope.activations.engine import extract, resolve_layers
from mindscope.activations.positions import PositionRule, parse_position
from mindscope.activations.store import StoreFolder, StoreKey

__all__ = [
    "extract",
    "lm_logodds",
    "answer_token_ids",
    "Activations",
    "resolve_layers",
    "PositionRule",
    "parse_position",
    "StoreFolder",
    "StoreKey",
]
