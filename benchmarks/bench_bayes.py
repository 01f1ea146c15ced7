"""Benchmark: scoring contexts against dMMSE with a large task pool, time and peak memory.

Data (synthetic, stated): a pool of ``--m`` tasks (default 2^14) drawn from ``N(0, I_8)``;
``--n`` contexts (default 10,000) of ``K = 16`` pairs, ``x ~ N(0, I_8)``, ``y = w . x + e``
with ``w`` from the pool and ``e ~ N(0, 0.25)``. The quantity is the dMMSE posterior mean of
``w`` after every prefix of every context (``[n, K, 8]``): mindscope in float32 (the dtype of
the contexts), the NumPy loop in float64; the largest difference is recorded.

1. **mindscope** (:func:`mindscope.bayes.dmmse`): the log-likelihood of every prefix is a
   dot product of prefix features (running sums of ``x x^T`` and ``y x``) with task features
   (``[w, w w^T]``), so the posterior mean is softmax attention of the ``n*K`` prefixes over
   the ``M`` tasks, run by PyTorch's fused CPU attention kernel on slices of contexts and
   chunks of tasks merged by a streaming log-sum-exp (no block over ``budget`` elements,
   default 2^20): peak memory does not grow with ``M``. Run in a fresh subprocess per ``M`` in
   ``--m-grid`` (on ``--n-grid`` contexts); the peak RSS (``ru_maxrss``) over the import
   baseline is recorded.
2. **A plain NumPy loop** over contexts: per context the ``[K, M]`` log-likelihood matrix,
   a max-shifted softmax per prefix, and the weighted mean of the tasks. Its time on
   ``--n-loop`` contexts is scaled to ``--n`` (stated in the figure's name); its peak RSS is
   recorded the same way. Both results are checked to agree on the common contexts.

Wall-clock and CPU seconds (``time.process_time``, all threads) are both recorded: on a
loaded machine the CPU seconds move less than the wall clock.

    .venv/bin/python benchmarks/bench_bayes.py                    # n = 10,000, M = 2^14, 2 threads
    .venv/bin/python benchmarks/bench_bayes.py --quick            # n = 1,000, one repetition
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
import numpy as np, torch
method, n, m, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
n_data = int(sys.argv[6])
torch.set_num_threads(threads)
from mindscope.bayes import FiniteTaskPrior, sample_contexts, dmmse
prior = FiniteTaskPrior.sample_pool(m, 8, 0.25, seed=0)
gen = torch.Generator().manual_seed(1)
x, y = sample_contexts(prior.sample(n_data, gen), 16, 0.5, gen)
x, y, tasks = x[:n], y[:n], prior.tasks  # float32, as the organisms' contexts
if method != "mindscope":
    x, y, tasks = x.double(), y.double(), tasks.double()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0, c0 = time.perf_counter(), time.process_time()
if method == "mindscope":
    out = dmmse(tasks, 0.25, x, y).numpy()
else:
    xn, yn, tn = x.numpy(), y.numpy(), tasks.numpy()
    out = np.empty((n, 16, 8))
    for i in range(n):
        resid = (yn[i][:, None] - xn[i] @ tn.T) ** 2           # [K, M]
        ll = -(np.cumsum(resid, 0) - resid) / (2 * 0.25)        # [K, M] exclusive prefix sums
        p = np.exp(ll - ll.max(1, keepdims=True))
        out[i] = (p @ tn) / p.sum(1, keepdims=True)
sec, cpu = time.perf_counter() - t0, time.process_time() - c0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
np.save(sys.argv[5], out[:50])
print(json.dumps({"seconds": sec, "cpu_seconds": cpu, "peak_mb": (peak - base) / 1024}))
"""


def _child(method: str, n: int, m: int, threads: int, dump: Path, n_data: int) -> dict[str, float]:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            method,
            str(n),
            str(m),
            str(threads),
            str(dump),
            str(n_data),
        ],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run the benchmark and record its figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--m", type=int, default=1 << 14)
    ap.add_argument("--n-loop", type=int, default=500, help="contexts the NumPy loop runs")
    ap.add_argument("--m-grid", default="4096,16384,65536,262144")
    ap.add_argument("--n-grid", type=int, default=500, help="contexts of the memory-vs-M runs")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="n = 1,000, 100 loop contexts, 1 rep")
    args = ap.parse_args()
    if args.quick:
        args.n, args.n_loop, args.reps, args.n_grid = 1000, 100, 1, 1000
    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent))
    from _figures import record

    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    ms_t, np_t, ms_mem, np_mem, ms_cpu, np_cpu = [], [], [], [], [], []
    ms1_t, ms1_cpu = [], []
    for _ in range(args.reps):  # interleaved repetitions
        a = _child("mindscope", args.n, args.m, args.threads, tmp / "bb_ms.npy", args.n)
        a1 = _child("mindscope", args.n, args.m, 1, tmp / "bb_ms1.npy", args.n)
        # the loop's small matmuls are fastest on one BLAS thread (more threads only wait)
        b = _child("numpy", args.n_loop, args.m, 1, tmp / "bb_np.npy", args.n)
        ms1_t.append(a1["seconds"])
        ms1_cpu.append(a1["cpu_seconds"])
        ms_t.append(a["seconds"])
        np_t.append(b["seconds"] * args.n / args.n_loop)
        ms_cpu.append(a["cpu_seconds"])
        np_cpu.append(b["cpu_seconds"] * args.n / args.n_loop)
        ms_mem.append(a["peak_mb"])
        np_mem.append(b["peak_mb"])
    k = min(50, args.n_loop)
    gap = float(np.abs(np.load(tmp / "bb_ms.npy")[:k] - np.load(tmp / "bb_np.npy")[:k]).max())
    assert gap < 1e-3, f"mindscope and the NumPy loop disagree by {gap}"
    mem_by_m = {}
    for m in [int(v) for v in args.m_grid.split(",")]:
        mem_by_m[m] = _child(
            "mindscope", args.n_grid, m, args.threads, tmp / "bb_g.npy", args.n_grid
        )
    figures = {
        "mindscope_seconds": (statistics.median(ms_t), "s"),
        "numpy_loop_seconds_scaled": (statistics.median(np_t), "s"),
        "speedup": (statistics.median(np_t) / statistics.median(ms_t), "x"),
        "mindscope_seconds_1thread": (statistics.median(ms1_t), "s"),
        "speedup_1thread": (statistics.median(np_t) / statistics.median(ms1_t), "x"),
        "mindscope_cpu_seconds": (statistics.median(ms_cpu), "s"),
        "mindscope_cpu_seconds_1thread": (statistics.median(ms1_cpu), "s"),
        "numpy_loop_cpu_seconds_scaled": (statistics.median(np_cpu), "s"),
        "cpu_speedup_1thread": (statistics.median(np_cpu) / statistics.median(ms1_cpu), "x"),
        "mindscope_peak_mb": (statistics.median(ms_mem), "MB"),
        "numpy_loop_peak_mb": (statistics.median(np_mem), "MB"),
        "max_abs_diff": (gap, "abs"),
        **{f"peak_mb_m{m}": (v["peak_mb"], "MB") for m, v in mem_by_m.items()},
        **{f"seconds_m{m}": (v["seconds"], "s") for m, v in mem_by_m.items()},
        "n": (args.n, "contexts"),
        "n_grid": (args.n_grid, "contexts"),
        "m": (args.m, "tasks"),
        "threads": (args.threads, "threads"),
    }
    for k, (v, unit) in figures.items():
        print(f"{k:>28}: {v:.4g} {unit}")
    record(
        "bench_bayes",
        figures,
        reps=args.reps,
        notes=f"NumPy loop (one thread) timed on {args.n_loop} contexts, scaled to n; mindscope "
        f"on {args.threads} threads and on 1; peak RSS over the import baseline (ru_maxrss), "
        "one fresh process per measurement",
    )


if __name__ == "__main__":
    main()
