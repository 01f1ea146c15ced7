"""Benchmark: ``LogisticReporter`` (cross-validated C, every layer at once) against
scikit-learn's ``LogisticRegressionCV`` fitted layer by layer on the same data.

Issue 11's case: 24 training examples x 7 layers x d=384 (a 40-statement dataset split 60/40 on
all-MiniLM-L6-v2) took 20 s to fit before; the target is well under a second, faster than
scikit-learn at equal held-out AUROC. Data: planted pairs (``mindscope.probes.synthetic``), the
same Cs grid (6 values) and 5 stratified folds on both sides. Repetitions are interleaved and
the medians compared.

Run: ``.venv/bin/python benchmarks/bench_logistic_cv.py [--n 24] [--d 384] [--layers 7]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch
from _figures import record
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import roc_auc_score

from mindscope.probes import LogisticReporter
from mindscope.probes.logistic import DEFAULT_CS
from mindscope.probes.synthetic import planted_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="training pairs")
    ap.add_argument("--n-test", type=int, default=400)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--layers", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, _ = planted_pairs(args.n, d=args.d, layers=args.layers, strength=1.0, seed=0)
    xt, yt, _ = planted_pairs(args.n_test, d=args.d, layers=args.layers, strength=1.0, seed=1)
    diff = (x[:, :, 1] - x[:, :, 0]).double().numpy()  # [L, n, d]
    diff_t = (xt[:, :, 1] - xt[:, :, 0]).double().numpy()
    mean, std = diff.mean(1, keepdims=True), diff.std(1, ddof=1, keepdims=True)

    def ours() -> tuple[float, list[float]]:
        t = time.perf_counter()
        rep = LogisticReporter().fit(x, y)
        el = time.perf_counter() - t
        p = rep.predict_proba(xt).numpy()
        return el, [roc_auc_score(yt.numpy(), p[k]) for k in range(args.layers)]

    def sklearn() -> tuple[float, list[float]]:
        t = time.perf_counter()
        models = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for k in range(args.layers):
                z = (diff[k] - mean[k]) / std[k]  # same standardisation as ours
                models.append(
                    LogisticRegressionCV(Cs=list(DEFAULT_CS), cv=5, max_iter=1000).fit(z, y.numpy())
                )
        el = time.perf_counter() - t
        aucs = [
            roc_auc_score(yt.numpy(), m.predict_proba((diff_t[k] - mean[k]) / std[k])[:, 1])
            for k, m in enumerate(models)
        ]
        return el, aucs

    ours()
    sklearn()  # warm-up
    t_ours, t_sk = [], []
    for _ in range(args.reps):
        a, auc_ours = ours()
        b, auc_sk = sklearn()
        t_ours.append(a)
        t_sk.append(b)
    mo, ms_ = statistics.median(t_ours), statistics.median(t_sk)
    print(
        f"{args.n} pairs x {args.layers} layers x d={args.d}, Cs={len(DEFAULT_CS)}, 5-fold CV, "
        f"{args.reps} interleaved reps, {args.threads} threads"
    )
    print(f"  mindscope LogisticReporter (all layers)   median {mo * 1e3:8.1f} ms")
    print(f"  sklearn LogisticRegressionCV (per layer)  median {ms_ * 1e3:8.1f} ms")
    print(f"  ratio mindscope / sklearn                 {mo / ms_:.3f}  (target < 1)")
    print(f"  held-out AUROC per layer, mindscope: {np.round(auc_ours, 3).tolist()}")
    print(f"  held-out AUROC per layer, sklearn:   {np.round(auc_sk, 3).tolist()}")
    gap = float(np.mean(auc_ours) - np.mean(auc_sk))
    print(f"  mean AUROC difference (mindscope - sklearn) {gap:+.4f}")
    print("PASS" if mo < ms_ and mo < 1.0 and gap > -0.01 else "FAIL")
    record(
        "bench_logistic_cv",
        {
            "mindscope_ms": (mo * 1e3, "ms", "LogisticReporter, all layers at once"),
            "sklearn_ms": (ms_ * 1e3, "ms", "LogisticRegressionCV, layer by layer"),
            "ratio": (mo / ms_, "ratio", "mindscope / sklearn"),
            "auroc_gap": (gap, "AUROC", "mean held-out AUROC, mindscope - sklearn"),
        },
        reps=args.reps,
    )


if __name__ == "__main__":
    main()
