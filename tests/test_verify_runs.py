"""`mindscope verify RUN_DIR`: a run re-executes to the same table; edits are detected."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import mindscope as ms
from mindscope.cli import main
from mindscope.errors import MindscopeError
from mindscope.results import read_table, write_table
from mindscope.runs.manifest import file_sha256

WORDS = "the a cat dog sat on mat is true false yes no alice bob one two three red blue".split()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mindscope.testing import tiny_run_setup

    root = tiny_run_setup(
        tmp_path_factory.mktemp("vrun"),
        WORDS,
        n_docs=40,
        doc_words=30,
        tokens_per_step=128,
        max_texts=20,
        n=48,
        methods=["lr"],
    )
    assert main(["run", str(root / "run.yaml")]) == 0
    (folder,) = (root / "runs").iterdir()
    return folder


def _forge(src: Path, dst: Path) -> Path:
    """Copy of the run with one result value changed and the manifest's hash updated."""
    shutil.copytree(src, dst)
    df = read_table(dst / "results.parquet")
    row = df.index[(df["metric"] == "auroc") & (df["method"] == "lr")][0]
    df.loc[row, "value"] = min(1.0, float(df.loc[row, "value"]) + 0.05)
    write_table(df, dst / "results.parquet")
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["files"]["results.parquet"] = file_sha256(dst / "results.parquet")
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def test_run_reexecutes_to_the_same_table(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()}
    r = ms.verify.run(run_dir)
    assert r.accepted, r.summary()
    assert r.rows_compared > 10 and r.differing is not None and r.differing.empty
    assert r.checks["inputs"].startswith("ok (1 models")
    assert {p: p.read_bytes() for p in run_dir.rglob("*") if p.is_file()} == before
    assert main(["verify", str(run_dir), "--stage", "reporters"]) == 0
    assert "ACCEPT: re-executed stage elicit" in capsys.readouterr().out


def test_edited_results_are_detected(run_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(run_dir, tmp_path / "plain")
    df = read_table(tmp_path / "plain" / "results.parquet")
    df.loc[0, "value"] = 0.123
    write_table(df, tmp_path / "plain" / "results.parquet")
    r = ms.verify.run(tmp_path / "plain", rerun=False)
    assert not r.accepted and "results.parquet does not match its hash" in r.reason
    forged = _forge(run_dir, tmp_path / "forged")
    r = ms.verify.run(forged, stage="reporters")
    assert not r.accepted and "1 of" in r.reason and "result rows differ" in r.reason
    assert r.differing is not None and len(r.differing) == 1
    assert set(r.differing["method"]) == {"lr"} and "differing rows" in r.summary()


def test_bad_run_folders_are_one_line_errors(run_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(MindscopeError, match="no manifest.json"):
        ms.verify.run(tmp_path / "empty")
    assert main(["verify", str(tmp_path / "empty")]) == 2
    with pytest.raises(MindscopeError, match="unknown stage"):
        ms.verify.run(run_dir, stage="nope")
    shutil.copytree(run_dir, tmp_path / "gone")
    (tmp_path / "gone" / "config.yaml").unlink()
    r = ms.verify.run(tmp_path / "gone")
    assert not r.accepted and "config.yaml, listed in the manifest, is missing" in r.reason
