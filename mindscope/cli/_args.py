"""Argument helpers shared by the sub-commands: defined once, each bad value a one-line error.

Sub-command modules import from here and never from each other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mindscope.errors import MindscopeError

__all__ = [
    "add_backend_arg",
    "add_model_args",
    "choices_list",
    "fields_of",
    "out_dir",
    "parse_layers",
    "parse_seeds",
    "positive_int",
    "run_audit_stage",
    "run_stage_to_folder",
    "threads",
]


def out_dir(path: str) -> Path:
    """The output folder: refused if it exists and is not an empty folder."""
    out = Path(path)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise MindscopeError(f"output {out} already exists; refusing to overwrite it")
    return out


def add_model_args(p: argparse.ArgumentParser) -> None:
    """``--model --revision --device --out --seed --quiet`` (the audit commands share them)."""
    p.add_argument("--model", required=True, help="HF id, local dir or organism:NAME")
    p.add_argument("--revision", default=None, help="model revision (e.g. step1000)")
    p.add_argument("--device", default=None, help="torch device (default: cpu)")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--seed", type=int, default=0, help="seed of datasets and bootstraps")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_backend_arg(p: argparse.ArgumentParser, what: str = "seeds") -> None:
    """``--backend {inprocess,ray}``: where the independent ``what`` run."""
    from mindscope.parallel import BACKENDS

    p.add_argument(
        "--backend",
        choices=BACKENDS,
        default="inprocess",
        help=f"run the {what} one after the other here (inprocess, default) or in parallel on a "
        "local Ray instance (ray; pip install 'mindscope[ray]')",
    )


def parse_layers(spec: str, flag: str = "--layers") -> str | list[int]:
    """``blocks``, ``all`` or comma-separated non-negative layer indices."""
    if spec in ("blocks", "all"):
        return spec
    try:
        layers = [int(x) for x in spec.split(",") if x.strip()]
    except ValueError:
        raise MindscopeError(
            f"{flag} must be 'blocks', 'all' or comma-separated ints, got {spec!r}"
        ) from None
    if not layers or min(layers) < 0:
        raise MindscopeError(f"{flag} must be non-negative ints, got {spec!r}")
    return layers


def choices_list(spec: str, known: Sequence[str], flag: str) -> list[str]:
    """A comma list (``--methods``, ``--tasks``, ...) whose items must all be in ``known``."""
    items = [s.strip() for s in spec.split(",") if s.strip()]
    bad = [s for s in items if s not in known]
    if bad or not items:
        raise MindscopeError(f"{flag}: unknown {bad or spec!r}; choose from {', '.join(known)}")
    return items


def parse_seeds(spec: str, flag: str = "--seeds") -> list[int]:
    """Seeds as ``0,1,2`` or an inclusive range ``0-4``: distinct non-negative ints."""
    try:
        if "-" in spec.strip("-") and "," not in spec:
            a, b = (int(s) for s in spec.split("-", 1))
            seeds = list(range(a, b + 1))
        else:
            seeds = [int(s) for s in spec.split(",") if s.strip()]
    except ValueError:
        raise MindscopeError(
            f"{flag} must be ints like 0,1,2 or a range 0-4, got {spec!r}"
        ) from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise MindscopeError(f"{flag} must be distinct non-negative ints, got {spec!r}")
    return seeds


def positive_int(value: int | None, flag: str) -> int | None:
    """``value`` when it is ``None`` or at least 1; a one-line error naming ``flag`` otherwise."""
    if value is not None and value < 1:
        raise MindscopeError(f"{flag} must be at least 1, got {value}")
    return value


def threads(value: int | None, flag: str = "--threads") -> int | None:
    """A ``--threads`` value (``None``: the default of the command)."""
    return positive_int(value, flag)


def fields_of(args: argparse.Namespace) -> Any:
    """The :class:`mindscope.data.fields.Fields` named by ``--label-field`` and friends."""
    from mindscope.data.fields import Fields

    return Fields(
        label=args.label_field, text=args.text_field, group=args.group_field, split=args.split_field
    )


def run_stage_to_folder(
    stage: str,
    cfg: dict[str, Any],
    *,
    model: str,
    revision: str | None = None,
    device: str | None = None,
    seed: int = 0,
    out: str | None = None,
    progress: bool = True,
    store: str | None = None,
    config_file: str | None = None,
) -> tuple[Any, Any]:
    """The CLI's one path into an analysis: check ``cfg`` as stage ``stage``'s config (one-line
    errors naming the option, before any model is loaded), refuse an existing ``out``, load the
    model, :func:`mindscope.analyses.run_stage`, stamp the rows with the model's provenance and
    write ``out/results.parquet``. Returns ``(rows, StageOutput)``.

    ``store`` is the activation store root given to the stage; ``config_file`` the file ``cfg``
    was read from (its errors then name it, and its relative paths start from its folder)."""
    import sys

    from mindscope.analyses import CheckContext, get_stage, run_stage
    from mindscope.schema import parse

    st = get_stage(stage)
    config = parse(st.config, {k: v for k, v in cfg.items() if v is not None}, config_file or "")
    ctx = CheckContext(
        base=Path(config_file).parent if config_file else Path.cwd(),
        seed=seed,
        model=model,
        prefix=f"{config_file}: " if config_file else "",
    )
    try:
        config = config.check(ctx, stage)
    except MindscopeError as exc:  # "anomaly.n_eval: ..." -> "--n-eval: ..."
        head, sep, tail = str(exc).partition(":")
        if sep and head.startswith(f"{stage}."):
            flag = head.removeprefix(f"{stage}.").split("[")[0].split(".")[0].replace("_", "-")
            raise MindscopeError(f"--{flag}:{tail}") from None
        raise
    folder = out_dir(out) if out is not None else None
    from mindscope.models import load_model
    from mindscope.results import stamp, write_table

    h = load_model(model, revision=revision, device=device)
    res = run_stage(stage, h, config, seed=seed, progress=progress, store=store)
    rows = stamp(res.rows, h)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        for name, write in res.artefacts.items():
            write(folder / name)
        path = write_table(rows, folder / "results.parquet")
        print(f"wrote {len(rows)} rows to {path}", file=sys.stderr)
    return rows, res


def run_audit_stage(stage: str, args: argparse.Namespace, cfg: dict[str, Any]) -> tuple[Any, Any]:
    """:func:`run_stage_to_folder` with the options :func:`add_model_args` adds."""
    return run_stage_to_folder(
        stage,
        cfg,
        model=args.model,
        revision=getattr(args, "revision", None),
        device=getattr(args, "device", None),
        seed=getattr(args, "seed", 0),
        out=getattr(args, "out", None),
        progress=not getattr(args, "quiet", False),
    )
