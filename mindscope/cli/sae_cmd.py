"""``mindscope sae``: sparse autoencoders.

    mindscope sae train --model organism:pocket-lm --sites resid_post.2 --archs topk,batchtopk \\
        --steps 1000 --out runs/sae                      # train at sites, score, save
    mindscope sae eval --model organism:pocket-lm --sae runs/sae/saes/resid_post.2-topk
    mindscope sae planted --setting small --archs topk,matryoshka --k 8 --steps 1000
                                                         # scored against a planted dictionary
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register"]


def _new_dir(path: str) -> Path:
    out = Path(path)
    if out.exists():
        raise MindscopeError(f"--out {out} exists; give a new folder (nothing is overwritten)")
    return out


def _config(args: argparse.Namespace) -> Any:
    from mindscope.analyses import CheckContext, SaeConfig
    from mindscope.cli._stage import config_from_args

    cfg = config_from_args(args, SaeConfig)
    try:
        return cfg.check(CheckContext(base=Path.cwd(), seed=args.seed), "sae")
    except MindscopeError as exc:
        head, _, tail = str(exc).partition(":")
        flag = head.removeprefix("sae.").split("[")[0].replace("_", "-")
        raise MindscopeError(f"--{flag}:{tail}") from None


def _train(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.analyses import run_stage
    from mindscope.results import stamp, write_table

    if not args.model or not args.out:
        raise MindscopeError("sae train needs --model and --out")
    out = _new_dir(args.out)
    cfg = _config(args)
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    res = run_stage("sae", h, cfg, seed=args.seed, progress=not args.quiet)
    for msg in res.info.get("warnings", []):
        print(f"mindscope: warning: {msg}", file=sys.stderr)
    df = stamp(res.rows, h)
    out.mkdir(parents=True)
    for name, write in res.artefacts.items():
        write(out / ("features" if name.endswith(".json") else "saes") / name.removeprefix("sae-"))
    write_table(df, out / "results.parquet")
    (out / "run.json").write_text(
        json.dumps(
            {
                "command": "sae train",
                "model": h.name,
                "config": cfg.model_dump(mode="json"),
                **res.info,
                "data": res.data,
                "seed": args.seed,
            },
            indent=2,
        )
    )
    _summary(df)
    print(f"results: {out / 'results.parquet'}", file=sys.stderr)
    return 0


def _summary(df: Any) -> None:
    from mindscope.results import extra_values

    keep = [
        "l0",
        "fve",
        "dead_frac",
        "dense_frac",
        "shrinkage",
        "ce_recovered_zero",
        "ce_recovered_mean",
        "kl_recovered_mean",
    ]
    sub = df[df.metric.isin(keep)]
    sub = sub.assign(site=extra_values(sub, "site", ""))
    table = sub.pivot_table(index=["site", "method"], columns="metric", values="value")
    print(table[[c for c in keep if c in table.columns]].round(3).to_string())


def _eval(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.analyses.sae import loss_recovered
    from mindscope.lenses import read_texts
    from mindscope.sae import load_sae, reconstruction_metrics, site_activations, token_windows

    if not args.model or not args.sae:
        raise MindscopeError("sae eval needs --model and --sae")
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    cfg = (
        json.loads((Path(args.sae) / "config.json").read_text())
        if (Path(args.sae) / "config.json").is_file()
        else {}
    )
    given = args.site or cfg.get("meta", {}).get("site", "")
    if "->" in given:  # a transcoder: input site -> output site
        a, b = given.split("->", 1)
        src, out = h.canonical_site(a.strip()), h.canonical_site(b.strip())
        site = f"{src}->{out}"
    else:
        site = src = out = h.canonical_site(given)
    model = load_sae(args.sae, expect_meta={"weights_hash": h.weights_hash, "site": site})
    if args.text:
        texts = read_texts(args.text)
    else:
        from mindscope import organisms

        texts = list(organisms.pocket_corpus("heldout"))
    windows = token_windows(h, texts, args.seq_len)[: args.windows]
    acts = site_activations(h, windows, list(dict.fromkeys([src, out])))
    x, y = acts[src], acts[out]
    metrics = reconstruction_metrics(y, model.reconstruct(x), model.transform(x))
    metrics.update(
        loss_recovered(h, out, model, windows, y.mean(0), source_site=src if src != out else None)
    )
    for key, value in metrics.items():
        print(f"{key:>20s}  {value:.4f}")
    return 0


def _planted(args: argparse.Namespace) -> int:
    from mindscope import sae

    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    for a in archs:
        if a not in sae.ARCHITECTURES:
            raise MindscopeError(
                f"--archs: unknown architecture {a!r} (known: {', '.join(sae.ARCHITECTURES)})"
            )
    over = {
        k: v
        for k, v in (
            ("n_features", args.n_features),
            ("d", args.d),
            ("mean_active", args.mean_active),
        )
        if v is not None
    }
    gen = sae.planted(args.setting, seed=args.seed, **over)
    k = args.k or max(1, round(gen.mean_active))
    res = sae.compare_planted(
        gen,
        archs,
        k=k,
        n_latents=args.n_latents,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        lr=args.lr,
        dead_tokens=args.dead_tokens,
    )
    cols = [
        "mcc",
        "f1",
        "precision",
        "recall",
        "uniqueness",
        "l0",
        "fve",
        "dead_frac",
        "null_mcc",
        "train_cpu_s",
    ]
    print(f"{gen!r}; k={k}, steps={args.steps}")
    print(f"{'arch':>12s} " + " ".join(f"{c:>11s}" for c in cols))
    for a, m in res.items():
        print(f"{a:>12s} " + " ".join(f"{m[c]:11.3f}" for c in cols))
    if args.out:
        out = _new_dir(args.out)
        out.write_text(json.dumps({"generator": repr(gen), "k": k, "results": res}, indent=1))
    return 0


def register(subparsers: Any) -> None:
    """Add ``sae train``, ``sae eval`` and ``sae planted``."""
    from mindscope.analyses import SaeConfig
    from mindscope.cli._stage import add_config_args

    p = subparsers.add_parser(
        "sae",
        help="sparse autoencoders: train, evaluate, planted truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="sae_command", metavar="{train,eval,planted}")
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--model", help="hub id, local folder or organism:NAME")
        q.add_argument("--revision", default=None, help="model revision")
        q.add_argument("--device", default="auto", help="auto, cpu, cuda:N, mps")
        q.add_argument("--seed", type=int, default=0, help="seed of every random choice")

    t = sub.add_parser("train", help="train SAEs at model sites and score them")
    common(t)
    t.add_argument("--out", help="output folder (must not exist)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_args(t, SaeConfig, title="SAE options")
    t.set_defaults(func=_train)

    e = sub.add_parser("eval", help="score a saved SAE on a model (its hash and site checked)")
    common(e)
    e.add_argument("--sae", help="folder written by sae train (saes/<site>-<arch>)")
    e.add_argument("--site", default=None, help="site (default: the one the SAE was saved for)")
    e.add_argument("--text", default=None, help="evaluation texts (default: held-out corpus)")
    e.add_argument("--seq-len", type=int, default=64, help="tokens per window")
    e.add_argument("--windows", type=int, default=64, help="windows scored")
    e.set_defaults(func=_eval)

    q = sub.add_parser("planted", help="train architectures on a planted dictionary, score MCC")
    q.add_argument("--setting", default="small", help="easy, small or synthsae")
    q.add_argument("--archs", default="topk,batchtopk,jumprelu,l1,matryoshka")
    q.add_argument("--n-features", type=int, default=None, help="override the setting's N")
    q.add_argument("--d", type=int, default=None, help="override the setting's width")
    q.add_argument("--mean-active", type=float, default=None, help="override the setting's L0")
    q.add_argument("--k", type=int, default=None, help="L0 target (default: mean_active)")
    q.add_argument("--n-latents", type=int, default=None, help="dictionary width (default N)")
    q.add_argument("--steps", type=int, default=1000)
    q.add_argument("--batch-size", type=int, default=512)
    q.add_argument("--lr", type=float, default=None, help="learning rate (default: by width)")
    q.add_argument("--dead-tokens", type=int, default=100_000, help="AuxK dead window")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", default=None, help="write the metrics as JSON (new file)")
    q.set_defaults(func=_planted)
