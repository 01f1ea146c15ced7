"""``mindscope elicit``: fit reporters (probes) on a model's activations and score them.

    mindscope elicit --model M --dataset D --methods lr,ccs,crc --out DIR
    mindscope elicit transfer --model M --datasets D1,D2 --methods lr,diffmean --out DIR

``D`` is ``quirky-arith`` (the quirky addition dataset with the ``organism:quirky-arith`` number
ranges: ``--n`` training pairs, default 1000, and max(64, n // 4) from its test split), ``facts``
(the built-in true/false facts), a ``.jsonl``/``.csv`` file of contrast pairs (raw records need
``--template``), or ``hf:NAME[:SPLIT]`` (needs ``datasets`` and ``--template``). Pairs are split
into train/test (``--test-fraction``, seeded) unless their ``meta.split`` says
``train``/``test``; ``mindscope run`` loads datasets the same way. ``DIR`` must not exist (or
be empty); it receives ``results.parquet`` (the results table) and ``reporters/<method>/``
(safetensors). For quirky data the Mallen et al. report (Alice-easy -> Bob-hard, fraction
of gap recovered) is added.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register", "load_dataset", "lm_logodds"]


def _out_dir(path: str) -> Path:
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MindscopeError(f"output {out} already exists; refusing to overwrite it")
    return out


def _layers(spec: str) -> str | list[int]:
    if spec == "all":
        return "all"
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise MindscopeError(
            f"--layers must be 'all' or comma-separated ints, got {spec!r}"
        ) from None
    if not layers or min(layers) < 0:
        raise MindscopeError(f"--layers must be non-negative ints, got {spec!r}")
    return layers


def _methods(spec: str, read: str = "completion") -> list[str]:
    from mindscope.probes.evaluate import METHODS
    from mindscope.runs.config import read_mode_error

    methods = [m.strip() for m in spec.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise MindscopeError(
            f"--methods: unknown {bad or spec!r}; choose from {', '.join(METHODS)}"
        )
    problem = read_mode_error(read, methods)
    if problem:
        raise MindscopeError(f"--read {read}: {problem}")
    return methods


def load_dataset(
    name: str,
    *,
    n: int | None,
    seed: int,
    test_fraction: float = 0.25,
    template: str | None = None,
) -> tuple[list[Any], list[Any]]:
    """``(train, test)`` contrast pairs: :func:`mindscope.data.load_split`, the loading path
    ``mindscope run`` uses too (same name and seed, same pairs)."""
    from mindscope.data.datasets import load_split

    return load_split(name, n=n, seed=seed, test_fraction=test_fraction, template=template)


def _data_name(name: str) -> str:
    """Short name of a dataset: a file's stem, else the name itself."""
    from mindscope.data.datasets import dataset_name

    return dataset_name(name)


def _truth(pairs: list[Any]) -> Any:
    import torch

    return torch.tensor([int(p.meta.get("truth", p.label)) for p in pairs])


def _is_quirky(pairs: list[Any]) -> bool:
    return all(k in p.meta for p in pairs for k in ("persona", "difficulty", "truth", "bob_label"))


def lm_logodds(h: Any, pairs: list[Any], batch_size: int = 64) -> Any:
    """``[n]`` the model's log-odds of completion 1 over completion 0 after each prompt (see
    :func:`mindscope.activations.lm_logodds`, the one implementation)."""
    from mindscope.activations import lm_logodds as engine_logodds

    return engine_logodds(h, pairs, batch_size=batch_size)


def _load_and_extract(args: argparse.Namespace, h: Any, pairs: list[Any], layers: Any) -> Any:
    import mindscope as ms

    acts = ms.extract(
        h,
        [p.prompt for p in pairs] if args.read == "prompt" else pairs,
        layers=layers,
        position=args.position,
        batch_size=args.batch_size,
        store=args.store,
        progress=not args.quiet,
    )
    return acts.stack(), list(acts.layers)  # [L, n, 2, d] (read=prompt: [L, n, d])


def _elicit(args: argparse.Namespace) -> int:
    import torch

    import mindscope as ms
    from mindscope.data import dataset_hash
    from mindscope.probes import evaluate as pe
    from mindscope.results import stamp, to_frame, write_table

    if not args.model or not args.dataset or not args.out:
        raise MindscopeError("elicit needs --model, --dataset and --out")
    out = _out_dir(args.out)
    methods = _methods(args.methods, args.read)
    layers = _layers(args.layers)
    train, test = load_dataset(
        args.dataset,
        n=args.n,
        seed=args.seed,
        test_fraction=args.test_fraction,
        template=args.template,
    )
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    x_tr, layer_ids = _load_and_extract(args, h, train, layers)
    x_te, _ = _load_and_extract(args, h, test, layers)
    quirky = _is_quirky(train) and _is_quirky(test)
    fit_idx = [i for i, p in enumerate(train) if not quirky or p.meta["persona"] == "alice"]
    y_tr = _truth(train)
    data_name = _data_name(args.dataset)
    common: dict[str, Any] = {
        "dataset": data_name,
        "n_boot": args.n_boot,
        "seed": args.seed,
    }
    reps = pe.fit_reporters(
        x_tr[:, fit_idx],
        y_tr[fit_idx],
        methods,
        unsupervised_sign=args.unsupervised,
        baselines=not args.no_baselines,
    )
    rows = pe.score_rows(reps, x_te, _truth(test), layers=layer_ids, split="test", **common)
    if quirky:
        everything = list(train) + list(test)
        rows += pe.quirky_report(
            torch.cat([x_tr, x_te], dim=1),
            [dict(p.meta) for p in everything],
            lm_logodds=lm_logodds(h, everything) if h.is_causal else None,
            methods=methods,
            layers=layer_ids,
            dataset=data_name,
            n_boot=args.n_boot,
            seed=args.seed,
        )
    df = stamp(to_frame(rows), h)
    out.mkdir(parents=True, exist_ok=True)
    for method, rep in reps.items():
        rep.save(out / "reporters" / method, meta={"model": h.name, "layers": layer_ids})
    write_table(df, out / "results.parquet")
    (out / "run.json").write_text(
        json.dumps(
            {
                "command": "elicit",
                "model": h.name,
                "revision": h.revision,
                "dataset": args.dataset,
                "methods": list(reps),
                "layers": layer_ids,
                "n_train": len(fit_idx),
                "n_test": len(test),
                "data": {
                    f"elicit-train:{data_name}": dataset_hash(train),
                    f"elicit-test:{data_name}": dataset_hash(test),
                },
                "position": args.position,
                "read": args.read,
                "seed": args.seed,
                "quirky": quirky,
            },
            indent=2,
        )
    )
    _summary(df, out)
    return 0


def _transfer(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.probes import evaluate as pe
    from mindscope.results import stamp, to_frame, write_table

    if not args.model or not args.datasets or not args.out:
        raise MindscopeError("elicit transfer needs --model, --datasets and --out")
    out = _out_dir(args.out)
    methods = _methods(args.methods, args.read)
    layers = _layers(args.layers)
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if len(names) < 2:
        raise MindscopeError("--datasets: give at least two datasets, comma-separated")
    short = [_data_name(n) for n in names]
    if len(set(short)) != len(short):
        raise MindscopeError(f"--datasets: short names must differ, got {short}")
    splits = {
        name: load_dataset(
            name, n=args.n, seed=args.seed, test_fraction=args.test_fraction, template=args.template
        )
        for name in names
    }
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    arrays: dict[str, tuple[Any, Any]] = {}
    layer_ids: list[int] = []
    for name, (train, test) in splits.items():
        x_tr, layer_ids = _load_and_extract(args, h, train, layers)
        x_te, _ = _load_and_extract(args, h, test, layers)
        arrays[f"{_data_name(name)}/train"] = (x_tr, _truth(train))
        arrays[f"{_data_name(name)}/test"] = (x_te, _truth(test))
    rows = pe.transfer_matrix(
        arrays,
        train=[f"{n}/train" for n in short],
        eval_on=[f"{n}/test" for n in short],
        methods=methods,
        layers=layer_ids,
        unsupervised_sign=args.unsupervised,
        baselines=not args.no_baselines,
        n_boot=args.n_boot,
        seed=args.seed,
    )
    df = stamp(to_frame(rows), h)
    out.mkdir(parents=True, exist_ok=True)
    write_table(df, out / "results.parquet")
    _summary(df, out, transfer=True)
    return 0


def _summary(df: Any, out: Path, transfer: bool = False) -> None:
    """Print the best layer per method (AUROC vs truth) to stdout."""
    auc = df[(df.metric == "auroc") & (df.method != "lm") & (df.layer >= 0)]
    if transfer:
        auc = auc.assign(train=auc.extra.map(lambda e: json.loads(e).get("train", "")))
        best = auc.sort_values("value").groupby(["train", "split", "method"]).tail(1)
        cols = ["train", "split", "method", "layer", "value"]
    else:
        auc = auc[auc.split == "test"]
        best = auc.sort_values("value").groupby("method").tail(1)
        cols = ["method", "layer", "value", "ci_low", "ci_high"]
    print(best.sort_values(cols[:-1] if transfer else "method")[cols].to_string(index=False))
    gap = df[df.metric == "gap_recovered_best"]
    if len(gap):
        print("fraction of the AUROC gap recovered (Alice-easy -> Bob-hard, best layer):")
        print(gap[["method", "value", "extra"]].to_string(index=False))
    print(f"results: {out / 'results.parquet'}", file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="hub id, local folder or organism:NAME")
    p.add_argument("--revision", default=None, help="model revision (e.g. step1000)")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available; default), cpu, cuda:N, mps"
    )
    p.add_argument(
        "--methods",
        default="lr,diffmean,lda,ccs,crc",
        help="comma-separated reporters: lr, diffmean, lda, ccs, crc, random",
    )
    p.add_argument("--layers", default="all", help="'all' or comma-separated layer indices")
    p.add_argument("--position", default="last", help="token position rule (last, mean, ...)")
    p.add_argument(
        "--read",
        choices=("completion", "prompt"),
        default="completion",
        help="completion: each side of the pair [n, 2, d]; prompt: the prompt alone, before any "
        "answer [n, d] (supervised reporters and random only)",
    )
    p.add_argument("--template", default=None, help="template name or '{field}' pattern")
    p.add_argument(
        "--n",
        type=int,
        default=None,
        help="quirky-arith: N training pairs (default 1000); other datasets: at most N pairs",
    )
    p.add_argument("--test-fraction", type=float, default=0.25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-boot", type=int, default=300, help="bootstrap resamples for AUROC CIs")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--store", default=None, help="activation store root")
    p.add_argument(
        "--unsupervised",
        action="store_true",
        help="fit CCS/CRC without labels (sign ambiguous; scored max(auc, 1-auc))",
    )
    p.add_argument("--no-baselines", action="store_true", help="do not add the random baseline")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", help="output folder (must not exist)")


def register(subparsers: Any) -> None:
    """Add ``elicit`` (and ``elicit transfer``) to the top-level sub-command parsers."""
    p = subparsers.add_parser(
        "elicit",
        help="fit reporters (probes) on activations and score them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p)
    p.add_argument("--dataset", help="quirky-arith, facts, FILE.jsonl/.csv or hf:NAME[:SPLIT]")
    p.set_defaults(func=_elicit)
    sub = p.add_subparsers(dest="elicit_command", metavar="{transfer}")
    t = sub.add_parser("transfer", help="train x eval transfer matrix over several datasets")
    _common(t)
    t.add_argument("--datasets", help="comma-separated datasets (as for --dataset)")
    t.set_defaults(func=_transfer)
