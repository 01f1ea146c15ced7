"""Shared helpers of the intervention stages (steer, erase, patch): data and layers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["resolve_layers", "swap_persona", "pairs_of", "neutral_texts", "choice_ids", "frame"]


def resolve_layers(h: Any, layers: str | list[int]) -> list[int]:
    """``"all"`` or a list of layer indices -> checked indices."""
    if layers == "all":
        return list(range(h.n_layers))
    out = []
    for layer in layers:  # type: ignore[union-attr]
        if not 0 <= int(layer) < h.n_layers:
            raise MindscopeError(f"layer {layer} out of range for {h.n_layers} layers")
        out.append(int(layer))
    return out


def swap_persona(prompt: str, to: str) -> str:
    """A quirky prompt with its persona replaced (``"... Alice:"`` -> ``"... Bob:"``)."""
    for who in ("Alice", "Bob"):
        if prompt.endswith(f" {who}:"):
            return prompt[: -len(who) - 1] + f"{to.capitalize()}:"
    raise MindscopeError(f"not a quirky prompt (no persona at its end): {prompt!r}")


def pairs_of(dataset: str, n: int | None, n_test: int | None, seed: int) -> Any:
    """The :class:`~mindscope.data.DatasetSplit` of a dataset name (the one loading path)."""
    from mindscope.data.datasets import load_dataset_split

    return load_dataset_split(dataset, n=n, n_test=n_test, seed=seed)


def neutral_texts(pairs: Sequence[Any]) -> list[str]:
    """Neutral text from pairs: each prompt with its correct completion."""
    return [p.prompt + p.completions[max(p.label, 0)] for p in pairs]


def choice_ids(h: Any, completions: tuple[str, str]) -> tuple[int, int]:
    """Token ids of two one-token completions (one-line error otherwise)."""
    out = []
    for c in completions:
        ids = h.encode([c], add_special_tokens=False)[0]
        if len(ids) != 1:
            raise MindscopeError(f"completion {c!r} is {len(ids)} tokens; one token needed")
        out.append(ids[0])
    return out[0], out[1]


def frame(rows: Sequence[dict[str, Any]]) -> Any:
    """Results table from row dicts whose ``extra`` may be a dict (JSON-encoded here)."""
    import json

    from mindscope.results import to_frame

    out = []
    for r in rows:
        r = dict(r)
        if isinstance(r.get("extra"), dict):
            r["extra"] = json.dumps(r["extra"], sort_keys=True)
        out.append(r)
    return to_frame(out)
