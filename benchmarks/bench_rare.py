"""Cost per model call of ITGIS, MHIS and CE against naive sampling (same model, distribution,
target and budget).

Each method runs ``estimate_rare`` with the same budget; the time per model call (pilot and
gradient passes included; gradient passes count as one call each, so their backward pass is
part of the overhead being measured) is compared with naive sampling's. Repetitions are
interleaved (naive, ITGIS, MHIS, CE, CE + search, naive, ...) and medians printed, with the
issue's target (ITGIS and MHIS at most 1.3x naive per call).

Run::

    .venv/bin/python benchmarks/bench_rare.py            # pocket-lm, 4 x 64 tokens, target 'N'
    .venv/bin/python benchmarks/bench_rare.py --model organism:quirky-arith --tokens all \
        --weights zipf --target 0
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _figures import record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism:pocket-lm")
    ap.add_argument("--tokens", default="random:64", help="all | A-B | ids | random:K")
    ap.add_argument("--weights", choices=["uniform", "zipf"], default="uniform")
    ap.add_argument("--positions", type=int, default=4)
    ap.add_argument("--target", type=int, default=46, help="bad token id (arg-max)")
    ap.add_argument("--budget", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--methods",
        default="naive,itgis,mhis,ce,ce+search",
        help="methods to time (naive always); a subset records bench_rare_<methods>",
    )
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import mindscope as ms
    from mindscope.audit.rare import BadOutput, InputDistribution, estimate_rare
    from mindscope.audit.rare.distributions import token_set, zipf_unigram
    from mindscope.audit.rare.validate import method_options

    h = ms.load_model(args.model, device="cpu")
    v = int(h.vocab_size)
    toks = token_set(args.tokens, v, what="--tokens")
    if args.weights == "zipf":
        dist = zipf_unigram(toks, args.positions, v)
    else:
        dist = InputDistribution.uniform(toks, args.positions, v)
    bad = BadOutput((args.target,))
    names = ["naive", *[m for m in args.methods.split(",") if m and m != "naive"]]
    per_call: dict[str, list[float]] = {m: [] for m in names}
    estimate_rare(h, dist, bad, method="naive", budget=1024)  # warm-up, not timed
    for r in range(args.repeats):
        for method in per_call:
            t0 = time.perf_counter()
            est_method, kw = method_options(method)
            est = estimate_rare(h, dist, bad, method=est_method, budget=args.budget, seed=r, **kw)
            per_call[method].append((time.perf_counter() - t0) / est.n_calls)
        print(
            f"rep {r}: " + ", ".join(f"{m} {v[-1] * 1e6:.0f} us/call" for m, v in per_call.items()),
            flush=True,
        )
    base = statistics.median(per_call["naive"])
    print(
        f"model {args.model}, {len(toks)} tokens x {args.positions} positions, "
        f"budget {args.budget}, {args.threads} thread(s), {args.repeats} interleaved repetitions"
    )
    for m, vals in per_call.items():
        med = statistics.median(vals)
        verdict = ""
        if m in ("itgis", "mhis"):
            verdict = f" (target <= 1.3: {'PASS' if med / base <= 1.3 else 'FAIL'})"
        print(
            f"{m:>9}: median {med * 1e6:.0f} us per model call, ratio vs naive "
            f"{med / base:.2f}{verdict}"
        )
    figures = {"naive_us": (base * 1e6, "us/call", "naive sampling, time per model call")}
    for m, vals in per_call.items():
        if m != "naive":
            key = m.replace("+", "_") + "_ratio"
            figures[key] = (statistics.median(vals) / base, "ratio", f"{m} / naive per call")
    full = set(names) == {"naive", "itgis", "mhis", "ce", "ce+search"}
    name = (
        "bench_rare" if full else "bench_rare_" + "_".join(n.replace("+", "_") for n in names[1:])
    )
    record(name, figures, reps=args.repeats)


if __name__ == "__main__":
    main()
