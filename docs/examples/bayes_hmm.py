"""Regenerate docs/figures/bayes_hmm.json: icl-hmm learners against the forward algorithm.

The shipped ``icl-hmm`` (seed 0) always; more seeds with ``--seed SEED=FOLDER``, a checkpoint
folder of ``mindscope organism train icl-hmm --seed SEED --out DIR`` (``DIR/step4000``), scored
against the mixture of that seed's HMMs (figure keys ``seed<SEED>_...``).

    OMP_NUM_THREADS=1 python docs/examples/bayes_hmm.py
    OMP_NUM_THREADS=1 python docs/examples/bayes_hmm.py --seed 1=runs/hmm1/step4000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "figures" / "bayes_hmm.json"


def score(h: Any, spec: dict[str, Any] | None, n: int) -> dict[str, dict[str, float]]:
    """KL to the Bayes predictive and to the truth, belief R^2 by layer, on sequences from the
    training mixture and from held-out HMMs."""
    from mindscope.analyses import run_stage
    from mindscope.results import extra_of

    cfg: dict[str, Any] = {"n": n} if spec is None else {"n": n, "spec": spec}
    rows = run_stage("bayes", h, cfg, seed=0).rows
    out: dict[str, dict[str, float]] = {}
    for cond in ("train", "heldout"):
        r = rows[rows["dataset"] == cond]
        ks = [extra_of(e).get("k") for e in r["extra"]]
        late = r[[isinstance(k, int) and k >= 4 for k in ks]]
        allk = r[[k == "all" for k in ks]]

        def mean(frame, method, metric):  # noqa: ANN001, ANN202
            sel = frame[(frame["method"] == method) & (frame["metric"] == metric)]
            return float(sel["value"].mean())

        r2 = r[r["metric"] == "belief_r2"].sort_values("layer")
        out[cond] = {
            "kl_bayes_all": mean(allk, "bayes", "kl_next"),
            "kl_bayes_after4": mean(late, "bayes", "kl_next"),
            "kl_truth_all": mean(allk, "truth", "kl_next"),
            "kl_truth_after4": mean(late, "truth", "kl_next"),
            "toward_truth": mean(allk, "bayes", "toward_truth"),
            "belief_r2_best": mean(allk, "ridge", "belief_r2_best"),
            **{f"belief_r2_layer{int(x.layer)}": float(x.value) for x in r2.itertuples()},
        }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000, help="sequences per condition")
    ap.add_argument("--seed", action="append", default=[], help="SEED=FOLDER, repeatable")
    args = ap.parse_args()
    import mindscope as ms
    from mindscope import organisms
    from mindscope.organisms.icl import HMM_SPEC, _hmm_spec

    runs: list[tuple[str, Any, dict[str, Any] | None]] = [
        ("", ms.load_model("organism:icl-hmm"), None)
    ]
    for item in args.seed:
        seed, _, folder = item.partition("=")
        spec: dict[str, Any] | None = _hmm_spec(HMM_SPEC.make_config(int(seed)))
        runs.append((f"seed{int(seed)}_", ms.load_model(folder), spec))
    figs: dict[str, Any] = {}
    report: dict[str, Any] = {}
    for prefix, h, spec in runs:
        got = score(h, spec, args.n)
        report[prefix or "shipped"] = got
        for c in ("train", "heldout"):
            for k, v in got[c].items():
                unit = "nats" if "kl" in k or "toward" in k else "R^2"
                figs[f"{prefix}{c}_{k}"] = (v, unit)
    info = organisms.info("icl-hmm")
    figs["train_seconds"] = (info["train_seconds"], "s")
    figs["steps"] = (int(str(info["revisions"][-1])[4:]), "steps")
    import runpy

    figures = Path(__file__).resolve().parents[2] / "benchmarks" / "_figures.py"
    record = runpy.run_path(str(figures))["record"]  # the benchmarks' figures-file writer
    seeds = ", ".join(["0 (shipped)"] + [s.partition("=")[0] for s in args.seed])
    record(
        "bayes_hmm",
        figs,
        reps=1,
        command="python docs/examples/bayes_hmm.py"
        + "".join(f" --seed {s.partition('=')[0]}=DIR" for s in args.seed),
        path=OUT,
        notes=f"icl-hmm seeds {seeds}, {args.n} sequences per condition, stage seed 0",
    )
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
