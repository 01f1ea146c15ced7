"""``mindscope extract`` and ``mindscope inspect``: activations to the store, model anatomy."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register", "read_items"]


def read_items(path: str | Path) -> list[Any]:
    """Read prompts or contrast pairs from a file.

    ``.txt``: one prompt per non-empty line. ``.jsonl``: one object per line, either
    ``{"text": ...}`` (prompt) or ``{"prompt": ..., "completions": [c0, c1], "label": 0|1}``
    (contrast pair).
    """
    from mindscope.data import ContrastPair

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no such data file: {p}")
    if p.suffix == ".jsonl":
        items: list[Any] = []
        for i, line in enumerate(p.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MindscopeError(f"{p}:{i}: not valid JSON ({exc.msg})") from exc
            if "text" in obj:
                items.append(str(obj["text"]))
            elif "prompt" in obj:
                items.append(
                    ContrastPair(
                        obj["prompt"],
                        tuple(obj.get("completions", (" False", " True"))),  # type: ignore[arg-type]
                        int(obj.get("label", -1)),
                        obj.get("meta", {}),
                    )
                )
            else:
                raise MindscopeError(f"{p}:{i}: needs a 'text' or a 'prompt' field")
    else:
        items = [line for line in p.read_text().splitlines() if line.strip()]
    if not items:
        raise MindscopeError(f"{p} holds no prompts")
    return items


def _layers(spec: str) -> str | list[int]:
    if spec == "all":
        return "all"
    try:
        return [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise MindscopeError(
            f"--layers must be 'all' or comma-separated ints, got {spec!r}"
        ) from None


def _extract(args: argparse.Namespace) -> int:
    import torch

    import mindscope as ms

    items = read_items(args.data)
    layers = _layers(args.layers)  # validate before loading the model
    h = ms.load_model(args.model, revision=args.revision, device=args.device, dtype=args.dtype)
    acts = ms.extract(
        h,
        items,
        layers=layers,
        position=args.position,
        batch_size=args.batch_size,
        store=args.store,
    )
    print(f"{h!r}")
    print(f"store: {acts.path}")
    print(f"{'layer':>5}  {'shape':<16} {'mean norm':>10} {'std norm':>9} {'cos(mean)':>9}")
    for k in acts.layers:
        x = acts[k].reshape(-1, h.d_model)  # [n * sides, d]
        norms = x.norm(dim=-1)
        mean = x.mean(0)
        cos = torch.nn.functional.cosine_similarity(x, mean[None], dim=-1).mean()
        shape = "x".join(map(str, acts[k].shape))
        print(f"{k:>5}  {shape:<16} {norms.mean():>10.3f} {norms.std():>9.3f} {cos.item():>9.3f}")
    return 0


def _inspect(args: argparse.Namespace) -> int:
    import mindscope as ms

    h = ms.load_model(args.model, revision=args.revision)
    print(repr(h))
    print(f"blocks:  {h.parts.layers_path} ({h.n_layers})")
    print(f"head:    {', '.join(h.parts.head_paths) or '(none: encoder)'}")
    print(f"causal:  {h.is_causal}; vocab {h.vocab_size}; context {h.n_ctx}")
    print(f"weights: {h.weights_hash}")
    print(f"sites:   {len(h.sites)} (e.g. {', '.join(h.sites[:5])}, ...)")
    return 0


def register(sub: Any) -> None:
    """Add ``extract`` and ``inspect`` to the CLI."""
    p = sub.add_parser("extract", help="extract residual activations into the store")
    p.add_argument("--model", required=True, help="hub id, local HF dir or organism:NAME")
    p.add_argument("--data", required=True, help=".txt (a prompt per line) or .jsonl")
    p.add_argument("--layers", default="all", help="'all' or e.g. 0,4,8")
    p.add_argument("--position", default="last", help="last | first | mean | mark:TEXT")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--revision", default=None)
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None)
    p.add_argument("--store", default=None, help="store root (default $MINDSCOPE_HOME/activations)")
    p.set_defaults(func=_extract)
    q = sub.add_parser("inspect", help="show a model's anatomy as mindscope sees it")
    q.add_argument("model")
    q.add_argument("--revision", default=None)
    q.set_defaults(func=_inspect)
