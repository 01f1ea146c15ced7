"""Benchmark: mindscope's SAE trainers vs SAELens on the same planted data.

Data (synthetic, stated): a :class:`mindscope.sae.PlantedDictionary` (``--n-features`` features
in ``--d`` dimensions, ``--mean-active`` active on average, Zipfian firing, a hierarchy and
correlated firing as in the ``small`` setting), ``--steps x --batch`` samples drawn once,
rescaled so that ``E ||x||^2 = d`` and written to a safetensors file that both sides read, in
the same order.

1. **Quality and speed.** The same architecture (TopK, ``--k`` active latents, as many latents
   as true features), the same batches, the same steps, batch size and constant learning rate,
   one thread each: mindscope's ``TopKSAE`` (``decay=0``) and SAELens's TopK trainer
   (``SAETrainer`` over an iterator of the same batches; run in its own venv
   ``benchmarks/.venvs/saelens``, see ``setup_refs.sh``). Both decoders are scored with the
   same Hungarian MCC against the truth. Repetitions alternate the two; medians of training
   CPU seconds (the training loop only) and the ratio mindscope / SAELens (< 1 = faster).
2. **Memory is flat in the number of training tokens.** In a fresh subprocess per size,
   ``TopKSAE.fit`` streams planted batches (``planted_source``: never more than one batch held)
   for ``--mem-steps`` and for 10x as many steps; peak RSS (``VmHWM``) of the two are compared.
3. **Memory is flat in the size of the activation store.** Two store shards of planted rows
   (``--mem-steps x --batch`` rows and 10x as many, ``.npy`` files as the activation store
   writes them) are each streamed for one full epoch by ``store_source`` into two SAEs at once
   (two "layers"), in a fresh subprocess; peak RSS of the two are compared.

    .venv/bin/python benchmarks/bench_sae.py                 # defaults, 2 reps
    .venv/bin/python benchmarks/bench_sae.py --steps 100 --reps 1   # quick check
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from _figures import record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's mindscope, whichever is installed
VENV = ROOT / "benchmarks" / ".venvs" / "saelens" / "bin" / "python"

SAELENS_WORKER = r"""
import json, sys, time, torch
from safetensors.torch import load_file
torch.set_num_threads(1)
args = json.loads(sys.argv[1])
data = load_file(args["data"])["x"]
B, steps = args["batch"], args["steps"]
from sae_lens import __version__
from sae_lens.config import LoggingConfig, SAETrainerConfig
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig
from sae_lens.training.sae_trainer import SAETrainer
torch.manual_seed(args["seed"])
sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=data.shape[1], d_sae=args["n_latents"],
                                            k=args["k"], device="cpu"))
batches = iter(data[i * B:(i + 1) * B] for i in range(steps))
cfg = SAETrainerConfig(
    n_checkpoints=0, checkpoint_path=None, save_final_checkpoint=False,
    total_training_samples=steps * B, device="cpu", autocast=False, lr=args["lr"],
    lr_end=args["lr"], lr_scheduler_name="constant", lr_warm_up_steps=0, adam_beta1=0.9,
    adam_beta2=0.999, lr_decay_steps=0, n_restart_cycles=1, train_batch_size_samples=B,
    dead_feature_window=1000, feature_sampling_window=2000,
    logger=LoggingConfig(log_to_wandb=False, eval_every_n_wandb_logs=2**31 - 1))
trainer = SAETrainer(cfg=cfg, sae=sae, data_provider=batches, save_checkpoint_fn=lambda p: None)
t0 = time.process_time(); w0 = time.perf_counter()
trainer.fit()
cpu, wall = time.process_time() - t0, time.perf_counter() - w0
from safetensors.torch import save_file
save_file({"W_dec": sae.W_dec.detach().contiguous()}, args["out"])
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "version": __version__}))
"""

MINDSCOPE_WORKER = r"""
import json, sys, time, torch
from safetensors.torch import load_file, save_file
torch.set_num_threads(1)
args = json.loads(sys.argv[1])
from mindscope import sae
data = load_file(args["data"])["x"]
B, steps = args["batch"], args["steps"]
m = sae.TopKSAE(args["n_latents"], args["k"], lr=args["lr"], decay=0.0, n_steps=steps,
                batch_size=B, seed=args["seed"])
src = lambda t: data[t * B:(t + 1) * B]
t0 = time.process_time(); w0 = time.perf_counter()
m.fit(src)
cpu, wall = time.process_time() - t0, time.perf_counter() - w0
save_file({"W_dec": m.W_dec_.contiguous()}, args["out"])
print(json.dumps({"cpu_s": cpu, "wall_s": wall}))
"""

MEMORY_WORKER = r"""
import json, sys, torch
torch.set_num_threads(1)
from mindscope import sae
a = json.loads(sys.argv[1])
gen = sae.planted("small", seed=0, n_features=a["n_features"], d=a["d"],
                  mean_active=a["mean_active"])
m = sae.TopKSAE(a["n_features"], a["k"], n_steps=a["steps"], batch_size=a["batch"])
m.fit(sae.planted_source(gen, a["batch"], seed=1))
# VmHWM: this process's peak RSS (ru_maxrss would carry the parent's peak across exec)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rss_mb": int(hwm) / 1024}))
"""


STORE_MEMORY_WORKER = r"""
import json, sys, numpy as np, torch
torch.set_num_threads(1)
from mindscope import sae
a = json.loads(sys.argv[1])
class Store:  # the two calls of mindscope.activations.Activations that store_source makes
    layers = [0, 1]
    def numpy(self, layer):
        return np.load(a["shards"][layer], mmap_mode="r")
rows = np.load(a["shards"][0], mmap_mode="r").shape[0]
src = sae.store_source(Store(), [0, 1], batch_size=a["batch"], seed=0)
steps = rows // a["batch"]  # one epoch: every row of both shards is read once
models = [sae.TopKSAE(a["n_latents"], a["k"], n_steps=steps, batch_size=a["batch"])
          for _ in range(2)]
for t in range(steps):
    b = src(t)
    for layer, m in enumerate(models):
        m.partial_fit(b[layer])
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({"rss_mb": int(hwm) / 1024, "rows": rows}))
"""


def _store_shards(folder: Path, gen: Any, rows: int, seed: int) -> list[str]:
    """Two float32 ``.npy`` shards ``[rows, d]`` of planted samples, written chunk by chunk."""
    import numpy as np

    paths = []
    for layer in range(2):
        path = folder / f"layer_{layer:03d}_{rows}.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, gen.d))
        for i in range(0, rows, 65536):
            n = min(65536, rows - i)
            mm[i : i + n] = gen.sample(n, seed=seed + 1000 * layer + i)[0].numpy()
        mm.flush()
        del mm
        paths.append(str(path))
    return paths


def _run(python: str, code: str, args: dict[str, Any]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [python, "-c", code, json.dumps(args)], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-features", type=int, default=512)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--mean-active", type=float, default=6.0)
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--steps", type=int, default=800)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--mem-steps", type=int, default=100)
    args = ap.parse_args()
    from safetensors.torch import load_file, save_file

    from mindscope import sae

    gen = sae.planted(
        "small", seed=0, n_features=args.n_features, d=args.d, mean_active=args.mean_active
    )
    x, _ = gen.sample(args.steps * args.batch, seed=1)  # [steps * batch, d]
    scale = args.d**0.5 / float(x.norm(dim=1).mean())
    figures: dict[str, Any] = {}
    notes = []
    version = ""
    with tempfile.TemporaryDirectory() as tmp:
        data = str(Path(tmp) / "x.safetensors")
        save_file({"x": (x * scale).contiguous()}, data)
        common = {
            "data": data,
            "steps": args.steps,
            "batch": args.batch,
            "k": args.k,
            "n_latents": args.n_features,
            "lr": args.lr,
            "seed": 0,
        }
        ms_t, sl_t, ms_mcc, sl_mcc = [], [], [], []
        have_ref = VENV.is_file()
        for rep in range(args.reps):
            out = str(Path(tmp) / f"ms{rep}.safetensors")
            r = _run(sys.executable, MINDSCOPE_WORKER, {**common, "out": out})
            ms_t.append(r["cpu_s"])
            ms_mcc.append(sae.mcc(gen.features_, load_file(out)["W_dec"]))
            if have_ref:
                out = str(Path(tmp) / f"sl{rep}.safetensors")
                try:
                    r = _run(str(VENV), SAELENS_WORKER, {**common, "out": out})
                except RuntimeError as exc:
                    notes.append(f"SAELens failed: {exc}")
                    have_ref = False
                    continue
                sl_t.append(r["cpu_s"])
                sl_mcc.append(sae.mcc(gen.features_, load_file(out)["W_dec"]))
                version = r["version"]
            print(
                f"rep {rep}: mindscope {ms_t[-1]:.1f}s MCC {ms_mcc[-1]:.3f}"
                + (f" | SAELens {sl_t[-1]:.1f}s MCC {sl_mcc[-1]:.3f}" if sl_t else ""),
                flush=True,
            )
        figures["mindscope_train_cpu_s"] = statistics.median(ms_t)
        figures["mindscope_mcc"] = statistics.median(ms_mcc)
        figures["null_mcc"] = sae.null_mcc(gen.features_, args.n_features)
        if sl_t:
            figures["saelens_train_cpu_s"] = statistics.median(sl_t)
            figures["saelens_mcc"] = statistics.median(sl_mcc)
            figures["time_ratio"] = (
                figures["mindscope_train_cpu_s"] / figures["saelens_train_cpu_s"]
            )
            figures["mcc_gap"] = figures["mindscope_mcc"] - figures["saelens_mcc"]
        elif not VENV.is_file():
            notes.append("no SAELens venv (bash benchmarks/setup_refs.sh saelens)")
    mem = {
        "n_features": args.n_features,
        "d": args.d,
        "mean_active": args.mean_active,
        "k": args.k,
        "batch": args.batch,
    }
    small = _run(sys.executable, MEMORY_WORKER, {**mem, "steps": args.mem_steps})
    big = _run(sys.executable, MEMORY_WORKER, {**mem, "steps": 10 * args.mem_steps})
    figures["rss_mb_1x"] = small["rss_mb"]
    figures["rss_mb_10x"] = big["rss_mb"]
    figures["rss_ratio_10x"] = big["rss_mb"] / small["rss_mb"]
    with tempfile.TemporaryDirectory() as tmp:
        got = {}
        for mult in (1, 10):
            rows = mult * args.mem_steps * args.batch
            shards = _store_shards(Path(tmp), gen, rows, seed=7)
            got[mult] = _run(
                sys.executable,
                STORE_MEMORY_WORKER,
                {"shards": shards, "batch": args.batch, "n_latents": args.n_features, "k": args.k},
            )
            for path in shards:
                Path(path).unlink()
    figures["store_rss_mb_1x"] = got[1]["rss_mb"]
    figures["store_rss_mb_10x"] = got[10]["rss_mb"]
    figures["store_rss_ratio_10x"] = got[10]["rss_mb"] / got[1]["rss_mb"]
    notes.append(f"store shards of {got[1]['rows']} and {got[10]['rows']} rows, two layers")
    print(json.dumps(figures, indent=1))
    if version:
        notes.append(f"SAELens {version}")
    units = {
        "_s": "CPU s",
        "_mcc": "MCC",
        "mcc_gap": "MCC",
        "time_ratio": "x",
        "rss_mb_1x": "MB",
        "rss_mb_10x": "MB",
        "rss_ratio_10x": "x",
    }
    rec = {k: (v, next(u for s, u in units.items() if k.endswith(s))) for k, v in figures.items()}
    record("bench_sae", rec, reps=args.reps, idle=False, notes="; ".join(notes))


if __name__ == "__main__":
    main()
