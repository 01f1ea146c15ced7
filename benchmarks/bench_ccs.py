"""Benchmark: mindscope's batched CcsReporter vs eleuther-elk 0.1.1's CcsReporter.

Data (synthetic, stated): for each of ``--layers`` layers, ``--n`` training contrast pairs
(and ``--n-test`` test pairs) of width ``--d``. Each pair shares a content vector (N(0, I)) and a
high-variance distractor (std 3 along a random direction), each side adds N(0, 0.25 I) noise,
and side 1 / side 0 get +/- s_l/2 along a planted unit "truth" direction t_l, signed by the
label. The strength s_l ramps linearly from ``--s-min`` (first layer) to ``--s-max`` (last).

mindscope fits every layer at once (``CcsReporter().fit(x[layers, n, 2, d], y)``); elk fits
``CcsReporter(CcsConfig(), d)`` layer by layer with its defaults (LEACE normalisation, 10 tries
of LBFGS) followed by its Platt scaling, exactly as ``elk.training.train`` does, in a
subprocess that runs the elk venv's python (``benchmarks/.venvs/elk``; see ``--elk-python``).
Both sides use labels only for Platt scaling (sign + scale). Timings exclude imports and data
loading; repetitions alternate elk / mindscope and the medians are printed, with the test AUROC
of each layer (``AUROC of credence(side 1) - credence(side 0)``, as elk evaluates).

    .venv/bin/python benchmarks/bench_ccs.py                 # 24 x 1024, 2000 pairs, 3 reps
    .venv/bin/python benchmarks/bench_ccs.py --layers 4 --reps 1   # quick check

Set up the elk venv (never a mindscope dependency)::

    python3 -m venv benchmarks/.venvs/elk
    benchmarks/.venvs/elk/bin/pip install torch==2.13.0
    benchmarks/.venvs/elk/bin/pip install eleuther-elk==0.1.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from _figures import record

ROOT = Path(__file__).resolve().parent
DEFAULT_ELK_PYTHON = ROOT / ".venvs" / "elk" / "bin" / "python"

ELK_WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(int(sys.argv[2]))
from elk.training.ccs_reporter import CcsConfig, CcsReporter
data = torch.load(sys.argv[1])
x, y, xt, yt = data["x"], data["y"], data["x_test"], data["y_test"]
n_layers, n, _, d = x.shape
total, aucs = 0.0, []
def auroc(s, lab):
    r = torch.empty_like(s)
    r[s.argsort()] = torch.arange(1, len(s) + 1, dtype=s.dtype)
    npos = lab.sum()
    return float((r[lab.bool()].sum() - npos * (npos + 1) / 2) / (npos * (len(lab) - npos)))
for layer in range(n_layers):
    torch.manual_seed(layer)
    h = x[layer].unsqueeze(1)  # [n, v=1, 2, d]
    t0 = time.perf_counter()
    rep = CcsReporter(CcsConfig(), d)
    rep.fit(h)
    onehot = torch.stack([1 - y, y], dim=-1).flatten().float()  # (n k)
    rep.platt_scale(onehot, h.flatten(0, 2))
    total += time.perf_counter() - t0
    with torch.no_grad():
        logits = rep(xt[layer].unsqueeze(1))[:, 0]  # [n_test, 2]
    aucs.append(auroc(logits[:, 1] - logits[:, 0], yt.double()))
print(json.dumps({"seconds": total, "auroc": aucs}))
"""


def make_data(layers: int, n: int, n_test: int, d: int, s_min: float, s_max: float, seed: int):
    """Synthetic contrast pairs with a planted truth direction per layer (see module doc)."""
    gen = torch.Generator().manual_seed(seed)
    strengths = torch.linspace(s_min, s_max, layers)

    def split(m: int):
        y = torch.randint(0, 2, (m,), generator=gen)
        sign = (2 * y - 1).float()
        x = torch.empty(layers, m, 2, d)
        for layer in range(layers):  # data generation only; fitting is batched
            g = torch.Generator().manual_seed(seed * 1000 + layer)
            truth = torch.randn(d, generator=g)
            truth /= truth.norm()
            distractor = torch.randn(d, generator=g)
            distractor /= distractor.norm()
            shared = (
                torch.randn(m, 1, d, generator=gen)
                + 3 * torch.randn(m, 1, 1, generator=gen) * distractor
            )
            side = torch.tensor([-0.5, 0.5])[None, :, None] * strengths[layer]
            x[layer] = (
                shared
                + 0.5 * torch.randn(m, 2, d, generator=gen)
                + side * sign[:, None, None] * truth
            )
        return x, y

    x, y = split(n)
    x_test, y_test = split(n_test)
    return x, y, x_test, y_test


def run_mindscope(x, y, xt, yt, threads: int) -> dict:
    from mindscope.probes import CcsReporter
    from mindscope.probes.metrics import roc_auc

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    rep = CcsReporter().fit(x, y)
    seconds = time.perf_counter() - t0
    logits = rep.decision_function(xt)  # [layers, n_test], monotone in z1 - z0
    return {"seconds": seconds, "auroc": roc_auc(logits, yt.double()).tolist()}


def run_elk(python: Path, data_path: Path, threads: int) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as fh:
        fh.write(ELK_WORKER)
        worker = fh.name
    out = subprocess.run(
        [str(python), "-W", "ignore", worker, str(data_path), str(threads)],
        capture_output=True,
        text=True,
        check=False,
    )
    Path(worker).unlink(missing_ok=True)
    if out.returncode != 0:
        raise SystemExit(f"elk worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=24)
    ap.add_argument("--d", type=int, default=1024)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-test", type=int, default=1000)
    ap.add_argument("--s-min", type=float, default=1.5)
    ap.add_argument("--s-max", type=float, default=4.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads, both sides")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--elk-python", type=Path, default=DEFAULT_ELK_PYTHON)
    args = ap.parse_args(argv)
    if not args.elk_python.exists():
        raise SystemExit(f"no elk venv python at {args.elk_python} (see the module docstring)")

    x, y, xt, yt = make_data(
        args.layers, args.n, args.n_test, args.d, args.s_min, args.s_max, args.seed
    )
    print(
        f"synthetic planted-direction data: {args.layers} layers x {args.n} pairs x d={args.d} "
        f"(test {args.n_test}), strength {args.s_min}->{args.s_max}; threads={args.threads}",
        flush=True,
    )
    elk_runs, ms_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        data_path = Path(tmp) / "data.pt"
        torch.save({"x": x, "y": y, "x_test": xt, "y_test": yt}, data_path)
        for rep in range(args.reps):  # interleaved repetitions
            elk_runs.append(run_elk(args.elk_python, data_path, args.threads))
            ms_runs.append(run_mindscope(x, y, xt, yt, args.threads))
            print(
                f"rep {rep + 1}: elk {elk_runs[-1]['seconds']:.1f} s, "
                f"mindscope {ms_runs[-1]['seconds']:.2f} s",
                flush=True,
            )
    elk_s = statistics.median(r["seconds"] for r in elk_runs)
    ms_s = statistics.median(r["seconds"] for r in ms_runs)
    elk_auc = torch.tensor(elk_runs[0]["auroc"])
    ms_auc = torch.tensor(ms_runs[0]["auroc"])
    print("layer  elk_auroc  mindscope_auroc")
    for i, (a, b) in enumerate(zip(elk_auc.tolist(), ms_auc.tolist())):
        print(f"{i:5d}  {a:9.4f}  {b:15.4f}")
    print(
        f"median fit time, all {args.layers} layers: elk {elk_s:.1f} s (layer by layer), "
        f"mindscope {ms_s:.2f} s (batched)"
    )
    print(f"speed-up: {elk_s / ms_s:.1f}x")
    print(
        f"mean AUROC: elk {elk_auc.mean():.4f}, mindscope {ms_auc.mean():.4f}, "
        f"|diff| {abs(elk_auc.mean() - ms_auc.mean()):.4f}; "
        f"max per-layer |diff| {(elk_auc - ms_auc).abs().max():.4f}"
    )
    record(
        "bench_ccs",
        {
            "mindscope_s": (ms_s, "s", f"all {args.layers} layers, batched"),
            "elk_s": (elk_s, "s", "eleuther-elk CcsReporter, layer by layer"),
            "speedup": (elk_s / ms_s, "x", "elk time / mindscope time"),
            "mindscope_auroc": (float(ms_auc.mean()), "AUROC", "mean test AUROC over layers"),
            "elk_auroc": (float(elk_auc.mean()), "AUROC", "the same for eleuther-elk"),
        },
        reps=args.reps,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
