"""Benchmark of mindscope's extraction engine against a bare forward pass and reference tools.

Targets (issue 2), measured in ONE run as medians of interleaved repetitions (A B C A B C ...):

1. every layer's last-token residual of a random-weight Pythia-160M-shaped GPT-NeoX costs at
   most 1.05x a bare ``CausalLM(input_ids, attention_mask)`` pass over the same batches, and no
   more than TransformerLens 4 (``TransformerBridge.run_with_cache``) or nnsight
   (``trace`` + ``save``) on the same model and prompts;
2. layers 0..3 of 12 (early exit) cost well under (<= 0.5x) a full forward pass;
3. contrast pairs sharing a long prefix cost at most 0.6x the same pairs with
   ``share_prefix=False``;
4. peak RSS for 20,000 prompts is within 1.5x of that for 1,000 prompts.

Run ``.venv/bin/python benchmarks/bench_extract.py [--quick]``; the reference tools live in their
own venvs (``bash benchmarks/setup_refs.sh``) and run as worker subprocesses of this script
(``--worker tlens|nnsight``), which load the same saved model and time themselves. mindscope and
the bare passes run in this process. Every mindscope repetition writes to a new store folder, so
nothing is read back from the cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from _figures import record

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
TAG = "@@BENCH "

PYTHIA_160M = {
    "num_hidden_layers": 12,
    "hidden_size": 768,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "vocab_size": 50304,
    "max_position_embeddings": 2048,
    "rotary_pct": 0.25,
    "use_parallel_residual": True,
}
# small model for the peak-RSS test (target 4): wide enough that holding every activation in
# memory would show (20,000 x 5 layers x 256 x 4 B = 102 MB), cheap enough to run 20,000 texts
MEM_MODEL = {
    "num_hidden_layers": 4,
    "hidden_size": 256,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "max_position_embeddings": 128,
    "vocab_size": 1024,
}


# --------------------------------------------------------------------------- model + data
def n_words(tok: Any) -> int:
    """Number of plain word tokens ``w0 .. w{k-1}`` in the benchmark tokenizer."""
    return sum(1 for t in tok.get_vocab() if t.startswith("w") and t[1:].isdigit())


def build_model(out: Path, cfg: dict[str, Any], *, seed: int = 0) -> Path:
    """Save a random-weight GPT-NeoX + word-level tokenizer of ``cfg["vocab_size"]`` entries."""
    import torch
    import transformers as tf

    from mindscope.testing import tiny_tokenizer

    base = len(tiny_tokenizer())
    tok = tiny_tokenizer(vocab_extra=max(cfg["vocab_size"] - base, 0))
    config = tf.GPTNeoXConfig(
        **{**cfg, "vocab_size": len(tok)},
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
        architectures=["GPTNeoXForCausalLM"],
    )
    torch.manual_seed(seed)
    model = tf.GPTNeoXForCausalLM(config)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def make_prompts(n: int, n_tok: int, vocab: int, seed: int) -> list[str]:
    """``n`` texts of ``n_tok`` random word tokens (``w17 w3 ...``; one token per word)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=(n, n_tok))
    return [" ".join(f"w{i}" for i in row) for row in ids]


def make_pairs(n: int, prefix: int, vocab: int, seed: int) -> list[Any]:
    """``n`` contrast pairs: a ``prefix``-token prompt, completions of 3 and 4 tokens."""
    import numpy as np

    import mindscope as ms

    rng = np.random.default_rng(seed)
    prompts = make_prompts(n, prefix, vocab, seed)
    out = []
    for p in prompts:
        c = rng.integers(0, vocab, size=7)
        out.append(
            ms.ContrastPair(
                p, (" " + " ".join(f"w{i}" for i in c[:3]), " " + " ".join(f"w{i}" for i in c[3:]))
            )
        )
    return out


# --------------------------------------------------------------------------- workers
class Worker:
    """A reference tool running in its own venv; one JSON line per request and reply."""

    def __init__(self, name: str, python: Path, model_dir: Path, data: Path, log: Path) -> None:
        self.name = name
        self.log = log
        self.proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "--worker", name],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "w"),  # noqa: SIM115 - lives as long as the worker
            text=True,
            bufsize=1,
            env={**os.environ, "BENCH_MODEL": str(model_dir), "BENCH_DATA": str(data)},
        )
        self.info: dict[str, Any] = {}

    def request(self, **req: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if req:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(TAG):
                reply: dict[str, Any] = json.loads(line[len(TAG) :])
                if "error" in reply:
                    raise RuntimeError(f"{self.name} worker: {reply['error']}")
                return reply
        tail = self.log.read_text()[-3000:] if self.log.exists() else ""
        raise RuntimeError(f"{self.name} worker exited (rc={self.proc.wait()}):\n{tail}")

    def close(self) -> None:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(TAG + json.dumps(obj) + "\n")
    sys.stdout.flush()


def worker_main(tool: str) -> None:
    """Serve timing requests for ``tool`` (runs in the tool's venv; no mindscope import)."""
    import importlib.metadata as md

    import numpy as np
    import torch
    from transformers import AutoTokenizer

    model_dir = os.environ["BENCH_MODEL"]
    data = json.loads(Path(os.environ["BENCH_DATA"]).read_text())
    torch.set_num_threads(data["threads"])
    prompts: list[str] = data["prompts"]
    bs: int = data["batch_size"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    info: dict[str, Any] = {"torch": torch.__version__, "transformers": md.version("transformers")}
    try:
        run = (
            _boot_tlens(model_dir, tok, info)
            if tool == "tlens"
            else _boot_nnsight(model_dir, tok, info)
        )
    except Exception as exc:  # report why the tool could not load, then stop
        _reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-2000:]})
        return
    _reply({"ready": True, "info": info})

    def all_layers(texts: list[str]) -> list[np.ndarray]:
        """``[layers+1]`` arrays ``[n, d]``: last-token residuals, tokenized here (timed)."""
        per_batch = []
        for i in range(0, len(texts), bs):
            enc = tok(texts[i : i + bs], return_tensors="pt", padding=True)
            assert bool(enc["attention_mask"].all()), "benchmark prompts have equal lengths"
            per_batch.append(run(enc["input_ids"]))
        return [np.concatenate([b[k] for b in per_batch]) for k in range(len(per_batch[0]))]

    for line in sys.stdin:
        req = json.loads(line)
        try:
            texts = prompts[: req["n"]] if req.get("n") else prompts
            t0 = time.perf_counter()
            out = all_layers(texts)
            dt = time.perf_counter() - t0
            if req.get("save"):
                np.save(req["save"], np.stack(out))
            _reply({"seconds": dt})
        except Exception as exc:
            _reply({"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()})


def _boot_tlens(model_dir: str, tok: Any, info: dict[str, Any]) -> Any:
    """TransformerLens 4: ``TransformerBridge`` on the saved model, ``run_with_cache``."""
    import importlib.metadata as md

    import torch

    info["tool"] = "transformer-lens " + md.version("transformer-lens")
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        model_dir, device="cpu", dtype=torch.float32, tokenizer=tok
    )
    bridge.eval()
    n_layers = bridge.cfg.n_layers
    names = ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(n_layers)]
    missing = [n for n in names if n not in bridge.hook_dict]
    if missing:
        raise RuntimeError(f"TransformerBridge has no hook points {missing[:3]}")
    info["api"] = (
        "TransformerBridge.boot_transformers(dir).run_with_cache(ids, names_filter=[13 resid "
        f"hooks], stop_at_layer={n_layers}, pos_slice=-1)"
    )
    info["attn_implementation"] = getattr(bridge.original_model.config, "_attn_implementation", "?")

    def run(ids: torch.Tensor) -> list[Any]:
        with torch.no_grad():
            _, cache = bridge.run_with_cache(
                ids, names_filter=names, stop_at_layer=n_layers, pos_slice=-1
            )
        return [cache[n].reshape(ids.shape[0], -1).float().numpy() for n in names]

    return run


def _boot_nnsight(model_dir: str, tok: Any, info: dict[str, Any]) -> Any:
    """nnsight: ``LanguageModel`` on the saved model, ``trace`` + ``save`` + ``stop``."""
    import importlib.metadata as md

    import torch

    info["tool"] = "nnsight " + md.version("nnsight")
    from nnsight import LanguageModel
    from transformers import AutoModelForCausalLM

    hf_model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    lm = LanguageModel(hf_model, tokenizer=tok)
    n_layers = len(lm.gpt_neox.layers)
    info["api"] = (
        "LanguageModel(hf_model).trace(ids): gpt_neox.embed_in.output[:, -1].save(), "
        f"gpt_neox.layers[i].output[:, -1].save() for i < {n_layers}, tracer.stop()"
    )
    info["attn_implementation"] = getattr(hf_model.config, "_attn_implementation", "?")

    def hidden(x: Any) -> Any:
        return x[0] if isinstance(x, tuple) else x

    def run(ids: torch.Tensor) -> list[Any]:
        saved = []
        with torch.no_grad(), lm.trace(ids) as tracer:
            saved.append(lm.gpt_neox.embed_in.output[:, -1].save())
            for i in range(n_layers):
                saved.append(hidden(lm.gpt_neox.layers[i].output)[:, -1].save())
            tracer.stop()
        return [getattr(s, "value", s).float().numpy() for s in saved]

    return run


# --------------------------------------------------------------------------- mindscope side
class MsSide:
    """mindscope extraction and the bare forward passes, in this process."""

    def __init__(self, model_dir: Path, prompts: list[str], pairs: list[Any], bs: int) -> None:
        import mindscope as ms

        self.ms = ms
        self.h = ms.load_model(model_dir, device="cpu")
        self.prompts = prompts
        self.pairs = pairs
        self.bs = bs
        enc = self.h.tokenizer(prompts, return_tensors="pt")
        self.batches = [
            (enc["input_ids"][i : i + bs], enc["attention_mask"][i : i + bs])
            for i in range(0, len(prompts), bs)
        ]
        self.scratch = Path(tempfile.mkdtemp(prefix="bench_extract-store-"))

    def extract(self, items: list[Any], **kw: Any) -> tuple[float, Any]:
        """Time one fresh extraction (new store folder), return (seconds, activations)."""
        store = tempfile.mkdtemp(dir=self.scratch)
        t0 = time.perf_counter()
        acts = self.ms.extract(
            self.h, items, position="last", batch_size=self.bs, store=store, progress=False, **kw
        )
        return time.perf_counter() - t0, acts

    def bare(self, causal: bool) -> float:
        import torch

        model = self.h.model if causal else self.h.base
        t0 = time.perf_counter()
        with torch.no_grad():
            for ids, mask in self.batches:
                model(input_ids=ids, attention_mask=mask)
        return time.perf_counter() - t0

    def clean(self) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir()


# --------------------------------------------------------------------------- peak RSS
def mem_child(model_dir: Path, n: int, n_tok: int, bs: int, threads: int) -> None:
    """Extract ``n`` prompts in this (fresh) process; print peak RSS before and after."""
    import torch

    import mindscope as ms

    torch.set_num_threads(threads)
    h = ms.load_model(model_dir, device="cpu")
    prompts = make_prompts(n, n_tok, n_words(h.tokenizer), seed=n)
    h.weights_hash  # noqa: B018 - hashed before the baseline reading
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    store = tempfile.mkdtemp(prefix="bench_extract-mem-")
    try:
        t0 = time.perf_counter()
        acts = ms.extract(h, prompts, layers="all", batch_size=bs, store=store, progress=False)
        dt = time.perf_counter() - t0
        assert acts.shape == (n, h.d_model)
    finally:
        shutil.rmtree(store, ignore_errors=True)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    hwm = next((int(x.split()[1]) for x in open("/proc/self/status") if x.startswith("VmHWM")), -1)
    _reply({"n": n, "before_kib": before, "peak_kib": after, "vmhwm_kib": hwm, "seconds": dt})


def run_mem(model_dir: Path, n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--mem-child", str(n)]
    cmd += ["--mem-model", str(model_dir), "--threads", str(args.threads)]
    cmd += ["--mem-tokens", str(args.mem_tokens), "--batch-size", str(args.batch_size)]
    # ru_maxrss survives fork + exec on Linux: a child forked from this process (the 160M model
    # loaded) would start with its peak. A minimal launcher process forks the measured one.
    launcher = "import subprocess, sys; sys.exit(subprocess.call(sys.argv[1:]))"
    res = subprocess.run(
        [sys.executable, "-S", "-c", launcher, *cmd], capture_output=True, text=True, check=False
    )
    for line in res.stdout.splitlines():
        if line.startswith(TAG):
            out: dict[str, Any] = json.loads(line[len(TAG) :])
            return out
    raise RuntimeError(f"peak-RSS child for n={n} failed:\n{res.stderr[-3000:]}")


# --------------------------------------------------------------------------- main
def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: few prompts, 2 repetitions")
    p.add_argument("--prompts", type=int, help="prompts for targets 1-2 (issue: 512)")
    p.add_argument("--tokens", type=int, default=128, help="tokens per prompt")
    p.add_argument("--pairs", type=int, help="contrast pairs for target 3 (issue: 512)")
    p.add_argument("--prefix", type=int, default=120, help="shared prefix tokens of a pair")
    p.add_argument("--reps", type=int, help="interleaved repetitions (>= 5 for the figures)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--threads", type=int, default=2, help="torch threads in every process")
    p.add_argument("--mem-small", type=int, help="prompts of the small peak-RSS run")
    p.add_argument("--mem-large", type=int, help="prompts of the large peak-RSS run")
    p.add_argument("--mem-tokens", type=int, default=8, help="tokens per peak-RSS prompt")
    p.add_argument("--no-refs", action="store_true", help="skip TransformerLens and nnsight")
    p.add_argument("--json", type=Path, help="also write every timing here")
    # internal
    p.add_argument("--worker", choices=["tlens", "nnsight"], help=argparse.SUPPRESS)
    p.add_argument("--mem-child", type=int, help=argparse.SUPPRESS)
    p.add_argument("--mem-model", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()

    if args.worker:
        worker_main(args.worker)
        return 0
    if args.mem_child:
        mem_child(args.mem_model, args.mem_child, args.mem_tokens, args.batch_size, args.threads)
        return 0

    full = {"prompts": 64, "pairs": 32, "reps": 5, "mem_small": 1000, "mem_large": 20000}
    quick = {"prompts": 8, "pairs": 8, "reps": 2, "mem_small": 200, "mem_large": 1000}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.quick:
        args.tokens, args.prefix, args.batch_size = 32, 28, 4
    if args.prefix >= args.tokens + 8:
        p.error("--prefix should be below --tokens")
    return run_bench(args)


def run_bench(args: argparse.Namespace) -> int:
    import numpy as np
    import torch
    import transformers

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench_extract-"))
    print(
        f"bench_extract: {args.prompts} prompts x {args.tokens} tokens, {args.pairs} pairs "
        f"({args.prefix}-token prefix + 3/4-token completions), batch {args.batch_size}, "
        f"{args.reps} interleaved reps, {args.threads} torch threads, work dir {work}",
        flush=True,
    )
    model_dir = build_model(work / "pythia160m-random", PYTHIA_160M)
    from transformers import AutoTokenizer

    vocab_words = n_words(AutoTokenizer.from_pretrained(model_dir))
    prompts = make_prompts(args.prompts, args.tokens, vocab_words, seed=1)
    pairs = make_pairs(args.pairs, args.prefix, vocab_words, seed=2)
    data = work / "data.json"
    data.write_text(
        json.dumps({"prompts": prompts, "batch_size": args.batch_size, "threads": args.threads})
    )

    workers: dict[str, Worker] = {}
    ref_notes: dict[str, str] = {}
    if not args.no_refs:
        for name in ("tlens", "nnsight"):
            py = VENVS / name / "bin" / "python"
            if not py.exists():
                ref_notes[name] = f"no venv at {py}: run `bash benchmarks/setup_refs.sh`"
                continue
            workers[name] = Worker(name, py, model_dir, data, work / f"{name}.log")

    side = MsSide(model_dir, prompts, pairs, args.batch_size)
    n_layers = side.h.n_layers
    early = list(range(4))  # layers 0..3: the first quarter of 12
    side.extract(prompts[: args.batch_size], layers="all")  # warm-up (weights hash, allocator)
    side.bare(causal=True)
    for name in list(workers):
        try:
            w = workers[name]
            w.info = w.request()["info"]  # the "ready" line
            w.request(op="run", n=args.batch_size)  # warm-up
            print(f"  {name}: {w.info.get('tool')} ready ({w.info.get('api')})", flush=True)
        except RuntimeError as exc:
            ref_notes[name] = str(exc).splitlines()[0][:400]
            print(f"  {name}: FAILED to start: {exc}", flush=True)
            workers.pop(name).close()

    # one interleaved round: A B C ... ; the first round also checks every result agrees
    times: dict[str, list[float]] = {}
    check: dict[str, float] = {}

    def add(k: str, v: float) -> None:
        times.setdefault(k, []).append(v)

    for rep in range(args.reps):
        t, acts = side.extract(prompts, layers="all")
        add("ms_all", t)
        ref = acts.stack().numpy() if rep == 0 else None
        add("bare_causal", side.bare(causal=True))
        add("bare_base", side.bare(causal=False))
        for name, w in workers.items():
            save = str(work / f"{name}.npy") if rep == 0 else None
            add(name, w.request(op="run", save=save)["seconds"])
            if ref is not None and save:
                check[name] = float(np.abs(np.load(save) - ref).max())
        t, _ = side.extract(prompts, layers=early)
        add("ms_early", t)
        t, shared = side.extract(pairs, layers="all", share_prefix=True)
        add("pairs_shared", t)
        t, split = side.extract(pairs, layers="all", share_prefix=False)
        add("pairs_split", t)
        if rep == 0:
            check["pairs shared vs split"] = float(
                (shared.stack() - split.stack()).abs().max().item()
            )
        side.clean()
        row = "  ".join(f"{k}={v[-1]:.2f}s" for k, v in times.items())
        print(f"  rep {rep + 1}/{args.reps}: {row}", flush=True)
    for w in workers.values():
        w.close()

    print("  peak-RSS runs (fresh subprocesses)...", flush=True)
    mem_dir = build_model(work / "mem-model", MEM_MODEL)
    mem = {n: run_mem(mem_dir, n, args) for n in (args.mem_small, args.mem_large)}
    shutil.rmtree(work, ignore_errors=True)
    side.clean()
    total = time.perf_counter() - t_start

    m = {k: med(v) for k, v in times.items()}
    rows: list[tuple[str, str, float, float | None, str]] = []  # what, ratio, value, limit, note

    def ratio(a: str, b: str) -> float:
        return m[a] / m[b] if a in m and b in m else float("nan")

    rows.append(
        ("1  all layers / bare CausalLM forward", "<=", ratio("ms_all", "bare_causal"), 1.05, "")
    )
    rows.append(
        (
            "1  all layers / bare base-model forward (no head)",
            "<=",
            ratio("ms_all", "bare_base"),
            1.05,
            "info",
        )
    )
    for name, label in (("tlens", "TransformerLens"), ("nnsight", "nnsight")):
        if name in m:
            rows.append((f"1  all layers / {label}", "<=", ratio("ms_all", name), 1.0, ""))
        else:
            rows.append(
                (
                    f"1  all layers / {label}",
                    "<=",
                    float("nan"),
                    1.0,
                    ref_notes.get(name, "skipped"),
                )
            )
    rows.append(
        ("2  layers 0..3 / bare base-model forward", "<=", ratio("ms_early", "bare_base"), 0.5, "")
    )
    rows.append(
        (
            "2  layers 0..3 / bare CausalLM forward",
            "<=",
            ratio("ms_early", "bare_causal"),
            0.5,
            "info",
        )
    )
    rows.append(
        (
            "3  pairs shared prefix / share_prefix=False",
            "<=",
            ratio("pairs_shared", "pairs_split"),
            0.6,
            "",
        )
    )
    small, large = mem[args.mem_small], mem[args.mem_large]
    rows.append(
        (
            f"4  peak RSS {args.mem_large} / {args.mem_small} prompts",
            "<=",
            large["peak_kib"] / small["peak_kib"],
            1.5,
            "",
        )
    )
    d_small = small["peak_kib"] - small["before_kib"]
    d_large = large["peak_kib"] - large["before_kib"]
    rows.append(
        (
            f"4  RSS growth during extract {args.mem_large} / {args.mem_small}",
            "",
            d_large / max(d_small, 1),
            None,
            "info",
        )
    )

    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cpus, load avg "
        f"{os.getloadavg()[0]:.1f}; torch {torch.__version__}, transformers "
        f"{transformers.__version__}; total wall {total / 60:.1f} min"
    )
    for name, w in workers.items():
        print(
            f"{name}: {w.info.get('tool')}, attn={w.info.get('attn_implementation')}; "
            f"{w.info.get('api')}"
        )
    print(f"mindscope attn={getattr(side.h.config, '_attn_implementation', '?')}")
    print("\nmedian seconds (all reps):")
    for k, v in times.items():
        print(f"  {k:13s} {m[k]:8.3f}   [{', '.join(f'{x:.2f}' for x in v)}]")
    print(
        f"  peak RSS: {args.mem_small} prompts {small['peak_kib'] / 1024:.0f} MiB "
        f"(before extract {small['before_kib'] / 1024:.0f}), {args.mem_large} prompts "
        f"{large['peak_kib'] / 1024:.0f} MiB (before {large['before_kib'] / 1024:.0f}); "
        f"{MEM_MODEL['num_hidden_layers']}-layer d={MEM_MODEL['hidden_size']} GPT-NeoX, "
        f"{args.mem_tokens}-token prompts, all layers"
    )
    print(
        "max |difference| vs mindscope (all layers, rep 1): "
        + ", ".join(f"{k} {v:.2e}" for k, v in check.items())
    )
    print()
    print(f"{'target':55s} {'ratio':>7s}  {'limit':>7s}  result")
    ok = True
    for what, op, val, lim, note in rows:
        if lim is None:
            verdict = note
        elif val != val:  # nan
            verdict, ok = f"MISSING ({note})", False
        else:
            passed = val <= lim
            verdict = ("PASS" if passed else "FAIL") + (" (info)" if note == "info" else "")
            ok = ok and (passed or note == "info")
        print(f"{what:55s} {val:7.3f}  {op + (f'{lim:.2f}' if lim else ''):>7s}  {verdict}")
    print(
        f"\nabsolute: all layers {m['ms_all']:.2f} s, bare CausalLM {m['bare_causal']:.2f} s, "
        f"bare base {m['bare_base']:.2f} s ({args.prompts} x {args.tokens} tokens)"
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "times": times,
                    "mem": mem,
                    "check": check,
                    "refs": {k: w.info for k, w in workers.items()},
                    "notes": ref_notes,
                    "args": vars(args),
                },
                default=str,
                indent=1,
            )
        )
    figures = {
        "vs_causal": (ratio("ms_all", "bare_causal"), "ratio", "all layers / bare CausalLM"),
        "vs_base": (ratio("ms_all", "bare_base"), "ratio", "all layers / bare base model"),
        "vs_tlens": (ratio("ms_all", "tlens"), "ratio", "all layers / TransformerLens"),
        "vs_nnsight": (ratio("ms_all", "nnsight"), "ratio", "all layers / nnsight"),
        "early_vs_base": (ratio("ms_early", "bare_base"), "ratio", "layers 0..3 / bare base"),
        "pairs_shared": (ratio("pairs_shared", "pairs_split"), "ratio", "shared / split prefix"),
        "rss_ratio": (
            large["peak_kib"] / small["peak_kib"],
            "ratio",
            f"peak RSS {args.mem_large} / {args.mem_small} prompts",
        ),
    }
    record(
        "bench_extract",
        {k: v for k, v in figures.items() if v[0] == v[0]},  # nan: a tool was skipped
        reps=args.reps,
    )
    del n_layers
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
