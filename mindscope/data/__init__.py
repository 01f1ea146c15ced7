"""Datasets: prompts and contrast pairs (no model knowledge here)."""

from __future__ import annotations

from mindscope.data.datasets import BUILTIN_DATASETS, load_split
from mindscope.data.facts import facts
from mindscope.data.loaders import load_pairs, save_jsonl, train_test_split
from mindscope.data.pairs import ContrastPair, dataset_hash
from mindscope.data.quirky import quirky_arith
from mindscope.data.templates import Template

__all__ = [
    "ContrastPair",
    "dataset_hash",
    "quirky_arith",
    "facts",
    "load_pairs",
    "save_jsonl",
    "train_test_split",
    "load_split",
    "BUILTIN_DATASETS",
    "Template",
]
