"""CLI: `mindscope extract` / `inspect` through main(argv); errors are one line, no traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mindscope.cli import main


def test_extract_prints_per_layer_summary(
    tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "p.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(o)
            for o in [
                {"prompt": "the cat is", "completions": [" false", " true"], "label": 1},
                {"prompt": "a dog is", "completions": [" false", " true"], "label": 0},
            ]
        )
    )
    rc = main(
        [
            "extract",
            "--model",
            str(tiny_dirs["gpt2"]),
            "--data",
            str(data),
            "--store",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1, 2, 3] and all(r[1] == "2x2x32" for r in rows)


def test_inspect(tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", str(tiny_dirs["opt"])]) == 0
    assert "model.decoder.final_layer_norm" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["extract", "--model", "./missing-model", "--data", "{data}"], "no such model directory"),
        (["extract", "--model", "{model}", "--data", "{tmp}/none.txt"], "no such data file"),
        (["extract", "--model", "{model}", "--data", "{empty}"], "holds no prompts"),
        (["extract", "--model", "{model}", "--data", "{data}", "--layers", "9"], "out of range"),
        (["extract", "--model", "{model}", "--data", "{data}", "--layers", "a"], "--layers"),
    ],
)
def test_extract_errors_are_one_line(
    tiny_dirs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    data = tmp_path / "p.txt"
    data.write_text("the cat\n")
    empty = tmp_path / "e.txt"
    empty.write_text("\n\n")
    subs = {"{data}": str(data), "{model}": str(tiny_dirs["gpt2"]), "{tmp}": str(tmp_path)}
    subs["{empty}"] = str(empty)
    filled = [a for a in argv]
    for i, a in enumerate(filled):
        for k, v in subs.items():
            a = a.replace(k, v)
        filled[i] = a
    assert main([*filled, "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mindscope: error:") and message in err and "\n" not in err
    assert "Traceback" not in err
