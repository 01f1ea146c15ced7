"""``mindscope elicit`` end to end on a tiny random-weight model (no downloads)."""

from __future__ import annotations

import json

import pytest

from mindscope.cli import main
from mindscope.data.facts import facts
from mindscope.data.loaders import save_jsonl
from mindscope.probes import load_reporter
from mindscope.results import read_table


@pytest.fixture(scope="module")
def data_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("elicit-data")
    a = save_jsonl(facts(48, seed=0), root / "a.jsonl")
    b = save_jsonl(facts(48, seed=1), root / "b.jsonl")
    return a, b


def test_elicit_writes_results_and_reporters(tiny_dirs, data_files, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "elicit",
        "--model",
        str(tiny_dirs["gpt_neox"]),
        "--dataset",
        str(data_files[0]),
        "--methods",
        "lr,diffmean,crc",
        "--n-boot",
        "20",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    df = read_table(out / "results.parquet")
    assert {"lr", "diffmean", "crc", "random"} == set(df.method)
    assert {"auroc", "acc", "cal_acc", "ece"} <= set(df.metric)
    assert df.layer.min() == 0 and (df.model != "").all() and (df.dataset == "a").all()
    rep = load_reporter(out / "reporters" / "lr", expect_meta={"model": df.model.iloc[0]})
    assert rep.n_layers_ == df.layer.nunique()
    assert json.loads((out / "run.json").read_text())["n_test"] == 12
    assert "lr" in capsys.readouterr().out
    # refuses to overwrite
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err


def test_elicit_transfer(tiny_dirs, data_files, tmp_path):
    out = tmp_path / "transfer"
    argv = [
        "elicit",
        "transfer",
        "--model",
        str(tiny_dirs["gpt2"]),
        "--datasets",
        f"{data_files[0]},{data_files[1]}",
        "--methods",
        "diffmean",
        "--layers",
        "0,2",
        "--n-boot",
        "0",
        "--quiet",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    df = read_table(out / "results.parquet")
    cells = {(json.loads(e)["train"], json.loads(e)["eval"]) for e in df.extra}
    assert cells == {(f"{t}/train", f"{e}/test") for t in "ab" for e in "ab"}
    assert sorted(df.layer.unique()) == [0, 2]


def test_elicit_bad_input(tiny_dirs, data_files, tmp_path, capsys):
    base = ["elicit", "--model", str(tiny_dirs["gpt2"]), "--out", str(tmp_path / "x")]
    assert main([*base, "--dataset", str(data_files[0]), "--methods", "lr,nope"]) == 2
    assert "unknown" in capsys.readouterr().err
    assert main([*base, "--dataset", str(tmp_path / "missing.jsonl")]) == 2
    assert main([*base, "--dataset", str(data_files[0]), "--layers", "a,b"]) == 2
    assert main(["elicit", "--model", "m"]) == 2


def test_elicit_reads_the_prompt(tiny_dirs, data_files, tmp_path):
    """--read prompt: single-text activations [L, n, d] of the prompts (supervised reporters)."""
    out = tmp_path / "prompt"
    base = ["elicit", "--model", str(tiny_dirs["gpt_neox"]), "--dataset", str(data_files[0])]
    argv = base + ["--read", "prompt", "--methods", "lr,diffmean", "--n-boot", "20", "--quiet"]
    assert main(argv + ["--out", str(out)]) == 0
    df = read_table(out / "results.parquet")
    assert {"lr", "diffmean", "random"} == set(df.method)
    assert json.loads((out / "run.json").read_text())["read"] == "prompt"
    rep = load_reporter(out / "reporters" / "lr")
    assert rep.d_in_ == 32  # the tiny model's width: reporters fitted on [L, n, d]
    bad = base + ["--read", "prompt", "--methods", "lr,ccs", "--out", str(tmp_path / "b")]
    assert main(bad) == 2 and not (tmp_path / "b").exists()
