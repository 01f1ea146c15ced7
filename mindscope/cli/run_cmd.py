"""``mindscope demo``, ``mindscope run CONFIG`` and ``mindscope report RUN_DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``demo``, ``run`` and ``report`` sub-commands."""
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
    p.set_defaults(func=_run)

    p = subparsers.add_parser(
        "report",
        help="rebuild report.html of a run folder from its results table",
        description="Rebuild RUN_DIR/report.html from RUN_DIR/results.parquet alone.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run folder (runs/<timestamp>-<name>)")
    p.set_defaults(func=_report)


def _finish(folder: Any) -> int:
    from mindscope.report import format_summary, headline, summarize

    print(format_summary(headline(summarize(folder.read_results()))))
    print(f"\nrun folder: {folder.path}")
    print(f"report:     {folder.report_path}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from mindscope.runs.pipeline import demo_config, run_pipeline

    cfg = demo_config(
        output_dir=args.output_dir, device=args.device, seed=args.seed, quick=args.quick
    )
    return _finish(run_pipeline(cfg))


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
    from mindscope.runs.pipeline import run_pipeline

    return _finish(run_pipeline(cfg))


def _report(args: argparse.Namespace) -> int:
    from mindscope.runs.folder import RunFolder

    folder = RunFolder.open(args.run_dir)
    path = folder.write_report()
    print(path)
    return 0
