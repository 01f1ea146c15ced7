"""``mindscope demo``, ``mindscope run CONFIG``, ``mindscope report DIR`` and ``mindscope runs``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from mindscope.extras import require

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``demo``, ``run``, ``report`` and ``runs`` sub-commands."""
    p = subparsers.add_parser(
        "demo",
        help="train/load the organisms, run lens + reporter analyses, write a run folder + report",
        description="The main job in one command: trains (or loads cached) model organisms, runs "
        "the tuned-lens and eliciting-latent-knowledge analyses, writes runs/<timestamp>-demo/ "
        "and prints the report path and a summary table.",
    )
    p.add_argument("--output-dir", default="runs", help="folder receiving the run (default runs)")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda or cuda:N")
    p.add_argument("--seed", type=int, default=0, help="seed of the run (default 0)")
    p.add_argument(
        "--quick", action="store_true", help="a smaller, faster demo (fewer steps and examples)"
    )
    _run_args(p)
    p.set_defaults(func=_demo)

    p = subparsers.add_parser(
        "run",
        help="run the analyses a YAML/JSON config describes and write a run folder + report",
        description="Run the analyses described by CONFIG (see `mindscope run --template`). The "
        "config is fully checked before any model is loaded.",
    )
    p.add_argument("config", nargs="?", metavar="CONFIG", help="run config (.yaml or .json)")
    p.add_argument("--output-dir", default=None, help="override the config's output_dir")
    p.add_argument(
        "--template", action="store_true", help="print a commented config with every default"
    )
    p.add_argument(
        "--check", action="store_true", help="only validate CONFIG and print the resolved config"
    )
    _run_args(p)
    p.set_defaults(func=_run)

    p = subparsers.add_parser(
        "report",
        help="build the report of a results folder (run, elicit --out, lens eval --out)",
        description="Build DIR's HTML report from DIR/results.parquet alone. DIR is a run folder "
        "(`mindscope run`/`demo`), an `elicit --out` folder, a `lens eval --out` folder, or a "
        "results .parquet file. The report goes to DIR/report.html; if that exists, to the next "
        "free DIR/report-N.html (--force overwrites report.html instead).",
    )
    p.add_argument("run_dir", metavar="DIR", help="a results folder (or a results .parquet)")
    p.add_argument("--force", action="store_true", help="overwrite DIR/report.html")
    p.set_defaults(func=_report)

    p = subparsers.add_parser(
        "runs",
        help="list the results folders under a folder, with their headline numbers",
        description="List every results folder directly under ROOT (default runs/): kind (run, "
        "elicit, lens-eval), status, model/dataset and the headline numbers (best test AUROC, "
        "Bob-hard AUROC, gap recovered, tuned-lens KL). Query many at once with DuckDB over "
        "ROOT/*/results.parquet (see docs/report.md).",
    )
    p.add_argument("root", nargs="?", default="runs", metavar="ROOT", help="default runs")
    p.set_defaults(func=_runs)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for the analyses (default: torch's current setting)",
    )


def _threads(args: argparse.Namespace) -> int | None:
    from mindscope.cli._args import threads

    return threads(args.threads)


def _finish(folder: Any) -> int:
    from mindscope.report import format_summary, headline, summarize

    print(format_summary(headline(summarize(folder.read_results()))))
    print(f"\nrun folder: {folder.path}")
    print(f"report:     {folder.report_path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    require("report", what="mindscope demo")
    from mindscope.runs.pipeline import demo_config, run_pipeline

    cfg = demo_config(
        output_dir=args.output_dir, device=args.device, seed=args.seed, quick=args.quick
    )
    return _finish(run_pipeline(cfg, progress=not args.quiet, threads=_threads(args)))


def _run(args: argparse.Namespace) -> int:
    from mindscope.errors import ConfigError
    from mindscope.runs.config import config_template, load_config, to_dict, validate

    if args.template:
        print(config_template(), end="")
        return 0
    if not args.config:
        raise ConfigError("give a CONFIG file (see `mindscope run --template`)")
    cfg = load_config(args.config)
    if args.output_dir is not None:
        cfg.output_dir = args.output_dir
        cfg = validate(cfg, Path.cwd(), Path(args.config).name)
    if args.check:
        import yaml

        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0
    require("report", what="mindscope run")
    from mindscope.runs.pipeline import run_pipeline

    return _finish(run_pipeline(cfg, progress=not args.quiet, threads=_threads(args)))


def _report(args: argparse.Namespace) -> int:
    require("report", what="mindscope report")
    from mindscope.report import write_report
    from mindscope.runs.outputs import open_output, report_target

    out = open_output(args.run_dir)
    if out.results.empty:
        from mindscope.errors import MindscopeError

        raise MindscopeError(f"{out.path}: the results table is empty; nothing to report")
    target = report_target(out.path, force=args.force)
    name = out.meta.get("run", out.path.name)
    meta = {k: v for k, v in out.meta.items() if v != ""}
    path = write_report(out.results, target, title=f"mindscope · {name}", meta=meta)
    print(path)
    return 0


def _runs(args: argparse.Namespace) -> int:
    from mindscope.runs.outputs import headline_numbers, list_outputs

    found = list_outputs(args.root)
    if not found:
        print(f"no results folders under {args.root}")
        return 0
    for o in found:
        df = o.results
        models = sorted(set(map(str, df.model.dropna()))) if "model" in df else []
        data = sorted(set(map(str, df.dataset.dropna()))) if "dataset" in df else []
        print(f"{o.path}  [{o.kind}, {o.status}]")
        if models or data:
            print(f"    model {', '.join(models) or '?'}; data {', '.join(d for d in data if d)}")
        for key, val in headline_numbers(df).items():
            print(f"    {key}: {val}")
    return 0
