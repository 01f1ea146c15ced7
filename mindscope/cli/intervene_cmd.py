"""``mindscope steer``, ``mindscope erase``, ``mindscope patch``: the intervention stages on one
model, written to a folder.

    mindscope steer --model organism:quirky-arith --out steer-run --layers 3,4
    mindscope erase --model organism:quirky-arith --out erase-run --concept persona
    mindscope patch --model organism:quirky-arith --out patch-run --n 32
    mindscope patch --model MODEL --dataset pairs.jsonl --out patch-run   # meta.corrupted

Each writes ``results.parquet`` (the results table; ``mindscope report DIR`` reads it),
``run.json`` and the stage's artefacts (``steer``: the chosen ``steering_vector/`` and
``dose.json``), and prints a short summary. The options are the stage's config fields
(:mod:`mindscope.analyses.steer`, ``erase``, ``patch``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register"]

_HELP = {
    "steer": "steering vectors: dose-response per layer against a known truth, chosen dose",
    "erase": "LEACE concept erasure: probe AUROC after erasure, distortion, answers",
    "patch": "activation and attribution patching over layers x positions",
}


def _run(args: argparse.Namespace) -> int:
    import mindscope as ms
    from mindscope.analyses import CheckContext, get_stage, run_stage
    from mindscope.cli._stage import config_from_args
    from mindscope.results import stamp, write_table

    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MindscopeError(f"output {out} already exists; refusing to overwrite it")
    stage = get_stage(args.command)
    cfg = config_from_args(args, stage.config)
    ctx = CheckContext(base=Path.cwd(), seed=args.seed, model=args.model, check_data=False)
    cfg = cfg.check(ctx, args.command)
    h = ms.load_model(args.model, revision=args.revision, device=args.device)
    res = run_stage(stage, h, cfg, seed=args.seed)
    out.mkdir(parents=True, exist_ok=True)
    for name, write in res.artefacts.items():
        write(out / name)
    df = stamp(res.rows, h)
    write_table(df, out / "results.parquet")
    run = {
        "command": args.command,
        "model": h.name,
        "config": cfg.model_dump(mode="json"),
        "seed": args.seed,
        **res.info,
    }
    (out / "run.json").write_text(json.dumps(run, indent=2, default=str))
    _summary(args.command, df, res.info)
    print(f"wrote {out}")
    return 0


def _summary(command: str, df: Any, info: dict[str, Any]) -> None:
    if command == "steer":
        best = info.get("chosen")
        if best is None:
            print("no layer and multiplier stay within the KL budget")
        else:
            print(
                f"chosen: layer {best['layer']}, multiplier {best['multiplier']:g}: flip "
                f"{best['flip_rate']:.3f}, damage {best['damage_rate']:.3f}, KL "
                f"{best['kl_neutral']:.3f} nats/token"
            )
    elif command == "erase":
        sel = df[df.metric.isin(["linear_auroc_before", "linear_auroc_after", "mlp_auroc_after"])]
        for (layer, metric), g in sel.groupby(["layer", "metric"]):
            r = g.iloc[0]
            print(f"layer {layer} {metric}: {r.value:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
    else:
        sel = df[df.metric.isin(["atp_mae", "atp_corr"])]
        for _, r in sel.iterrows():
            print(f"{r.metric} {r.extra}: {r.value:.3f}")


def register(subparsers: Any) -> None:
    """Add ``steer``, ``erase`` and ``patch`` to the top-level sub-parsers."""
    from mindscope.analyses import get_stage
    from mindscope.cli._stage import add_config_args

    for name, text in _HELP.items():
        p = subparsers.add_parser(name, help=text, description=text)
        p.add_argument("--model", required=True, help="hub id, local folder or organism:NAME")
        p.add_argument("--revision", default=None, help="model revision")
        p.add_argument("--device", default=None, help="cpu, cuda, ...")
        p.add_argument("--out", required=True, help="output folder (must not exist)")
        p.add_argument("--seed", type=int, default=0, help="seed of every random choice")
        add_config_args(p, get_stage(name).config)
        p.set_defaults(func=_run, command=name)
