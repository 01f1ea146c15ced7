"""``mindscope w2s``: weak-to-strong generalization scored against the truth.

    mindscope w2s [CONFIG.yaml] --model M --out DIR [--supervisor SPEC ...] [options]

``CONFIG`` is a YAML/JSON mapping of the ``w2s`` stage's keys (``mindscope run --template``
lists them; ``model`` is the strong model); options given on the command line override it.
``--supervisor`` (repeatable) replaces the config's supervisors: ``random:0.75``,
``slice:0.8:meta.difficulty=hard``, ``spurious:0.75:meta.persona=bob``, ``field:label``,
``weak-model:PATH_OR_NAME``, ``truth``. Every supervisor labels the training split; students
(``--methods``: ce, logconf, reporter, relabel, filter) learn from those labels and are scored
with the weak supervisor and the ceiling (the same student on the truth) on the test split.
``DIR`` must not exist (or be empty); it receives ``results.parquet``, the per-example
``w2s-predictions.parquet``, ``w2s-summary.json`` and ``run.json``; the summary table
(PGR with its 95% interval per supervisor x method, or the reason it is refused) is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = ["register", "parse_supervisor"]


def parse_supervisor(text: str) -> dict[str, Any]:
    """``kind[:accuracy_or_model[:where]]`` -> a supervisor spec mapping."""
    kind, _, rest = text.strip().partition(":")
    if kind in ("random", "slice", "spurious"):
        acc, _, where = rest.partition(":")
        try:
            spec: dict[str, Any] = {"kind": kind, "accuracy": float(acc) if acc else 0.75}
        except ValueError:
            raise MindscopeError(f"--supervisor {text!r}: accuracy must be a number") from None
        if where:
            spec["where"] = where
        return spec
    if kind == "field":
        return {"kind": "field", "field": rest or "label", "name": f"field-{rest or 'label'}"}
    if kind == "weak-model":
        if not rest:
            raise MindscopeError(f"--supervisor {text!r}: give the weak model, weak-model:PATH")
        return {"kind": "weak-model", "model": rest}
    if kind == "truth" and not rest:
        return {"kind": "truth"}
    raise MindscopeError(
        f"--supervisor {text!r}: expected random|slice|spurious:ACC[:WHERE], field[:KEY], "
        "weak-model:MODEL or truth"
    )


def _read_config(path: str) -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise MindscopeError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise MindscopeError(
            f"{p}: not valid YAML/JSON ({' '.join(str(exc).split())[:120]})"
        ) from None
    if not isinstance(data, dict):
        raise MindscopeError(f"{p}: a w2s config must be a mapping")
    return data


def _run(args: argparse.Namespace) -> int:
    from mindscope.analyses import W2SConfig
    from mindscope.cli._args import run_stage_to_folder
    from mindscope.cli._stage import config_from_args
    from mindscope.schema import parse

    base: dict[str, Any] = _read_config(args.config) if args.config else {}
    model = args.model or base.get("model")
    if not model or not args.out:
        raise MindscopeError("w2s needs a strong model (--model or the config's model) and --out")
    given = config_from_args(args, W2SConfig).model_dump(exclude_unset=True)
    data = {k: v for k, v in {**base, **given}.items() if k != "model"}
    if args.supervisor:
        data["supervisors"] = [parse_supervisor(s) for s in args.supervisor]
    df, res = run_stage_to_folder(
        "w2s",
        data,
        model=model,
        revision=args.revision,
        device=args.device,
        seed=args.seed,
        out=args.out,
        progress=not args.quiet,
        store=args.store,
        config_file=args.config,
    )
    out = Path(args.out)
    (out / "run.json").write_text(
        json.dumps(
            {
                "command": "w2s",
                "model": model,
                "revision": args.revision,
                "config": parse(
                    W2SConfig, {k: v for k, v in data.items() if v is not None}
                ).model_dump(mode="json"),
                **res.info,
                "data": res.data,
                "seed": args.seed,
            },
            indent=2,
            default=str,
        )
    )
    _summary(df)
    print(f"results: {out / 'results.parquet'}")
    return 0


def _summary(df: Any) -> None:
    """PGR (AUROC) with its interval per supervisor x method, and the slices."""
    from mindscope.results import extra_values

    d = df.assign(
        sup=extra_values(df, "supervisor", ""),
        seed=extra_values(df, "seed", ""),
        refused=extra_values(df, "refused", ""),
    )
    d = d[(d.seed == "all") & (d.split == "test")]
    print(
        f"{'supervisor':<22}{'method':<10}{'weak':>7}{'student':>9}{'ceiling':>9}"
        f"{'PGR (AUROC) [95% CI]':>26}{'acc@weak-wrong':>16}"
    )
    for (sup, method), g in d.groupby(["sup", "method"], sort=False):
        v = {r.metric: r for r in g.itertuples()}
        p = v["pgr_auroc"]
        pgr = (
            f"{p.value:.2f} [{p.ci_low:.2f}, {p.ci_high:.2f}]"
            if p.refused == "" or p.refused is None
            else "refused"
        )
        print(
            f"{sup:<22}{method:<10}{v['auroc_weak'].value:>7.3f}{v['auroc_student'].value:>9.3f}"
            f"{v['auroc_ceiling'].value:>9.3f}{pgr:>26}{v['acc_weak_wrong'].value:>16.3f}"
        )
    for r in d[(d.metric == "pgr_auroc")].itertuples():
        if r.refused:
            print(f"  {r.sup}/{r.method}: PGR refused: {r.refused}")


def register(subparsers: Any) -> None:
    """Add ``w2s`` to the top-level sub-command parsers."""
    from mindscope.analyses import W2SConfig
    from mindscope.cli._stage import add_config_args

    p = subparsers.add_parser(
        "w2s",
        help="weak-to-strong generalization: students on weak labels, PGR against the truth",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", help="YAML/JSON config of the w2s stage (optional)")
    p.add_argument("--model", help="the strong model (hub id, folder, organism:NAME)")
    p.add_argument("--out", help="output folder (must not exist)")
    p.add_argument("--supervisor", action="append", help="a supervisor spec (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="first seed (default 0)")
    p.add_argument("--revision", default=None, help="revision of the strong model (e.g. step1000)")
    p.add_argument("--device", default=None, help="torch device of the models")
    p.add_argument("--store", default=None, help="activation store root")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_args(p, W2SConfig, skip=("supervisors",))
    p.set_defaults(func=_run)
