"""Parity and speed of mindscope's interventions against the reference tools, same model, same
data (the shipped ``quirky-arith`` organism; ``--n`` Bob/Alice prompt pairs).

* CAA (``steering.mean_difference`` at ``resid_post.L``) vs steering-vectors 0.12.2
  ``train_steering_vector`` (mean aggregator, decoder-block output = ``resid_post.L``): max
  absolute difference (target <= 1e-5);
* PCA (``steering.pca_difference``) vs repeng's ``pca_diff`` direction: |cosine| (target 1, up
  to sign);
* LEACE (``erasure.LeaceFitter`` with concept-erasure's defaults) vs concept-erasure 0.2.4
  ``LeaceEraser.fit`` on 4,000 x 64 activations of the organism (the persona at
  ``resid_post.3``'s last token): max difference of the erased test rows (target <= 1e-5) and
  the fit-time ratio (target <= 1.0), both fits timed in this process, interleaved, in CPU
  time (concept-erasure is pure Python on torch: its package is imported from the reference
  venv onto the same torch version);
* exact residual patching (``patching.activation_patching``, resid_pre) vs TransformerLens 4.3
  ``patching.get_act_patch_resid_pre`` on ``TransformerBridge``: max difference of the
  [layers, pos] map of the mean logit difference (target <= 1e-4) and the time ratio (target
  <= 0.5).

The reference side runs in ``benchmarks/.venvs/interventions`` (steering-vectors, repeng,
concept-erasure) and ``benchmarks/.venvs/tlens`` (TransformerLens; ``bash
benchmarks/setup_refs.sh interventions tlens``) as subprocesses (``interventions_ref_worker.py``).
The machine is shared: timings are medians; the LEACE fits are timed in one process (CPU time), the
patching times in separate processes (wall time).

    OMP_NUM_THREADS=1 python benchmarks/check_interventions_reference.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from _figures import record
from safetensors.torch import load_file, save_file

HERE = Path(__file__).resolve().parent
VENVS = {
    "steering,erasure": HERE / ".venvs" / "interventions" / "bin" / "python",
    "tlens": HERE / ".venvs" / "tlens" / "bin" / "python",
}


def _concept_erasure() -> Any:
    """concept-erasure's package from its reference venv, imported onto this process's torch
    (it is pure Python on torch; the venv pins the same torch version)."""
    import importlib.util
    import sys

    site = next((HERE / ".venvs" / "interventions" / "lib").glob("python3*/site-packages"))
    pkg = site / "concept_erasure"
    spec = importlib.util.spec_from_file_location(
        "concept_erasure", pkg / "__init__.py", submodule_search_locations=[str(pkg)]
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["concept_erasure"] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=64, help="contrast pairs / patching prompts")
    ap.add_argument("--reps", type=int, default=7, help="timing repetitions (median)")
    args = ap.parse_args()
    missing = [str(v) for v in VENVS.values() if not v.exists()]
    if missing:
        raise SystemExit(
            f"no reference venv {missing}: run bash benchmarks/setup_refs.sh interventions tlens"
        )
    import mindscope as ms
    from mindscope import erasure, patching, steering
    from mindscope.analyses.patch import quirky_patch_inputs
    from mindscope.data import quirky_arith

    torch.set_num_threads(1)
    h = ms.load_model("organism:quirky-arith")
    model_dir = str(h.source_files[0].parent)  # the very files mindscope loaded
    pairs = quirky_arith(args.n, seed=0, persona="alice", split="test")
    neg = [p.prompt for p in pairs]
    pos = [p.prompt[: -len("Alice:")] + "Bob:" for p in pairs]
    layers = [1, 2, 3, 4]
    clean, corr, ans, wrong = quirky_patch_inputs(
        h, quirky_arith(args.n * 8, seed=1, split="test"), args.n
    )
    big = quirky_arith(5000, seed=2, split="train")
    acts = steering.read_last(h, [p.prompt for p in big], "resid_post.3")
    y = torch.tensor([int(p.meta["persona"] == "bob") for p in big])
    x_tr, y_tr, x_te = acts[:4000], y[:4000], acts[4000:]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        spec = {
            "model_dir": model_dir,
            "positive": pos,
            "negative": neg,
            "layers": layers,
            "reps": args.reps,
        }
        (folder / "spec.json").write_text(json.dumps(spec))
        save_file(
            {
                "clean": clean,
                "corrupted": corr,
                "answer": ans,
                "wrong": wrong,
                "leace_x": x_tr.contiguous(),
                "leace_y": y_tr,
                "leace_x_test": x_te.contiguous(),
            },
            str(folder / "data.safetensors"),
        )
        ref: dict[str, torch.Tensor] = {}
        info: dict[str, object] = {}
        for tools, python in VENVS.items():
            subprocess.run(
                [str(python), str(HERE / "interventions_ref_worker.py"), tmp, tools], check=True
            )
            ref.update(load_file(str(folder / "ref.safetensors")))
            info.update(json.loads((folder / "ref.json").read_text()))
    errors = {k: v for k, v in info.items() if k.endswith("_error")}
    for k, v in errors.items():
        print(f"{k}: {v}")
    figs: dict[str, tuple[float, str, str]] = {}
    with torch.no_grad():
        figs["logits_max_diff"] = (
            float((h.forward(clean).float() - ref["logits"]).abs().max()),
            "logit",
            "same weights loaded by both sides",
        )
    if "caa.1" in ref:
        diffs = [
            float(
                (steering.mean_difference(h, pos, neg, f"resid_post.{L}").vector - ref[f"caa.{L}"])
                .abs()
                .max()
            )
            for L in layers
        ]
        figs["caa_max_diff"] = (max(diffs), "abs", "vs steering-vectors, 4 layers (<= 1e-5)")
    if "pca.1" in ref:
        cos = [
            abs(steering.pca_difference(h, pos, neg, f"resid_post.{L}").cosine(ref[f"pca.{L}"]))
            for L in layers
        ]
        figs["pca_min_abs_cos"] = (min(cos), "cosine", "vs repeng pca_diff, 4 layers")
    if "leace_erased" in ref:
        ours = erasure.LeaceFitter().fit(x_tr, y_tr).eraser_
        figs["leace_max_diff64"] = (
            float((ours(x_te) - ref["leace_erased64"]).abs().max()),
            "abs",
            "erased test rows vs concept-erasure fitted in float64 (<= 1e-5)",
        )
        figs["leace_max_diff32"] = (
            float((ours(x_te) - ref["leace_erased"]).abs().max()),
            "abs",
            "vs concept-erasure fitted in float32 (its own float32 rounding)",
        )
        figs["leace_ref32_vs_ref64"] = (
            float((ref["leace_erased"] - ref["leace_erased64"]).abs().max()),
            "abs",
            "concept-erasure float32 vs its float64 result, same data",
        )
        ref_le = _concept_erasure()
        for name, dtype in (("64", torch.float64), ("32", torch.float32)):
            # both fits in this process on the same torch, interleaved, CPU time; the
            # reference gets its inputs already in ``dtype`` (as its own fit expects them)
            xr, yr = x_tr.to(dtype), y_tr.to(dtype)
            fns = {
                "ours": lambda dtype=dtype: (
                    erasure.LeaceFitter(dtype=dtype).fit(x_tr, y_tr).eraser_
                ),
                "ref": lambda xr=xr, yr=yr: ref_le.LeaceEraser.fit(xr, yr),
            }
            ts: dict[str, list[float]] = {k: [] for k in fns}
            for f in fns.values():
                f()  # warm-up
            for i in range(max(args.reps, 3) * 5):
                for k in list(fns)[:: (1 if i % 2 == 0 else -1)]:
                    t = time.thread_time()
                    fns[k]()
                    ts[k].append(time.thread_time() - t)
            figs[f"leace_fit_ratio{name}"] = (
                statistics.median(ts["ours"]) / statistics.median(ts["ref"]),
                "x",
                f"mindscope fit time over concept-erasure's, both in float{name}, same process",
            )
        ours32 = erasure.LeaceFitter(dtype=torch.float32).fit(x_tr, y_tr).eraser_
        figs["leace_max_diff_both32"] = (
            float((ours32(x_te) - ref["leace_erased"]).abs().max()),
            "abs",
            "mindscope float32 vs concept-erasure float32",
        )
    if "tl_resid_pre" in ref:
        ts = []
        for _ in range(args.reps):
            t = time.perf_counter()
            res = patching.activation_patching(h, clean, corr, ans, wrong, kinds=("resid_pre",))
            ts.append(time.perf_counter() - t)
        ours_map = (res.effects["resid_pre"] + res.corrupted[:, None, None]).mean(0)  # [L, pos]
        figs["patch_max_diff"] = (
            float((ours_map - ref["tl_resid_pre"]).abs().max()),
            "logit",
            "resid_pre map vs TransformerLens (<= 1e-4)",
        )
        figs["patch_time_ratio"] = (
            statistics.median(ts) / info["tl_patch_s"],
            "x",
            "mindscope time over TransformerLens's (<= 0.5)",
        )
    for k, v in figs.items():
        print(f"{k:22s} {v[0]:.3g} {v[1]}  {v[2]}")
    record(
        "bench_interventions_ref",
        figs,
        reps=args.reps,
        idle=False,
        notes="reference errors: " + json.dumps(errors) if errors else "",
    )


if __name__ == "__main__":
    main()
