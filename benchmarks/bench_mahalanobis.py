"""Benchmark: mindscope's streaming Mahalanobis detector vs scikit-learn.

Data (synthetic, stated): ``--n`` rows of width ``--d`` (default 200,000 x 768), float32,
``x = z @ A + mu`` with ``z ~ N(0, I)``, ``A`` a fixed random ``d x d`` mixing matrix / sqrt(d)
and ``mu`` a fixed offset, generated chunk by chunk from a seeded torch generator.

1. **Memory is flat in n.** In a fresh subprocess per size, ``MahalanobisFitter.update`` is
   fed chunks of ``--chunk`` rows generated on the fly (never all rows at once), then
   ``detector()`` freezes it and every chunk is scored again. The peak RSS (``ru_maxrss``) at
   ``--n`` rows is compared with the peak at ``--n / 10`` rows (target: within 1.2x).
2. **Speed.** The same data held in memory (one ``[n, d]`` float32 array): mindscope
   (``MahalanobisDetector(shrinkage=0).fit(x)`` = the streaming fitter over 8192-row chunks,
   float64 moments, then ``score(x)``) vs scikit-learn (``EmpiricalCovariance().fit(x)`` then
   ``.mahalanobis(x)``), both the maximum-likelihood covariance without shrinkage. Repetitions
   alternate the two; medians and the ratio (sklearn time / mindscope time, > 1 = mindscope
   faster) are printed, and the two sets of distances are checked to agree.

Both sides use ``--threads`` BLAS/torch threads.

    .venv/bin/python benchmarks/bench_mahalanobis.py                  # 200k x 768, 3 reps
    .venv/bin/python benchmarks/bench_mahalanobis.py --n 20000 --reps 1  # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _figures import record

ROOT = Path(__file__).resolve().parent.parent

MEMORY_WORKER = r"""
import json, resource, sys
import torch
torch.set_num_threads(int(sys.argv[4]))
from mindscope.audit import MahalanobisFitter
n, d, chunk = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
g = torch.Generator().manual_seed(0)
mix = torch.randn(d, d, generator=g) / d**0.5
mu = torch.randn(d, generator=g)
def chunks(seed):
    gen = torch.Generator().manual_seed(seed)
    for s in range(0, n, chunk):
        yield torch.randn(min(chunk, n - s), d, generator=gen) @ mix + mu
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
f = MahalanobisFitter(shrinkage=0)
for c in chunks(1):
    f.update(c)
det = f.detector()
total = 0.0
for c in chunks(1):
    total += float(det.score(c).sum())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"n": n, "peak_rss_mb": peak / 1024, "rss_before_mb": base / 1024,
                  "mean_d2": total / n}))
"""


def _set_threads(threads: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def memory(n: int, d: int, chunk: int, threads: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_WORKER, str(n), str(d), str(chunk), str(threads)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def speed(n: int, d: int, reps: int, threads: int) -> dict[str, Any]:
    import numpy as np
    import torch
    from sklearn.covariance import EmpiricalCovariance

    from mindscope.audit import MahalanobisDetector

    torch.set_num_threads(threads)
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(d, d, generator=g) / d**0.5
    mu = torch.randn(d, generator=g)
    x = (torch.randn(n, d, generator=g) @ mix + mu).numpy()  # [n, d] float32, in memory
    times: dict[str, list[float]] = {"mindscope": [], "sklearn": []}
    ours = ref = None
    for rep in range(reps):
        for name in ("sklearn", "mindscope") if rep % 2 == 0 else ("mindscope", "sklearn"):
            t0 = time.perf_counter()
            if name == "mindscope":
                ours = MahalanobisDetector(shrinkage=0).fit(x).score(x).numpy()
            else:
                ref = EmpiricalCovariance().fit(x).mahalanobis(x)
            times[name].append(time.perf_counter() - t0)
            print(f"  rep {rep} {name:9s} {times[name][-1]:7.2f} s", flush=True)
    assert ours is not None and ref is not None
    rel = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-9)))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"speed, fit + score of {n} x {d} in memory ({reps} interleaved reps, medians):")
    print(f"  mindscope MahalanobisDetector(shrinkage=0)   {med['mindscope']:7.2f} s")
    print(f"  sklearn EmpiricalCovariance + mahalanobis    {med['sklearn']:7.2f} s")
    print(f"  ratio sklearn / mindscope: {med['sklearn'] / med['mindscope']:.2f}x")
    print(f"  max relative difference of the distances: {rel:.1e}")
    return {
        "mindscope_s": (med["mindscope"], "s", f"fit + score of {n} x {d} in memory"),
        "sklearn_s": (med["sklearn"], "s", "EmpiricalCovariance + mahalanobis"),
        "speedup": (med["sklearn"] / med["mindscope"], "x", "sklearn time / mindscope time"),
        "max_rel_diff": (rel, "relative", "largest relative difference of the distances"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=768)
    ap.add_argument("--chunk", type=int, default=10_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    _set_threads(args.threads)
    small, big = memory(args.n // 10, args.d, args.chunk, args.threads), None
    big = memory(args.n, args.d, args.chunk, args.threads)
    print(f"memory, streaming fit + score, d={args.d}, chunks of {args.chunk}:")
    for m in (small, big):
        rss, d2 = m["peak_rss_mb"], m["mean_d2"]
        print(f"  n={int(m['n']):>8d}  peak RSS {rss:7.1f} MB  mean d^2 {d2:.1f}")
    ratio = big["peak_rss_mb"] / small["peak_rss_mb"]
    print(f"  peak RSS ratio n={args.n} / n={args.n // 10}: {ratio:.3f} (target <= 1.2)")
    figures: dict[str, Any] = {
        "rss_ratio": (ratio, "ratio", f"peak RSS n={args.n} / n={args.n // 10}, streaming")
    }
    if not args.skip_speed:
        figures.update(speed(args.n, args.d, args.reps, args.threads))
    record("bench_mahalanobis", figures, reps=args.reps)


if __name__ == "__main__":
    main()
