"""Regenerate docs/figures/bayes_hmm.json: the shipped icl-hmm against the forward algorithm.

OMP_NUM_THREADS=1 python docs/examples/bayes_hmm.py
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "figures" / "bayes_hmm.json"


def main() -> None:
    import mindscope as ms
    from mindscope import organisms
    from mindscope.analyses import run_stage
    from mindscope.results import extra_of

    h = ms.load_model("organism:icl-hmm")
    rows = run_stage("bayes", h, {"n": 2000}, seed=0).rows
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
    info = organisms.info("icl-hmm")
    out["training"] = {"steps": info["revisions"][-1], "train_seconds": info["train_seconds"]}
    import runpy

    figures = Path(__file__).resolve().parents[2] / "benchmarks" / "_figures.py"
    record = runpy.run_path(str(figures))["record"]  # the benchmarks' figures-file writer

    figs = {
        f"{c}_{k}": (v, "nats" if "kl" in k or "toward" in k else "R^2")
        for c in ("train", "heldout")
        for k, v in out[c].items()
    }
    figs["train_seconds"] = (out["training"]["train_seconds"], "s")
    figs["steps"] = (int(str(out["training"]["steps"])[4:]), "steps")
    record(
        "bayes_hmm",
        figs,
        reps=1,
        command="python docs/examples/bayes_hmm.py",
        path=OUT,
        notes="shipped icl-hmm (seed 0), 2000 sequences per condition, stage seed 0",
    )
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
