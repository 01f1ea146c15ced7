"""Shared fixtures of the sweep tests: a tiny quirky organism's checkpoint folder and texts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

TEXT_N = 160


def make_series(root: Path) -> Path:
    """Train a tiny quirky-arith (12 steps, 2 layers x 32) into ``root`` (about a second)."""
    from mindscope import organisms
    from mindscope.organisms.neox import ModelShape
    from mindscope.organisms.quirky import QuirkyConfig

    shape = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32)
    cfg = QuirkyConfig(
        seed=0, max_steps=12, pool_size=256, eval_per_cell=16, shape=shape, threads=1
    )
    return organisms.train("quirky-arith", cfg, out=root, progress=False)


def make_text(path: Path) -> Path:
    """Arithmetic statements in the organism's vocabulary, blank-line separated."""
    from mindscope.data import quirky_arith

    pairs = quirky_arith(TEXT_N, seed=3)
    path.write_text("\n\n".join(p.prompt + p.completions[p.label] for p in pairs))
    return path


def copy_series(src: Path, dst: Path, steps: list[int]) -> Path:
    """A folder holding only ``steps`` of ``src``."""
    dst.mkdir(parents=True)
    for s in steps:
        shutil.copytree(src / f"step{s}", dst / f"step{s}")
    return dst


def config(series: Path, text: Path, out: Path, **over: Any) -> dict[str, Any]:
    """A small two-stage sweep config over ``series``."""
    cfg: dict[str, Any] = {
        "series": {"source": "folder", "name": str(series), "select": "all"},
        "stages": {
            "lens": {
                "steps": 8,
                "tokens_per_step": 512,
                "seq_len": 16,
                "train_text": str(text),
                "n_boot": 10,
            },
            "elicit": {
                "n": 96,
                "n_test": 128,
                "n_boot": 10,
                "methods": ["lr", "diffmean"],
                "read": "prompt",
                "transfer_from": ["alice-easy"],
                "shuffled_control": True,
            },
        },
        "out": str(out),
        "store": str(out.parent / f"{out.name}-store"),
        "random_init": False,
    }
    for k, v in over.items():
        cfg[k] = v
    return cfg


class ForwardCounter:
    """Counts forward calls of every Hugging Face base transformer while active (a global
    module hook, independent of what the sweep itself counts)."""

    def __enter__(self) -> ForwardCounter:
        import torch
        from transformers import PreTrainedModel

        self.n = 0

        def hook(mod: Any, _args: Any) -> None:
            if isinstance(mod, PreTrainedModel) and getattr(mod, "base_model", None) is mod:
                self.n += 1

        self._h = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._h.remove()
