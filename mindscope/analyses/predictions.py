"""Per-example outputs of the reporter analysis: every reporter's credence on every test
example at every layer, saved next to the results table as ``predictions.parquet``.

One row per (method, layer, example)::

    method, layer, example, credence, label, prompt, group, persona, persona_label, difficulty

``credence`` is the reporter's probability that side 1 of the pair is the true one; ``label``
the truth (quirky data: the sum is right); ``persona_label`` what the example's persona says
(quirky data; else null). With it, "on which examples does the probe disagree with the model?"
is a filter, not a re-extraction::

    p = pd.read_parquet("predictions.parquet")
    p[(p.method == "lr") & (p.layer == 4) & ((p.credence > 0.5) != (p.label == 1))]

:func:`disagree_rows` adds, for quirky data, each reporter's AUROC against the truth on the
test examples where the persona's label differs from the truth (where Bob lies):
``auroc_disagree`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

__all__ = ["PREDICTIONS_FILE", "prediction_frame", "disagree_rows", "persona_labels"]

PREDICTIONS_FILE = "predictions.parquet"


def persona_labels(pairs: Sequence[Any]) -> list[int | None]:
    """What each pair's persona says (``alice_label``/``bob_label`` by ``meta.persona``), or
    None where the pair has no persona."""
    out: list[int | None] = []
    for p in pairs:
        persona = p.meta.get("persona")
        key = f"{persona}_label"
        out.append(int(p.meta[key]) if persona and key in p.meta else None)
    return out


def prediction_frame(
    reporters: Mapping[str, Any],
    x: Any,
    pairs: Sequence[Any],
    truth: Any,
    layers: Sequence[int],
) -> pd.DataFrame:
    """The per-example table (see the module docstring) of fitted ``reporters`` on
    ``x [layers, n, 2, d]`` (or ``[layers, n, d]``), for ``pairs`` with labels ``truth [n]``."""
    import numpy as np
    import torch

    n = len(pairs)
    y = np.asarray(torch.as_tensor(truth).long().cpu())
    pl = persona_labels(pairs)
    prompts = [p.prompt for p in pairs]
    groups = [str(p.meta.get("group", "") or "") for p in pairs]
    personas = [str(p.meta.get("persona", "") or "") for p in pairs]
    difficulty = [str(p.meta.get("difficulty", "") or "") for p in pairs]
    frames = []
    for method, rep in reporters.items():
        with torch.no_grad():
            prob = rep.predict_proba(x).double()
        if prob.ndim == 1:
            prob = prob.unsqueeze(0)
        prob = prob.cpu().numpy()  # [L, n]
        for li, layer in enumerate(layers):
            frames.append(
                pd.DataFrame(
                    {
                        "method": pd.Series([method] * n, dtype="string"),
                        "layer": np.full(n, int(layer), dtype="int64"),
                        "example": np.arange(n, dtype="int64"),
                        "credence": prob[li],
                        "label": y.astype("int64"),
                        "prompt": pd.Series(prompts, dtype="string"),
                        "group": pd.Series(groups, dtype="string"),
                        "persona": pd.Series(personas, dtype="string"),
                        "persona_label": pd.Series(pl, dtype="Int64"),
                        "difficulty": pd.Series(difficulty, dtype="string"),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def disagree_rows(
    pe: Any,
    reporters: Mapping[str, Any],
    x: Any,
    pairs: Sequence[Any],
    truth: Any,
    layers: Sequence[int],
    **common: Any,
) -> list[Any]:
    """``auroc_disagree`` (and ``acc_disagree``, ...) rows: each reporter scored against the
    truth on the examples whose persona label differs from the truth; empty when there are
    fewer than 4 such examples or they hold one class only. ``pe`` is
    :mod:`mindscope.probes.evaluation`."""
    import torch

    y = torch.as_tensor(truth).long()
    idx = [i for i, lab in enumerate(persona_labels(pairs)) if lab is not None and lab != y[i]]
    if len(idx) < 4 or y[idx].unique().numel() < 2:
        return []
    rows: list[Any] = pe.score_rows(
        reporters,
        x[:, idx],
        y[idx],
        layers=layers,
        split="test",
        extra={"subset": "persona label != truth", "labels": "truth"},
        label_name="disagree",
        **common,
    )
    return rows
