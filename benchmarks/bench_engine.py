"""Benchmark of the engine's differentiable forward path against a plain ``loss.backward()``.

Target (issue 10): a gradient with respect to the input through ``h.forward(inputs_embeds=...,
grad=True)`` (optionally with a site captured in the graph and a steering vector added) costs
at most 1.1x the same loss and backward pass written directly against the Hugging Face model.

Both sides compute ``logsoftmax(logits[:, -1])[target]`` for one-hot inputs ``[batch, pos,
vocab] @ E`` and back-propagate to the one-hot matrix, on a random-weight GPT-NeoX model saved
to a local folder and loaded with ``mindscope.load_model``. Repetitions are interleaved
(A B C A B C ...) and the medians compared.

Run: ``.venv/bin/python benchmarks/bench_engine.py [--reps 7] [--batch 16] [--pos 64]``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from _figures import record

import mindscope as ms
from mindscope.testing import save_tiny_model

SHAPE = {
    "n_layers": 6,
    "d_model": 256,
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--pos", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        d = save_tiny_model("gpt_neox", Path(tmp) / "m", **SHAPE)
        h = ms.load_model(d, device="cpu")
        model, emb = h.model, h.embedding_matrix
        gen = torch.Generator().manual_seed(0)
        ids = torch.randint(0, h.vocab_size, (args.batch, min(args.pos, h.n_ctx or 128)))
        ids = ids.to(torch.long)
        target = 7
        onehot0 = torch.nn.functional.one_hot(ids, h.vocab_size).float()
        steer = torch.randn(h.d_model, generator=gen)

        def plain() -> float:
            oh = onehot0.clone().requires_grad_(True)
            t = time.perf_counter()
            with torch.enable_grad():
                logits = model(inputs_embeds=oh @ emb, use_cache=False).logits
                loss = logits[:, -1].log_softmax(-1)[:, target].sum()
                loss.backward()
            return time.perf_counter() - t

        def engine() -> float:
            oh = onehot0.clone().requires_grad_(True)
            t = time.perf_counter()
            logits = h.forward(inputs_embeds=oh @ emb, grad=True)
            loss = logits[:, -1].log_softmax(-1)[:, target].sum()
            loss.backward()
            return time.perf_counter() - t

        def engine_hooked() -> float:
            oh = onehot0.clone().requires_grad_(True)
            t = time.perf_counter()
            mid = f"resid_post.{h.n_layers // 2}"
            with h.add({mid: steer}), h.capture([mid], detach=False):
                logits = h.forward(inputs_embeds=oh @ emb, grad=True)
                loss = logits[:, -1].log_softmax(-1)[:, target].sum()
                loss.backward()
            return time.perf_counter() - t

        # same gradient on both paths
        oh_a = onehot0.clone().requires_grad_(True)
        with torch.enable_grad():
            model(inputs_embeds=oh_a @ emb, use_cache=False).logits[:, -1].log_softmax(-1)[
                :, target
            ].sum().backward()
        oh_b = onehot0.clone().requires_grad_(True)
        h.forward(inputs_embeds=oh_b @ emb, grad=True)[:, -1].log_softmax(-1)[
            :, target
        ].sum().backward()
        assert oh_a.grad is not None and oh_b.grad is not None
        max_diff = float((oh_a.grad - oh_b.grad).abs().max())

        for fn in (plain, engine, engine_hooked):  # warm-up
            fn()
        times: dict[str, list[float]] = {"plain": [], "engine": [], "engine+hooks": []}
        for _ in range(args.reps):
            times["plain"].append(plain())
            times["engine"].append(engine())
            times["engine+hooks"].append(engine_hooked())
        med = {k: statistics.median(v) for k, v in times.items()}
        print(
            f"GPT-NeoX {SHAPE['n_layers']} layers x d={SHAPE['d_model']}, vocab {h.vocab_size}, "
            f"batch {ids.shape[0]} x {ids.shape[1]} tokens, {args.reps} interleaved reps, "
            f"{args.threads} threads"
        )
        for k, v in med.items():
            print(f"  {k:<14} median {v * 1e3:8.1f} ms")
        r1 = med["engine"] / med["plain"]
        r2 = med["engine+hooks"] / med["plain"]
        print(f"  ratio engine / plain loss.backward()         {r1:.3f}  (target <= 1.10)")
        print(f"  ratio engine+capture+add / plain             {r2:.3f}")
        print(f"  max |grad difference| engine vs plain        {max_diff:.2e}")
        print("PASS" if r1 <= 1.10 else "FAIL")
        record(
            "bench_engine",
            {
                "plain_ms": (med["plain"] * 1e3, "ms", "plain loss.backward() on the HF model"),
                "engine_ms": (med["engine"] * 1e3, "ms", "the same through h.forward(grad=True)"),
                "ratio": (r1, "ratio", "engine / plain (target <= 1.10)"),
                "ratio_hooks": (r2, "ratio", "engine with capture + add / plain"),
                "max_grad_diff": (max_diff, "abs", "largest gradient difference"),
            },
            reps=args.reps,
        )


if __name__ == "__main__":
    main()
