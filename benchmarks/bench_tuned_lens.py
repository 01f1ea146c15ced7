"""Tuned-lens training: mindscope vs the tuned-lens package (0.2.0), same model, tokens, steps.

Both sides train every layer's translator with the package's default optimiser (SGD, Nesterov
momentum 0.9, lr 0.1, weight decay 1e-3, linear decay, gradient norm clipped to 1) on exactly the
same batches in the same order (mindscope packs the text and plans the batches; the package's
side receives the token ids). The package runs in its own virtual environment
(``benchmarks/.venvs/tuned-lens``) in a subprocess, through its own ``TunedLens`` and
``Optimizer`` classes and the loop body of its ``train_loop.py`` (one forward pass with
``output_hidden_states``, then one translator + unembedding + backward per layer). The two
lenses are then scored by the same code (``mindscope.lenses.evaluate``) on held-out text; the
package's lens is read back from its own ``params.pt`` format, which checks that format's hash.

Setup once (CPU torch first, so pip does not fetch a CUDA build; tuned-lens 0.2.0 also needs
``torchdata==0.9.0`` installed with ``--no-deps``)::

    bash benchmarks/setup_refs.sh tuned-lens

Run::

    .venv/bin/python benchmarks/bench_tuned_lens.py                 # organism:pocket-lm
    .venv/bin/python benchmarks/bench_tuned_lens.py --model DIR --train-data A.txt --eval-data B.txt

Prints per-layer held-out KL (nats) of the logit lens and both tuned lenses, and the time ratio
(medians of interleaved repetitions; training loop only, model loading excluded).
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
VENV_PY = ROOT / ".venvs" / "tuned-lens" / "bin" / "python"

# Runs inside the tuned-lens venv. Mirrors tuned_lens/scripts/train_loop.py (0.2.0), KL loss.
REFERENCE = r"""
import json, sys, time
import torch as th
from transformers import AutoModelForCausalLM
from tuned_lens import TunedLens
from tuned_lens.scripts.ingredients import Optimizer

a = json.loads(sys.argv[1])
th.manual_seed(0)
th.set_num_threads(a["threads"])
model = AutoModelForCausalLM.from_pretrained(a["model_dir"], dtype=th.float32)
model.eval()
model.requires_grad_(False)
blob = th.load(a["batches"], weights_only=True)
seqs, plan = blob["seqs"], blob["plan"]
lens = TunedLens.from_model(model)
opt_cfg = Optimizer()
opt = opt_cfg.create_optim([p for p in lens.parameters() if p.requires_grad])
sched = opt_cfg.create_scheduler(opt, len(plan))
t0 = time.perf_counter()
last = []
for step_batches in plan:
    grad_acc = len(step_batches)
    last = [0.0] * (model.config.num_hidden_layers)
    for idx in step_batches:
        batch = seqs[idx]
        with th.no_grad():
            output = model(input_ids=batch, output_hidden_states=True)
        final_logits = output.logits
        hidden_states = output.hidden_states[:-1]
        labels = final_logits.float().log_softmax(dim=-1)
        for i, h in enumerate(hidden_states):
            with th.autocast("cpu", dtype=th.bfloat16, enabled=a["autocast"]):
                logits = lens(h, idx=i)
                loss = th.sum(labels.exp() * (labels - logits.log_softmax(-1)), dim=-1).mean()
                scaled_loss = loss / grad_acc
            scaled_loss.backward()
            last[i] += loss.item() / grad_acc
    th.nn.utils.clip_grad_norm_(lens.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=False)
    sched.step()
seconds = time.perf_counter() - t0
lens.save(a["out"])
print(json.dumps({"seconds": seconds, "final_step_kl": last}))
"""


def _model_dir(name: str) -> Path:
    if name.startswith("organism:"):
        from mindscope import organisms

        return Path(organisms.resolve(name.split(":", 1)[1], None))
    return Path(name)


def _texts(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    from mindscope.lenses import read_texts

    if args.train_data and args.eval_data:
        return read_texts(args.train_data), read_texts(args.eval_data)
    from mindscope.organisms import pocket_corpus

    return pocket_corpus(split="train"), pocket_corpus(split="heldout")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="organism:pocket-lm")
    p.add_argument("--train-data", default=None, help="text/JSONL (default: pocket corpus)")
    p.add_argument("--eval-data", default=None, help="text/JSONL (default: pocket heldout)")
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--tokens-per-step", type=int, default=2048)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--autocast", action="store_true", help="reference in bf16 autocast, as the "
                   "package's loop does on any device")  # fmt: skip
    args = p.parse_args(argv)
    if not VENV_PY.exists():
        print(f"missing {VENV_PY}; see this file's docstring for the setup", file=sys.stderr)
        return 2
    if args.tokens_per_step % (args.seq_len * args.batch_size):
        print("--tokens-per-step must be a multiple of seq-len x batch-size", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)

    from mindscope.lenses import TrainConfig, TunedLens, evaluate
    from mindscope.lenses.texts import packed_sequences
    from mindscope.lenses.train import batch_plan
    from mindscope.models import load_model

    h = load_model(args.model, device="cpu", dtype="float32")
    train_texts, eval_texts = _texts(args)
    cfg = TrainConfig(
        num_steps=args.steps,
        tokens_per_step=args.tokens_per_step,
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        progress=False,
    )
    seqs = packed_sequences(h.tokenizer, train_texts, args.seq_len)
    per_step = args.tokens_per_step // args.seq_len
    plan = batch_plan(seqs.shape[0], per_step, args.batch_size, args.steps, cfg.seed)
    budget = args.steps * args.tokens_per_step
    print(
        f"model {args.model}: {h.n_layers} layers, d_model {h.d_model}, vocab {h.vocab_size}; "
        f"{seqs.numel():,} training tokens, budget {budget:,} tokens "
        f"({args.steps} steps x {args.tokens_per_step}); threads {args.threads}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="bench-tuned-lens-"))
    torch.save({"seqs": seqs, "plan": plan}, tmp / "batches.pt")
    ref_args = {
        "model_dir": str(_model_dir(args.model)),
        "batches": str(tmp / "batches.pt"),
        "out": str(tmp / "ref-lens"),
        "threads": args.threads,
        "autocast": args.autocast,
    }
    ours_s: list[float] = []
    ref_s: list[float] = []
    ours = None
    ref_out: dict = {}
    for r in range(args.reps):  # interleaved
        proc = subprocess.run(
            [str(VENV_PY), "-c", REFERENCE, json.dumps(ref_args)],
            capture_output=True,
            text=True,
        )
        if proc.returncode:
            print(proc.stderr[-3000:], file=sys.stderr)
            return 1
        ref_out = json.loads(proc.stdout.strip().splitlines()[-1])
        ref_s.append(ref_out["seconds"])
        t0 = time.perf_counter()
        ours = TunedLens.fit(h, train_texts, cfg)
        ours_s.append(time.perf_counter() - t0)
        print(f"rep {r + 1}: tuned-lens {ref_s[-1]:.2f} s, mindscope {ours_s[-1]:.2f} s")
    assert ours is not None
    ref = TunedLens.load(tmp / "ref-lens", h)  # the package's own format and hash
    df = evaluate(h, [ours], eval_texts, seq_len=args.seq_len, n_boot=200)
    df_ref = evaluate(h, [ref], eval_texts, seq_len=args.seq_len, n_boot=200)
    kl = df[df.metric == "kl"].pivot(index="layer", columns="method", values="value")
    kl["tuned_lens_package"] = df_ref[
        (df_ref.metric == "kl") & (df_ref.method == "tuned_lens")
    ].set_index("layer")["value"]
    kl = kl.rename(columns={"tuned_lens": "tuned_lens_mindscope"})
    print("\nheld-out KL(final || lens) per layer, nats:")
    print(kl.round(4).to_string())
    inner = kl.iloc[:-1]
    ms_mean = inner["tuned_lens_mindscope"].mean()
    ref_mean = inner["tuned_lens_package"].mean()
    ll_mean = inner["logit_lens"].mean()
    print(
        f"\nmean over layers 0..{h.n_layers - 1}: logit lens {ll_mean:.4f}, "
        f"tuned lens mindscope {ms_mean:.4f}, tuned-lens package {ref_mean:.4f} nats"
    )
    print(
        "final training step KL (mean over layers): mindscope "
        f"{statistics.fmean(ours.info['final_step_kl']):.4f}, package "
        f"{statistics.fmean(ref_out['final_step_kl']):.4f} nats"
    )
    m_ours, m_ref = statistics.median(ours_s), statistics.median(ref_s)
    print(
        f"training time, median of {args.reps}: mindscope {m_ours:.2f} s, tuned-lens "
        f"{m_ref:.2f} s; ratio mindscope/tuned-lens = {m_ours / m_ref:.2f} "
        f"({m_ref / m_ours:.2f}x speed-up)"
    )
    record(
        "bench_tuned_lens",
        {
            "kl_mindscope": (ms_mean, "nats", "held-out KL, mean over layers, mindscope's lens"),
            "kl_package": (ref_mean, "nats", "the same for the tuned-lens package's lens"),
            "mindscope_s": (m_ours, "s", "training time, mindscope"),
            "package_s": (m_ref, "s", "training time, tuned-lens package"),
            "ratio": (m_ours / m_ref, "ratio", "training time mindscope / tuned-lens"),
        },
        reps=args.reps,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
