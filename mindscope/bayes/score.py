"""Scores of an in-context learner against exact posteriors, per context length.

Each function returns :class:`mindscope.results.Row` objects (provenance empty, filled by the
caller). The context length ``k`` (pairs seen before the prediction; tokens seen for an HMM)
goes in ``extra.k`` (and ``extra.pos``, which marks per-position rows for the report);
``extra.k == "all"`` rows average over the lengths given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = ["regression_scores", "hmm_scores", "mean_ci", "transition_point"]


def mean_ci(v: Tensor) -> tuple[float, float, float]:
    """Mean of ``v [n]`` with a normal-approximation 95% interval."""
    v = v.double()
    m = float(v.mean())
    if v.numel() < 2:
        return m, math.nan, math.nan
    half = 1.96 * float(v.std()) / math.sqrt(v.numel())
    return m, m - half, m + half


def _rows(
    per_k: Mapping[str, Tensor], dataset: str, extra: Mapping[str, Any], ks: Sequence[int]
) -> list[Row]:
    """``per_k[metric]``: ``[n, K]`` per-context values -> one row per (metric, k) + averages."""
    rows: list[Row] = []
    for metric, vals in per_k.items():
        method, _, name = metric.partition("/")
        n = vals.shape[0]
        for k in ks:
            mean, lo, hi = mean_ci(vals[:, k])
            rows.append(
                Row(
                    name,
                    mean,
                    method,
                    dataset=dataset,
                    ci_low=lo,
                    ci_high=hi,
                    n=n,
                    _extra={**extra, "k": k, "pos": k},
                )
            )
        mean, lo, hi = mean_ci(vals[:, list(ks)].mean(1))
        rows.append(
            Row(
                name,
                mean,
                method,
                dataset=dataset,
                ci_low=lo,
                ci_high=hi,
                n=n,
                _extra={**extra, "k": "all", "k_min": min(ks), "k_max": max(ks)},
            )
        )
    return rows


def regression_scores(
    model: Tensor,
    y: Tensor,
    truth: Tensor,
    posteriors: Mapping[str, Tensor],
    *,
    dataset: str = "",
    extra: Mapping[str, Any] | None = None,
    ks: Sequence[int] | None = None,
) -> list[Row]:
    """Score predictions of ``y_k`` from the ``k`` pairs before it.

    Args:
        model: ``[n, K]`` the model's predictions.
        y: ``[n, K]`` the observed targets (with noise).
        truth: ``[n, K]`` the noise-free targets ``x_k . w`` (the truth a learner can reach).
        posteriors: ``{name: [n, K]}`` each posterior's prediction (e.g. ``dmmse``, ``ridge``).
        ks: context lengths to report (default all ``0 .. K-1``).

    Returns rows (``method``/``metric``): ``model/mse`` and ``<name>/mse`` (squared error
    against ``y``), ``model/excess_mse`` (model minus the best posterior's error, per context),
    ``<name>/dist`` (mean squared distance between the model's and the posterior's
    predictions), ``<name>/toward_truth`` (the posterior's squared error to ``truth`` minus
    the model's: positive when the model departs from the posterior towards the truth), and
    ``model/truth_mse`` and ``<name>/truth_mse`` (squared error to ``truth``).
    """
    if model.shape != y.shape or truth.shape != y.shape:
        raise MindscopeError(
            f"model {tuple(model.shape)}, y {tuple(y.shape)} and truth {tuple(truth.shape)} differ"
        )
    if not posteriors:
        raise MindscopeError("give at least one posterior to score against")
    ks = list(range(y.shape[1])) if ks is None else list(ks)
    model, y, truth = model.double(), y.double(), truth.double()
    per_k: dict[str, Tensor] = {
        "model/mse": (model - y).square(),
        "model/truth_mse": (model - truth).square(),
    }
    post_err = []
    for name, p in posteriors.items():
        if p.shape != y.shape:
            raise MindscopeError(
                f"posterior {name!r} has shape {tuple(p.shape)}, not {tuple(y.shape)}"
            )
        p = p.double()
        per_k[f"{name}/mse"] = (p - y).square()
        per_k[f"{name}/truth_mse"] = (p - truth).square()
        per_k[f"{name}/dist"] = (model - p).square()
        per_k[f"{name}/toward_truth"] = (p - truth).square() - (model - truth).square()
        post_err.append(per_k[f"{name}/mse"])
    best = torch.stack(post_err).mean(1, keepdim=True)  # [P, 1, K] mean error per posterior
    idx = best.argmin(0)[0]  # [K] the best posterior at each length
    best_err = torch.stack(post_err)[idx, :, torch.arange(y.shape[1])].T  # [n, K]
    per_k["model/excess_mse"] = per_k["model/mse"] - best_err
    return _rows(per_k, dataset, extra or {}, ks)


def hmm_scores(
    model_logprobs: Tensor,
    references: Mapping[str, Tensor],
    *,
    dataset: str = "",
    extra: Mapping[str, Any] | None = None,
    ks: Sequence[int] | None = None,
) -> list[Row]:
    """Next-token KL (nats) from each reference predictive to the model's, per position.

    Args:
        model_logprobs: ``[n, T, V]`` the model's log-probabilities of the next symbol.
        references: ``{name: [n, T, V]}`` e.g. ``bayes`` (the training mixture's predictive)
            and ``truth`` (the generating HMM's own predictive).

    Returns rows ``<name>/kl_next`` per position ``k`` (tokens seen) and ``<name>/entropy``
    (the reference's own entropy, the floor of the model's next-token loss).
    """
    from mindscope.bayes.hmm import kl_to_bayes

    ks = list(range(model_logprobs.shape[1])) if ks is None else list(ks)
    per_k: dict[str, Tensor] = {}
    for name, ref in references.items():
        per_k[f"{name}/kl_next"] = kl_to_bayes(ref, model_logprobs)
        p = ref.double()
        per_k[f"{name}/entropy"] = -(p * p.clamp_min(1e-300).log()).sum(-1)
    return _rows(per_k, dataset, extra or {}, ks)


def transition_point(ms: Sequence[float], closeness: Sequence[float]) -> float:
    """Where ``closeness`` (e.g. ``dist_dmmse / (dist_dmmse + dist_ridge)``, 0 = at dMMSE,
    1 = at ridge) first crosses 0.5, interpolated in ``log2 M``; NaN when it never does."""
    m = np.asarray(ms, dtype=float)
    c = np.asarray(closeness, dtype=float)
    order = np.argsort(m)
    m, c = np.log2(m[order]), c[order]
    for i in range(len(m) - 1):
        if (c[i] - 0.5) * (c[i + 1] - 0.5) <= 0 and c[i] != c[i + 1]:
            t = (0.5 - c[i]) / (c[i + 1] - c[i])
            return float(2 ** (m[i] + t * (m[i + 1] - m[i])))
    return math.nan
