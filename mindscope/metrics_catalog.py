"""One name and one direction per metric: what "best" means, for the report and the terminal.

Every metric of the results table (:mod:`mindscope.results`) has one entry here: its display
name, whether a better value is ``higher``, ``lower``, ``closer`` to a target value, or has no
better side (``none``: an estimate, a count, a histogram bar), and its chance level where one
exists. :func:`best` picks the best row of a series by that direction, with one tie-breaking
rule: **among equal values the lowest layer wins, then the earliest step, then the first row in
table order**. The report's summary tables, ``mindscope runs`` and the CLI summaries all call it.

A metric name is looked up as given, then with a known prefix removed (``audit_``, ``train_``,
``val_``), then by its longest catalogued stem followed by ``_`` or ``@`` (``auroc_bob`` is an
``auroc``, ``audit_recall@0.01fpr`` a ``recall``); a name no rule knows counts as higher-is-better.
This module imports only pandas and numpy (no plotting), so any layer may use it.

    from mindscope.metrics_catalog import best, metric_info
    metric_info("ece").better                # 'lower'
    row = best(df[df.split == "test"], "auroc")   # the row of the best layer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from mindscope.errors import MindscopeError

__all__ = [
    "Better",
    "MetricInfo",
    "CATALOG",
    "TIE_RULE",
    "metric_info",
    "display_name",
    "better_direction",
    "lower_is_better",
    "badness",
    "best",
]

Better = Literal["higher", "lower", "closer", "none"]
"""Which values of a metric are better: ``higher``, ``lower``, ``closer`` to ``target``, or
``none`` (no better side: an estimate, a count, a histogram)."""

TIE_RULE = "among equal values the lowest layer wins, then the earliest step, then table order"
"""The one tie-breaking rule of :func:`best`."""


@dataclass(frozen=True)
class MetricInfo:
    """What one metric is.

    Attributes:
        name: the catalogue key (the metric's stem).
        display: the name a table or axis shows.
        better: ``higher``, ``lower``, ``closer`` (to ``target``) or ``none``.
        target: the value ``closer`` metrics aim at (``None`` otherwise).
        chance: the value of a guess, a number or a phrase (``"base rate"``); ``None`` if none.
    """

    name: str
    display: str
    better: Better
    target: float | None = None
    chance: float | str | None = None


def _m(
    name: str,
    display: str,
    better: Better,
    target: float | None = None,
    chance: float | str | None = None,
) -> tuple[str, MetricInfo]:
    return name, MetricInfo(name, display, better, target, chance)


CATALOG: dict[str, MetricInfo] = dict(
    [
        # eliciting latent knowledge
        _m("auroc", "AUROC", "higher", chance=0.5),
        _m("auc", "AUROC", "higher", chance=0.5),
        _m("transfer_auroc", "transfer AUROC", "higher", chance=0.5),
        _m("quirky_transfer_auroc", "transfer AUROC", "higher", chance=0.5),
        _m("acc", "accuracy", "higher", chance="base rate"),
        _m("accuracy", "accuracy", "higher", chance="base rate"),
        _m("cal_acc", "calibrated accuracy", "higher", chance="base rate"),
        _m("calibrated_accuracy", "calibrated accuracy", "higher", chance="base rate"),
        _m("ece", "expected calibration error", "lower", chance=None),
        _m("brier", "Brier score", "lower"),
        _m("pgr", "performance gap recovered", "higher", chance=0.0),
        _m("gap_recovered", "fraction of gap recovered", "higher", chance=0.0),
        _m("gap_recovered_best", "fraction of gap recovered (best layer)", "higher", chance=0.0),
        _m("fraction_gap_recovered", "fraction of gap recovered", "higher", chance=0.0),
        _m("fraction_of_gap_recovered", "fraction of gap recovered", "higher", chance=0.0),
        # lenses
        _m("kl", "KL to the final layer (nats)", "lower"),
        _m("kl_div", "KL divergence (nats)", "lower"),
        _m("kl_divergence", "KL divergence (nats)", "lower"),
        _m("kl_to_final", "KL to the final layer (nats)", "lower"),
        _m("kl_backward", "backward KL (nats)", "lower"),
        _m("lens_kl", "lens KL (nats)", "lower"),
        _m("ce", "cross-entropy (nats)", "lower"),
        _m("cross_entropy", "cross-entropy (nats)", "lower"),
        _m("loss", "loss", "lower"),
        _m("losses", "loss", "lower"),
        _m("perplexity", "perplexity", "lower"),
        _m("ppl", "perplexity", "lower"),
        _m("entropy", "entropy (nats)", "none"),
        _m("top_prob", "top-token probability", "none"),
        _m("trajectory_prob", "top-token probability", "none"),
        _m("next_prob", "probability of the actual next token", "higher"),
        _m("next_rank", "rank of the actual next token", "lower"),
        # worst-case audits (looked up without their audit_ prefix)
        _m("anomaly_auroc", "anomaly AUROC", "higher", chance=0.5),
        _m("recall", "recall at a fixed FPR", "higher"),
        _m("precision", "precision at k", "higher", chance="base rate"),
        _m("disagreement_rate", "disagreement rate", "none"),
        _m("disagreement", "disagreement score", "none"),
        _m("roc_tpr", "true-positive rate (ROC point)", "none"),
        _m("hist", "score histogram count", "none"),
        _m("monitor_fpr", "monitor false-positive rate", "lower"),
        _m("monitor_recall", "monitor recall", "higher"),
        _m("monitor_threshold", "monitor threshold", "none"),
        _m("flag_jaccard", "Jaccard overlap of flags", "none"),
        _m("score_spearman", "Spearman correlation of scores", "none"),
        # rare events and triggers
        _m("rare_probability", "estimated probability", "none"),
        _m("rare_hits", "hits", "none"),
        _m("rare_ess", "effective sample size", "higher"),
        _m("rare_within_2x", "fraction within 2x of the truth", "higher"),
        _m("rare_coverage", "95% interval coverage", "closer", target=0.95),
        _m("trigger_loss_curve", "target cross-entropy (nats)", "lower"),
        _m("trigger_search_loss", "target cross-entropy (nats)", "lower"),
        _m("trigger_reasr", "REASR on held-out contexts", "higher"),
        _m("trigger_train_success", "success on search contexts", "higher"),
        _m("trigger_token_recall", "trigger token recall", "higher"),
        # sandbox behaviour (train_<metric> curves share the entry)
        _m("tamper_rate", "tamper rate", "lower"),
        _m("counterfactual_tamper_rate", "counterfactual tamper rate", "lower"),
        _m("return_gap", "observed - true return", "lower"),
        _m("observed_return", "observed return", "higher"),
        _m("true_return", "true return", "higher"),
        _m("first_tamper_step", "first tamper step", "none"),
        _m("shortcut_rate_supervised", "shortcut rate, supervised", "lower"),
        _m("shortcut_rate_unsupervised", "shortcut rate, unsupervised", "lower"),
        _m("shortcut_rate_difference", "shortcut rate difference", "closer", target=0.0),
        _m("interruption_avoidance", "interruption avoidance", "lower"),
        _m("interrupted_rate", "interrupted rate", "none"),
        _m("wall_seconds_per_seed", "wall seconds per seed", "lower"),
        _m("cpu_seconds_per_seed", "CPU seconds per seed", "lower"),
    ]
)
"""Every catalogued metric by name."""

_PREFIXES = ("audit_", "audit.", "train_", "val_")
# Name parts that make an uncatalogued metric lower-is-better (errors, losses, divergences).
_LOWER_WORDS = ("kl", "loss", "ce", "perplexity", "ppl", "ece", "brier", "err", "error")


def metric_info(metric: str) -> MetricInfo:
    """The catalogue entry of ``metric`` (see the module docstring for the lookup rule).

    An uncatalogued name gets an entry built from its words: ``lower`` if one of them names a
    loss, divergence or error (``kl``, ``loss``, ``ce``, ``ece``, ``err``, ...), else ``higher``.
    """
    m = str(metric).lower()
    for name in (m, *(m[len(p) :] for p in _PREFIXES if m.startswith(p))):
        if name in CATALOG:
            return CATALOG[name]
        stems = [k for k in CATALOG if name.startswith(k) and name[len(k)] in "_@"]
        if stems:
            return CATALOG[max(stems, key=len)]
    words = m.replace("@", "_").replace(".", "_").split("_")
    lower = any(w in _LOWER_WORDS for w in words) or "cross_entropy" in m
    return MetricInfo(m, m, "lower" if lower else "higher")


def display_name(metric: str) -> str:
    """The name a table or an axis shows for ``metric`` (its catalogue display name, plus the
    part of the name after the catalogued stem, e.g. ``AUROC (bob)`` for ``auroc_bob``)."""
    info = metric_info(metric)
    m = str(metric).lower()
    for p in _PREFIXES:
        if m.startswith(p) and m[len(p) :].startswith(info.name):
            m = m[len(p) :]
    rest = m[len(info.name) :].lstrip("_") if m.startswith(info.name) else ""
    return f"{info.display} ({rest})" if rest and info.display != m else info.display


def better_direction(metric: str) -> Better:
    """``higher``, ``lower``, ``closer`` or ``none`` (see :data:`Better`)."""
    return metric_info(metric).better


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of ``metric`` is better (KL, losses, ECE, error rates)."""
    return metric_info(metric).better == "lower"


def badness(metric: str, values: pd.Series | np.ndarray) -> np.ndarray:
    """How far from best each value is, as a number where smaller is better: ``-value`` for
    higher-is-better, ``value`` for lower, ``|value - target|`` for closer; NaN stays NaN.

    Raises:
        MindscopeError: the metric has no better side (``none``).
    """
    info = metric_info(metric)
    v = np.asarray(values, dtype=float)
    if info.better == "higher":
        return -v
    if info.better == "lower":
        return v
    if info.better == "closer":
        return np.abs(v - float(info.target if info.target is not None else 0.0))
    raise MindscopeError(f"metric {metric!r} has no better side ({info.display}); no best value")


def best(rows: pd.DataFrame, metric: str | None = None) -> pd.Series:
    """The best row of one metric's rows, by :func:`metric_info`'s direction and :data:`TIE_RULE`.

    Args:
        rows: results rows (``metric``, ``value``; ``layer``/``step`` used to break ties).
        metric: keep only this metric's rows; ``None``: ``rows`` must hold one metric only.

    Returns:
        The chosen row (its index label is ``.name``). Rows with a NaN value never win.

    Raises:
        MindscopeError: no rows with a value, several metrics mixed, or a metric with no
            better side.
    """
    sub = rows if metric is None else rows[rows["metric"].astype(str) == metric]
    sub = sub[np.isfinite(pd.to_numeric(sub["value"], errors="coerce").to_numpy(float))]
    if metric is None:
        names = sub["metric"].astype(str).unique()
        if len(names) > 1:
            raise MindscopeError(f"best: rows of several metrics {sorted(names)}; name one")
        metric = str(names[0]) if len(names) else ""
    if sub.empty:
        raise MindscopeError(f"best: no rows of metric {metric!r} with a value")
    score = badness(metric, sub["value"])
    layer = sub["layer"].to_numpy(float) if "layer" in sub else np.zeros(len(sub))
    step = sub["step"].to_numpy(float) if "step" in sub else np.zeros(len(sub))
    order = np.lexsort((np.arange(len(sub)), step, layer, score))  # last key is the primary
    return sub.iloc[int(order[0])]
