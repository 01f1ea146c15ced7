"""Datasets: prompts and contrast pairs (no model knowledge here)."""

from __future__ import annotations

from mindscope.data.pairs import ContrastPair, dataset_hash
from mindscope.data.quirky import quirky_arith

__all__ = ["ContrastPair", "dataset_hash", "quirky_arith"]
