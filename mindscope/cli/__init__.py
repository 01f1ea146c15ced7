"""The ``mindscope`` command line.

Each sub-command lives in its own module under ``mindscope.cli`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` (a callable taking the parsed
``argparse.Namespace`` and returning an exit code). A group (``audit``) returns its own
sub-parsers, which its sub-commands (:data:`_GROUPS`) are registered into. Sub-command modules
never import each other: shared argument helpers live in ``mindscope.cli._args``, the science in
the library. Tests call :func:`main` with an argv list.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from mindscope.errors import MindscopeError

__all__ = ["main", "build_parser"]

# Sub-command modules, in the order `--help` lists them. A module that fails to import is a bug.
_COMMANDS = (
    "extract_cmd",
    "data_cmd",
    "organism_cmd",
    "lens_cmd",
    "elicit_cmd",
    "w2s_cmd",
    "intervene_cmd",
    "run_cmd",
    "sweep_cmd",
    "audit_cmd",
    "sandbox_cmd",
    "verify_cmd",
    "bayes_cmd",
    "sae_cmd",
)
# Sub-commands of a group: (module, its register function), in the order `--help` lists them.
_GROUPS = {
    "audit_cmd": (
        ("audit_disagree", "register"),
        ("audit_anomaly", "register"),
        ("audit_rare_cmd", "register_rare"),
        ("audit_rare_cmd", "register_triggers"),
    ),
}


def _module(name: str) -> Any:
    """``mindscope.cli.<name>``, or ``None`` when that module is not built yet."""
    try:
        return importlib.import_module(f"mindscope.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"mindscope.cli.{name}":
            return None
        raise


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``PROG: error: ...; see PROG --help``) and
    exit code 2, like every other bad input; its sub-parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        msg = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {msg} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered sub-command."""
    parser = _Parser(
        prog="mindscope",
        description="Read what a language model knows inside, and hunt for its worst cases.",
    )
    from mindscope._version import __version__

    parser.add_argument("--version", action="version", version=f"mindscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = _module(name)
        if module is None:
            continue  # command not built yet
        group = module.register(sub)
        for sub_name, register in _GROUPS.get(name, ()):
            sub_module = _module(sub_name)
            if sub_module is not None:
                getattr(sub_module, register)(group)
    _add_threads(parser)
    return parser


# leaf commands that compute nothing worth threads (listing, reading, checking a file)
_NO_THREADS = ("list", "runs", "report", "check", "inspect", "collect", "ship")


def _add_threads(parser: argparse.ArgumentParser) -> None:
    """Give every long leaf command a ``--threads`` option (if it has none of its own)."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for action in subs:
        for sub in dict.fromkeys(action.choices.values()):
            _add_threads(sub)
    leaf_name = parser.prog.split()[-1]
    own_options = {a.dest for a in parser._actions} - {"help", "version", "command"}
    is_command = not subs or len(own_options) > len(subs)  # e.g. `elicit` (and `elicit transfer`)
    if not is_command or leaf_name in _NO_THREADS or parser.prog == "mindscope":
        return
    if "--threads" not in parser._option_string_actions:
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="torch threads (default: the free cores, see mindscope.threads)",
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    from mindscope import threads

    try:  # before torch is imported (building the parser imports it)
        threads.prepare()  # passive OpenMP waits, a thread count from the free cores
    except MindscopeError as exc:  # e.g. a malformed MINDSCOPE_THREADS
        print(f"mindscope: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        if getattr(args, "threads", None) is not None:
            threads.resolve(args.threads)  # a bad --threads is refused before any work
            threads.apply(args.threads)
        return int(args.func(args) or 0)
    except (MindscopeError, FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"mindscope: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mindscope: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
