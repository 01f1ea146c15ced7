"""The erasure audit: is the concept gone for linear probes, what is left for non-linear ones,
and how much did the edit cost compared with the oracle's?"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from mindscope.erasure.leace import LeaceFitter
from mindscope.erasure.oracle import OracleFitter
from mindscope.errors import MindscopeError

__all__ = ["probe_auroc", "erasure_audit"]


def _auroc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if score.ndim == 1:
        return float(roc_auc_score(y, score))
    return float(roc_auc_score(y, score, multi_class="ovr"))


def probe_auroc(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    kind: str = "linear",
    n_boot: int = 500,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Held-out AUROC of a probe predicting the concept, with a 95% bootstrap CI over test rows.

    Args:
        x_train, x_test: ``[n, d]``; y_train, y_test: ``[n]`` integer classes.
        kind: ``"linear"`` (logistic regression) or ``"mlp"`` (one hidden layer of 64 ReLUs,
            L-BFGS, 300 iterations).

    Returns:
        ``(auroc, ci_low, ci_high)``; multi-class concepts use one-vs-rest macro AUROC.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if kind == "linear":
        clf: Any = LogisticRegression(max_iter=2000)
    elif kind == "mlp":
        clf = MLPClassifier(
            hidden_layer_sizes=(64,), solver="lbfgs", max_iter=300, random_state=seed
        )
    else:
        raise MindscopeError(f"probe kind must be 'linear' or 'mlp', got {kind!r}")
    model = make_pipeline(StandardScaler(), clf).fit(x_train, y_train)
    proba = model.predict_proba(x_test)
    score = proba[:, 1] if proba.shape[1] == 2 else proba
    auc = _auroc(y_test, score)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y_test), len(y_test))
        if len(np.unique(y_test[idx])) < len(np.unique(y_test)):
            continue
        boots.append(_auroc(y_test[idx], score[idx]))
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    return auc, float(lo), float(hi)


def erasure_audit(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_test: torch.Tensor,
    y_test: torch.Tensor,
    *,
    n_boot: int = 500,
    seed: int = 0,
    fitter: LeaceFitter | None = None,
) -> dict[str, tuple[float, float, float]]:
    """Fit LEACE and oracle LEACE on the train rows and audit them on the test rows.

    Args:
        x_train, x_test: ``[n, d]`` activations; y_train, y_test: ``[n]`` concept classes.
        fitter: a configured (unfitted) :class:`LeaceFitter` (default settings otherwise).

    Returns:
        ``{name: (value, ci_low, ci_high)}`` with ``linear_auroc_before``,
        ``linear_auroc_after`` (should be 0.5, its CI covering it), ``mlp_auroc_before``,
        ``mlp_auroc_after`` (what a non-linear probe still reads), ``distortion_leace`` and
        ``distortion_oracle`` (mean squared edit ``E||x' - x||^2`` on the test rows, CI by
        bootstrap) and ``distortion_ratio`` (LEACE over oracle: the oracle is the least-squares
        floor on the rows it was fitted on, so about 1 or more).
    """
    y_tr, y_te = torch.as_tensor(y_train).long(), torch.as_tensor(y_test).long()
    if len(torch.unique(y_tr)) < 2:
        raise MindscopeError("the concept has one class in the training rows: nothing to erase")
    fit = (fitter or LeaceFitter()).fit(x_train, y_tr)
    eraser = fit.eraser_
    oracle = OracleFitter().fit(x_train, y_tr).eraser_
    xe_tr, xe_te = eraser(x_train.float()), eraser(x_test.float())
    xo_te = oracle(x_test.float(), y_te)
    arr = lambda t: t.detach().double().cpu().numpy()  # noqa: E731
    ytr, yte = y_tr.numpy(), y_te.numpy()
    out: dict[str, tuple[float, float, float]] = {}
    for kind in ("linear", "mlp"):
        out[f"{kind}_auroc_before"] = probe_auroc(
            arr(x_train), ytr, arr(x_test), yte, kind=kind, n_boot=n_boot, seed=seed
        )
        out[f"{kind}_auroc_after"] = probe_auroc(
            arr(xe_tr), ytr, arr(xe_te), yte, kind=kind, n_boot=n_boot, seed=seed
        )
    rng = np.random.default_rng(seed)
    d_l = arr((xe_te - x_test.float()).pow(2).sum(-1))
    d_o = arr((xo_te - x_test.float()).pow(2).sum(-1))
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(d_l), len(d_l))
        boots.append(
            (d_l[idx].mean(), d_o[idx].mean(), d_l[idx].mean() / max(d_o[idx].mean(), 1e-30))
        )
    b = np.array(boots) if boots else np.full((1, 3), np.nan)
    for j, (name, val) in enumerate(
        (
            ("distortion_leace", d_l.mean()),
            ("distortion_oracle", d_o.mean()),
            ("distortion_ratio", d_l.mean() / max(d_o.mean(), 1e-30)),
        )
    ):
        lo, hi = np.quantile(b[:, j], [0.025, 0.975])
        out[name] = (float(val), float(lo), float(hi))
    return out
