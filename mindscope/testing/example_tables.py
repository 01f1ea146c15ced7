"""A realistic synthetic results table, for tests, docs and trying the report without a model.

    from mindscope.testing import example_table
    write_report(example_table(), "example.html")

The numbers have the shapes the real analyses produce (tuned-lens KL below logit-lens KL and
falling with depth, reporter AUROC rising through the middle layers, a quirky transfer matrix
where Alice-trained reporters transfer to Bob's hard questions, ...), drawn with a fixed seed.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from mindscope.results import Row, to_frame

__all__ = ["example_table"]


def _ci(rng: np.random.Generator, v: float, w: float) -> tuple[float, float]:
    half = w * (0.6 + 0.8 * rng.random())
    return v - half, v + half


def example_table(
    seed: int = 0,
    n_layers: int = 6,
    model: str = "organism:pocket-lm",
    steps: tuple[int, ...] = (0, 250, 500, 1000, 2000),
    audits: bool = True,
) -> pd.DataFrame:
    """A synthetic results table with rows for every report section.

    Args:
        seed: RNG seed (the table is a pure function of the arguments).
        n_layers: number of transformer blocks (layers ``0..n_layers``).
        model: value of the ``model`` column.
        steps: training steps for the across-time rows (empty: none).
        audits: whether to include worst-case audit rows.
    """
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    layers = range(n_layers + 1)
    # Lens KL by layer: both fall to 0 at the last layer; tuned below logit.
    for layer in layers:
        frac = 1 - layer / n_layers
        for method, scale in (("logit_lens", 6.0), ("tuned_lens", 1.5)):
            v = scale * frac**1.3 + (0.02 if layer < n_layers else 0.0)
            lo, hi = _ci(rng, v, 0.08 * v + 0.01)
            rows.append(
                Row(
                    "kl",
                    v,
                    method,
                    layer,
                    model,
                    dataset="pocket-corpus",
                    split="val",
                    ci_low=max(lo, 0.0),
                    ci_high=hi,
                    n=512,
                )
            )
    # Prediction trajectory for one prompt.
    prompt = ["The", " cat", " sat", " on", " the"]
    final = [" cat", " sat", " on", " the", " mat"]
    for method in ("logit_lens", "tuned_lens"):
        for layer in layers:
            for pos, tok in enumerate(prompt):
                frac = layer / n_layers
                right = frac > (0.8 if method == "logit_lens" else 0.4) or layer == n_layers
                guess = final[pos] if right else [" the", ",", " a", " of"][(pos + layer) % 4]
                p = float(np.clip(0.15 + 0.7 * frac + 0.05 * rng.standard_normal(), 0.02, 0.99))
                # as mindscope.lenses.Trajectory.to_rows writes them
                extra = json.dumps({"pos": pos, "input_token": tok, "top_token": guess})
                kl = 4.0 * (1 - frac) * (1.0 if method == "logit_lens" else 0.3)
                for metric, value in (("top_prob", p), ("kl", kl)):
                    rows.append(
                        Row(metric, value, method, layer, model, dataset="prompt", n=1, extra=extra)
                    )
    # Reporter AUROC by layer.
    methods = {"lr": 0.97, "diffmean": 0.93, "lda": 0.95, "ccs": 0.88, "crc": 0.9, "random": 0.55}
    for method, top in methods.items():
        for layer in layers:
            peak = np.exp(-(((layer - 0.6 * n_layers) / (0.45 * n_layers)) ** 2))
            v = float(np.clip(0.5 + (top - 0.5) * peak + 0.015 * rng.standard_normal(), 0, 1))
            lo, hi = _ci(rng, v, 0.025)
            rows.append(
                Row(
                    "auroc",
                    v,
                    method,
                    layer,
                    model,
                    dataset="quirky-arith",
                    split="test",
                    ci_low=max(lo, 0),
                    ci_high=min(hi, 1),
                    n=800,
                )
            )
    # Quirky transfer matrix at a middle layer, and fraction of gap recovered.
    dists = ["alice-easy", "alice-hard", "bob-easy", "bob-hard"]
    mid = max(1, int(0.6 * n_layers))
    for method in ("lr", "ccs"):
        for tr in dists:
            for ev in dists:
                same_p = tr.split("-")[0] == ev.split("-")[0]
                v = (0.95 if same_p else 0.80) - (0.08 if ev.endswith("hard") else 0.0)
                v = float(
                    np.clip(
                        v - (0.06 if method == "ccs" else 0) + 0.02 * rng.standard_normal(), 0, 1
                    )
                )
                rows.append(
                    Row(
                        "auroc",
                        v,
                        method,
                        mid,
                        model,
                        dataset="quirky-arith",
                        split="test",
                        n=400,
                        extra=json.dumps({"train": tr, "eval": ev, "labels": "truth"}),
                    )
                )
        for layer in layers:
            v = float(np.clip(0.2 + 0.75 * layer / n_layers + 0.05 * rng.standard_normal(), 0, 1.1))
            lo, hi = _ci(rng, v, 0.07)
            rows.append(
                Row(
                    "gap_recovered",
                    v,
                    method,
                    layer,
                    model,
                    dataset="quirky-arith",
                    split="alice-easy->bob-hard",
                    ci_low=lo,
                    ci_high=hi,
                    n=400,
                )
            )
    # Across time: best-layer AUROC and tuned-lens KL at several checkpoints.
    for i, step in enumerate(steps):
        t = i / max(1, len(steps) - 1)
        for layer in (mid, n_layers):
            v = float(0.5 + 0.45 * t**0.7 + 0.01 * rng.standard_normal() - 0.03 * (layer != mid))
            lo, hi = _ci(rng, v, 0.03)
            rows.append(
                Row(
                    "auroc",
                    v,
                    "lr",
                    layer,
                    model,
                    revision=f"step{step}",
                    step=step,
                    dataset="quirky-arith",
                    split="test",
                    ci_low=lo,
                    ci_high=hi,
                    n=800,
                )
            )
        v = float(3.0 * (1 - t) + 0.4)
        rows.append(
            Row(
                "kl",
                v,
                "tuned_lens",
                mid,
                model,
                revision=f"step{step}",
                step=step,
                dataset="pocket-corpus",
                split="val",
                ci_low=v - 0.1,
                ci_high=v + 0.1,
                n=512,
            )
        )
    if audits:
        for method, v in (("mahalanobis", 0.91), ("lr-disagreement", 0.84)):
            rows.append(
                Row(
                    "audit_anomaly_auroc",
                    v,
                    method,
                    -1,
                    model,
                    dataset="quirky-arith",
                    split="audit",
                    ci_low=v - 0.04,
                    ci_high=min(1, v + 0.04),
                    n=300,
                )
            )
        for layer in layers:
            v = float(0.02 + 0.1 * np.exp(-layer))
            rows.append(
                Row(
                    "audit_disagreement_rate",
                    v,
                    "lr",
                    layer,
                    model,
                    dataset="quirky-arith",
                    split="audit",
                    ci_low=v * 0.7,
                    ci_high=v * 1.3,
                    n=2000,
                )
            )
    return to_frame(rows)
