"""``mindscope lens``: train, evaluate and show logit/tuned lenses.

    mindscope lens train --model M --data FILE --out DIR [--num-steps N ...]
    mindscope lens eval  --model M --lens DIR --data FILE [--out OUT_DIR | --out FILE.parquet]
    mindscope lens show  --model M [--lens DIR] --prompt TEXT [--html FILE]

``--data`` is plain text (documents separated by blank lines) or JSONL with a ``"text"`` field.
Training options are generated from :class:`mindscope.lenses.TrainConfig`. By default training
stops by itself when the KL on held-out training text stops improving (the steps used and the KL
reached are printed); ``--num-steps N`` (and ``--tokens-per-step``) set a fixed budget instead.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError
from mindscope.extras import require

__all__ = ["register", "ci_table"]

_SKIP = {"progress", "checkpoint_dir"}


def _config_from_args(args: argparse.Namespace) -> Any:
    from mindscope.cli._stage import config_from_args
    from mindscope.lenses import TrainConfig

    return config_from_args(args, TrainConfig, progress=not args.quiet)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="hub id, local directory or organism:NAME")
    p.add_argument("--revision", default=None, help="model revision / checkpoint")
    p.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if available)")
    p.add_argument("--dtype", default=None, help="float32, bfloat16, ... (default: as saved)")


def _load(args: argparse.Namespace) -> Any:
    from mindscope.models import load_model

    return load_model(args.model, revision=args.revision, device=args.device, dtype=args.dtype)


def _check_out(path: Path, force: bool, *, is_dir: bool) -> None:
    if not path.exists() or force:
        return
    if is_dir and path.is_dir() and not any(path.iterdir()):
        return
    raise MindscopeError(f"{path} already exists; pass --force to overwrite it")


def _train(args: argparse.Namespace) -> int:
    from mindscope.lenses import TunedLens, read_texts

    out = Path(args.out)
    _check_out(out, args.force, is_dir=True)
    texts = read_texts(args.data)
    # the training state is kept next to --out until the lens is saved: a killed run resumes
    partial = out.parent / f".{out.name}.partial"
    cfg = _config_from_args(args).replace(checkpoint_dir=str(partial))
    h = _load(args)
    lens = TunedLens.fit(h, texts, cfg)
    lens.info["data"] = str(args.data)
    lens.save(out, force=args.force)
    shutil.rmtree(partial, ignore_errors=True)
    if lens.info.get("resumed_from"):
        print(f"resumed from step {lens.info['resumed_from']} (checkpoint in {partial})")
    final = lens.info.get("final_step_kl", [])
    print(f"saved tuned lens for {h.name} ({h.n_layers} layers) to {out}")
    if "heldout_kl" in lens.info:
        why = (
            "held-out KL stopped improving"
            if lens.info["stopped_early"]
            else f"max_steps {cfg.max_steps} reached"
        )
        print(
            f"early stopping: kept step {lens.info['steps_used']} of {lens.info['steps_run']} "
            f"({why}); held-out KL {lens.info['heldout_kl']:.4f} nats, mean over layers "
            f"(logit lens {lens.info['heldout_kl_initial']:.4f})"
        )
    elif final:
        print("final-step KL per layer (nats): " + " ".join(f"{x:.4f}" for x in final))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import pandas as pd

    from mindscope.lenses import TunedLens, evaluate, read_texts
    from mindscope.results import write_table

    out = Path(args.out) if args.out else None
    as_folder = out is not None and out.suffix != ".parquet"
    if out is not None:
        _check_out(out, args.force, is_dir=as_folder)
    texts = read_texts(args.data)
    h = _load(args)
    lens = TunedLens.load(args.lens, h) if args.lens else None
    df = evaluate(
        h,
        lens,
        texts,
        batch_size=args.batch_size,
        seq_len=args.seq_len,
        n_boot=args.n_boot,
        dataset=args.dataset or Path(args.data).name,
        split=args.split,
        progress=not args.quiet,
    )
    if out is not None and as_folder:
        import json

        out.mkdir(parents=True, exist_ok=True)
        write_table(df, out / "results.parquet")
        info = {
            "command": "lens eval",
            "model": h.name,
            "revision": h.revision,
            "lens": str(args.lens or ""),
            "dataset": args.dataset or Path(args.data).name,
            "split": args.split,
        }
        (out / "run.json").write_text(json.dumps(info, indent=2))
        print(f"wrote {len(df)} rows to {out / 'results.parquet'} (mindscope report {out})")
    elif out is not None:
        write_table(df, out)
        print(f"wrote {len(df)} rows to {out}")
    print(f"per-layer metrics in nats ({int(df['n'].iloc[0])} documents), value [95% CI]:")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(ci_table(df).to_string())
    return 0


def ci_table(df: Any) -> Any:
    """``layer x (metric, method)`` table of ``"value [ci_low, ci_high]"`` strings."""
    import math

    def cell(r: Any) -> str:
        if math.isnan(r.ci_low) or math.isnan(r.ci_high):
            return f"{r.value:.4f}"
        return f"{r.value:.4f} [{r.ci_low:.4f}, {r.ci_high:.4f}]"

    body = df[df.layer >= 0].assign(cell=[cell(r) for r in df[df.layer >= 0].itertuples()])
    return body.pivot_table(
        index="layer", columns=["metric", "method"], values="cell", aggfunc="first"
    )


def _show(args: argparse.Namespace) -> int:
    if args.html:
        require("report", what="--html")
    import pandas as pd

    from mindscope.lenses import TunedLens, trajectory

    h = _load(args)
    lens = TunedLens.load(args.lens, h) if args.lens else None
    tr = trajectory(h, lens, args.prompt)
    with pd.option_context("display.width", 200, "display.max_columns", 50):
        print(f"{tr.method} trajectory (top next token and its probability; top row = output)")
        print(tr.table().to_string())
    if args.html:
        html = Path(args.html)
        _check_out(html, args.force, is_dir=False)
        tr.figure().write_html(str(html), include_plotlyjs=True)
        print(f"wrote heatmap to {html}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``lens`` with ``train``, ``eval`` and ``show`` to the top-level sub-parsers."""
    from mindscope.cli._stage import add_config_args
    from mindscope.lenses.train import TrainConfig

    lens = subparsers.add_parser(
        "lens", help="logit lens and tuned lens (interpreting across depth)"
    )
    lens.set_defaults(func=lambda a: (lens.print_help(), 0)[1])
    sub = lens.add_subparsers(dest="lens_command", metavar="ACTION")

    p = sub.add_parser("train", help="train a tuned lens and save it to a directory")
    _model_args(p)
    p.add_argument("--data", required=True, help="text file (blank-line separated) or JSONL")
    p.add_argument("--out", required=True, help="directory to write config.json + safetensors")
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_args(p, TrainConfig, skip=_SKIP, title="training options")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="per-layer KL/CE/entropy of logit and tuned lens")
    _model_args(p)
    p.add_argument("--lens", default=None, help="tuned lens directory (omit: logit lens only)")
    p.add_argument("--data", required=True, help="text file (blank-line separated) or JSONL")
    p.add_argument(
        "--out",
        default=None,
        help="output folder (results.parquet + run.json; `mindscope report` reads it), or a "
        "FILE.parquet for the bare table",
    )
    p.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--seq-len", type=int, default=None, help="window length in tokens")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    p.add_argument("--dataset", default=None, help="dataset name in the table (default: file)")
    p.add_argument("--split", default="", help="split name in the table")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_eval)

    p = sub.add_parser("show", help="prediction trajectory of one prompt across layers")
    _model_args(p)
    p.add_argument("--lens", default=None, help="tuned lens directory (omit: logit lens)")
    p.add_argument("--prompt", required=True, help="the text to decode")
    p.add_argument("--html", default=None, help="also write a plotly heatmap to this HTML file")
    p.add_argument("--force", action="store_true", help="overwrite --html if it exists")
    p.set_defaults(func=_show)


if __name__ == "__main__":  # pragma: no cover
    from mindscope.cli import main

    sys.exit(main(["lens", *sys.argv[1:]]))
