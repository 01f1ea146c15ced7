"""``mindscope elicit``: fit reporters (probes) on a model's activations and score them.

    mindscope elicit --model M --dataset D --methods lr,ccs,crc --out DIR
    mindscope elicit transfer --model M --datasets D1,D2 --methods lr,diffmean --out DIR

``D`` is ``quirky-arith`` (the quirky addition dataset with the ``organism:quirky-arith`` number
ranges: ``--n`` training pairs, default 1000, and max(64, n // 4) from its test split), ``facts``
(the built-in true/false facts), a ``.jsonl``/``.csv`` file of contrast pairs (raw records need
``--template``), or ``hf:NAME[:SPLIT]`` (needs ``datasets`` and ``--template``). Pairs are split
into train/test (``--test-fraction``, seeded) unless their ``meta.split`` says
``train``/``test`` (``--split-field``), or split by group when records carry one
(``--group-field``: a statement and its negation never straddle train and test); a random split
warns when a statement's twin lands on the other side. ``mindscope data --help`` documents the
file format, ``mindscope data check FILE`` checks a file. ``mindscope run`` loads datasets the
same way. ``DIR`` must not exist (or be empty); it receives ``results.parquet`` (the results
table), ``predictions.parquet`` (every reporter's credence on every test example and layer),
``run.json`` and ``reporters/<method>/`` (safetensors); ``mindscope report DIR`` builds its
report. For quirky data the Mallen et al. report (Alice-easy -> Bob-hard, fraction of gap
recovered) and ``auroc_disagree`` (AUROC on the test examples where the persona's label differs
from the truth) are added. Results on fewer than 50 test examples, or whose CI reaches the
random baseline, are flagged in the summary.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mindscope.cli._args import choices_list, out_dir, parse_layers
from mindscope.errors import MindscopeError

__all__ = ["register"]


def _config(args: argparse.Namespace) -> Any:
    """The :class:`~mindscope.analyses.ElicitConfig` of the command line, checked."""
    from mindscope.analyses import CheckContext, ElicitConfig
    from mindscope.cli._stage import config_from_args

    read = args.cfg_read or "completion"
    fixed: dict[str, Any] = {}
    gave_methods = args.cfg_methods is not None
    if gave_methods:
        from mindscope.probes.registry import REPORTER_METHODS, read_mode_error

        methods = choices_list(args.cfg_methods, REPORTER_METHODS, "--methods")
        problem = read_mode_error(read, methods)
        if problem:
            raise MindscopeError(f"--read {read}: {problem}")
        if not args.no_baselines and "random" not in methods:
            methods.append("random")
        fixed["methods"] = methods
    if args.cfg_layers is not None:
        fixed["layers"] = parse_layers(args.cfg_layers)
    args.cfg_methods = args.cfg_layers = None
    cfg = config_from_args(args, ElicitConfig, **fixed)
    if args.no_baselines and not gave_methods:
        cfg.methods = [m for m in cfg.methods if m != "random"] or cfg.methods
    ctx = CheckContext(base=Path.cwd(), seed=args.seed, model=args.model or "", check_data=False)
    try:
        return cfg.check(ctx, "elicit")
    except MindscopeError as exc:
        # "elicit.n_boot: ..." -> "--n-boot: ..."
        head, _, tail = str(exc).partition(":")
        flag = head.removeprefix("elicit.").split("[")[0].replace("_", "-")
        raise MindscopeError(f"--{flag}:{tail}") from None


def _elicit(args: argparse.Namespace) -> int:
    """``mindscope elicit``: the elicit stage (:mod:`mindscope.analyses.elicit`) on one model,
    written to a folder."""
    import mindscope as ms
    from mindscope.analyses import run_stage
    from mindscope.results import stamp, write_table

    if not args.model or not args.cfg_dataset or not args.out:
        raise MindscopeError("elicit needs --model, --dataset and --out")
    out = out_dir(args.out)
    cfg = _config(args)
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    res = run_stage("elicit", h, cfg, seed=args.seed, progress=not args.quiet, store=args.store)
    for msg in res.info.get("split_warnings", []):
        print(f"mindscope: warning: {msg}", file=sys.stderr)
    df = stamp(res.rows, h)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in res.artefacts.items():
        if name.startswith("reporter-"):
            write(out / "reporters" / name.removeprefix("reporter-"))
        else:
            write(out / name)
    write_table(df, out / "results.parquet")
    info = res.info
    (out / "run.json").write_text(
        json.dumps(
            {
                "command": "elicit",
                "model": h.name,
                "revision": h.revision,
                "dataset": cfg.dataset,
                "methods": list(cfg.methods),
                "read": cfg.read,
                "position": cfg.position,
                "config": cfg.model_dump(mode="json"),
                **info,
                "data": res.data,
                "seed": args.seed,
            },
            indent=2,
        )
    )
    _summary(df, out)
    return 0


def _transfer(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.analyses.elicit import load_pairs
    from mindscope.data.datasets import dataset_name as _data_name
    from mindscope.probes import evaluation as pe
    from mindscope.results import stamp, to_frame, write_table

    if not args.model or not args.datasets or not args.out:
        raise MindscopeError("elicit transfer needs --model, --datasets and --out")
    out = out_dir(args.out)
    cfg = _config(args)
    methods = [m for m in cfg.methods if m != "random"] or cfg.methods
    layers = cfg.layers
    names = [d.strip() for d in args.datasets.split(",") if d.strip()]
    if len(names) < 2:
        raise MindscopeError("--datasets: give at least two datasets, comma-separated")
    short = [_data_name(n) for n in names]
    if len(set(short)) != len(short):
        raise MindscopeError(f"--datasets: short names must differ, got {short}")
    splits = {}
    for name in names:
        ds = load_pairs(cfg.model_copy(update={"dataset": name}), args.seed)
        for msg in ds.warnings:
            print(f"mindscope: warning: {msg}", file=sys.stderr)
        splits[name] = (ds.train, ds.test)
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    arrays: dict[str, tuple[Any, Any]] = {}
    layer_ids: list[int] = []
    for name, (train, test) in splits.items():
        x_tr, layer_ids = _extract(cfg, args, h, train, layers)
        x_te, _ = _extract(cfg, args, h, test, layers)
        arrays[f"{_data_name(name)}/train"] = (x_tr, _truth(train))
        arrays[f"{_data_name(name)}/test"] = (x_te, _truth(test))
    rows = pe.transfer_matrix(
        arrays,
        train=[f"{n}/train" for n in short],
        eval_on=[f"{n}/test" for n in short],
        methods=methods,
        layers=layer_ids,
        unsupervised_sign=cfg.unsupervised,
        baselines=not args.no_baselines,
        n_boot=cfg.n_boot,
        seed=args.seed,
    )
    df = stamp(to_frame(rows), h)
    out.mkdir(parents=True, exist_ok=True)
    write_table(df, out / "results.parquet")
    _summary(df, out, transfer=True)
    return 0


def _truth(pairs: list[Any]) -> Any:
    import torch

    return torch.tensor([int(p.meta.get("truth", p.label)) for p in pairs])


def _extract(cfg: Any, args: argparse.Namespace, h: Any, pairs: list[Any], layers: Any) -> Any:
    """``([L, n, 2, d] or [L, n, d], layer ids)`` activations of ``pairs``."""
    import mindscope as ms

    acts = ms.extract(
        h,
        [p.prompt for p in pairs] if cfg.read == "prompt" else pairs,
        layers=layers,
        position=cfg.position,
        batch_size=cfg.batch_size,
        store=args.store,
        progress=not args.quiet,
    )
    return acts.stack(), list(acts.layers)


def _best_by(rows: Any, keys: list[str]) -> Any:
    """The best row of each group (the metric catalogue's direction and tie rule, as in the
    report and ``mindscope runs``)."""
    import pandas as pd

    from mindscope.metrics_catalog import best

    picked = [best(g) for _, g in rows.groupby(keys, sort=True)]
    return pd.DataFrame(picked) if picked else rows.iloc[:0]


def _summary(df: Any, out: Path, transfer: bool = False) -> None:
    """Print the best layer per method (test AUROC vs the truth) to stdout, each result flagged
    when it rests on < 50 test examples or its CI reaches the random baseline."""
    from mindscope.report.summary import flag_line

    auc = df[(df.metric == "auroc") & (df.method != "lm") & (df.layer >= 0)]
    if transfer:
        from mindscope.results import extra_values

        auc = auc.assign(train=extra_values(auc, "train", ""))
        best = _best_by(auc, ["train", "split", "method"])
        cols = ["train", "split", "method", "layer", "value", "flag"]
        keys = ["train", "split"]
    else:
        auc = auc[auc.split == "test"]
        best = _best_by(auc, ["method"])
        cols = ["method", "layer", "value", "ci_low", "ci_high", "n", "flag"]
        keys = ["split"]
    rand = {
        tuple(r[k] for k in keys): float(r["value"])
        for _, r in best.iterrows()
        if r["method"] == "random"
    }
    best = best.assign(
        flag=[
            flag_line(
                "auroc",
                str(r["method"]),
                float(r["value"]),
                float(r["ci_low"]),
                float(r["ci_high"]),
                int(r["n"]),
                rand.get(tuple(r[k] for k in keys)),
            )
            for _, r in best.iterrows()
        ]
    )
    print("best layer per method: AUROC against the truth, chosen and scored on the test split")
    shown = best.sort_values(cols[:3] if transfer else "method")[cols]
    print(shown.round(3).to_string(index=False))
    dis = df[(df.metric == "auroc_disagree") & (df.layer >= 0)]
    if len(dis):
        print("AUROC on test examples where the persona's label differs from the truth:")
        top = _best_by(dis, ["method"])
        print(top[["method", "layer", "value", "ci_low", "ci_high", "n"]].to_string(index=False))
    gap = df[df.metric == "gap_recovered_best"]
    if len(gap):
        print("fraction of the AUROC gap recovered (Alice-easy -> Bob-hard, best layer):")
        print(gap[["method", "value", "extra"]].to_string(index=False))
    print(f"results: {out / 'results.parquet'}", file=sys.stderr)


def _common(p: argparse.ArgumentParser) -> None:
    from mindscope.analyses import ElicitConfig
    from mindscope.cli._stage import add_config_args

    p.add_argument("--model", help="hub id, local folder or organism:NAME")
    p.add_argument("--revision", default=None, help="model revision (e.g. step1000)")
    p.add_argument(
        "--device", default="auto", help="auto (CUDA when available; default), cpu, cuda:N, mps"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
    p.add_argument("--store", default=None, help="activation store root")
    p.add_argument("--no-baselines", action="store_true", help="do not add the random baseline")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--out", help="output folder (must not exist)")
    add_config_args(p, ElicitConfig, skip=("dataset",), title="reporter options")


def register(subparsers: Any) -> None:
    """Add ``elicit`` (and ``elicit transfer``) to the top-level sub-command parsers."""
    p = subparsers.add_parser(
        "elicit",
        help="fit reporters (probes) on activations and score them",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common(p)
    p.add_argument(
        "--dataset",
        dest="cfg_dataset",
        help="quirky-arith, facts, FILE.jsonl/.csv or hf:NAME[:SPLIT]",
    )
    p.set_defaults(func=_elicit)
    sub = p.add_subparsers(dest="elicit_command", metavar="{transfer}")
    t = sub.add_parser("transfer", help="train x eval transfer matrix over several datasets")
    _common(t)
    t.add_argument("--datasets", help="comma-separated datasets (as for --dataset)")
    t.set_defaults(func=_transfer, cfg_dataset=None)
