"""``mindscope lens train|eval|show`` through ``main(argv)``."""

from __future__ import annotations

import json

import pytest

from mindscope.cli import main
from mindscope.results import read_table

DOCS = [
    "the cat sat on the mat . the dog sat on the mat .",
    "alice and bob . one plus two equals three .",
    "paris is the capital of france . london is red and blue .",
]


@pytest.fixture()
def data(tmp_path):
    p = tmp_path / "docs.jsonl"
    p.write_text("".join(json.dumps({"text": t}) + "\n" for t in DOCS * 8))
    return p


def test_train_eval_show(tiny_dirs, data, tmp_path, capsys):
    model = str(tiny_dirs["gpt_neox"])
    lens = tmp_path / "lens"
    train = ["lens", "train", "--model", model, "--data", str(data), "--out", str(lens)]
    opts = ["--num-steps", "5", "--tokens-per-step", "64", "--seq-len", "16", "--quiet"]
    assert main([*train, *opts]) == 0
    assert (lens / "config.json").is_file() and (lens / "params.safetensors").is_file()
    assert main([*train, *opts]) == 2  # refuses to overwrite
    assert "--force" in capsys.readouterr().err
    assert main([*train, *opts, "--force"]) == 0

    out = tmp_path / "res.parquet"
    ev = ["lens", "eval", "--model", model, "--lens", str(lens), "--data", str(data)]
    assert main([*ev, "--out", str(out), "--n-boot", "50", "--quiet"]) == 0
    df = read_table(out)
    assert set(df.method) == {"logit_lens", "tuned_lens"}
    assert main([*ev, "--out", str(out), "--quiet"]) == 2
    printed = capsys.readouterr().out
    assert "nats" in printed
    # an output folder (not .parquet): results + run.json, read by `mindscope report`; CIs printed
    folder = tmp_path / "lens-eval"
    assert main([*ev, "--out", str(folder), "--n-boot", "50", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "value [95% CI]" in printed and "[" in printed.splitlines()[-1]
    assert main(["report", str(folder)]) == 0
    assert (folder / "report.html").is_file()
    capsys.readouterr()
    assert main(["runs", str(tmp_path)]) == 0
    assert "[lens-eval, complete]" in capsys.readouterr().out

    html = tmp_path / "traj.html"
    show = ["lens", "show", "--model", model, "--lens", str(lens), "--prompt", "the cat sat"]
    assert main([*show, "--html", str(html)]) == 0
    assert "tuned_lens trajectory" in capsys.readouterr().out
    assert html.stat().st_size > 1000


def test_cli_errors_are_one_line(tiny_dirs, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    argv = ["lens", "train", "--model", str(tiny_dirs["gpt_neox"]), "--data", str(empty)]
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    assert "empty" in capsys.readouterr().err
    bert = ["lens", "show", "--model", str(tiny_dirs["bert"]), "--prompt", "the cat"]
    assert main(bert) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # (transformers may log above)
    assert last.startswith("mindscope: error:") and "not a causal language model" in last
