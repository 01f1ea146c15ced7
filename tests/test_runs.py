"""Run folders: unique, atomic, refuse to be read when incomplete, tampered or too new."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import mindscope
from mindscope.cli import main
from mindscope.errors import MindscopeError
from mindscope.results import read_table
from mindscope.runs import RunFolder, RunFolderError
from mindscope.runs.manifest import version_tuple
from mindscope.testing import example_table

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _complete_run(root: Path, name: str = "t") -> RunFolder:
    folder = RunFolder.create(root, name, seed=7, now=NOW)
    folder.write_config({"name": name, "seed": 7})
    df = example_table(n_layers=2, steps=(), audits=False)
    folder.write_results(df)
    folder.manifest.models = [{"name": "organism:x", "revision": None, "weights_hash": "ab"}]
    folder.write_report(df)
    folder.finish()
    return folder


def test_create_makes_a_new_folder_each_time(tmp_path: Path) -> None:
    a = RunFolder.create(tmp_path, "demo", now=NOW)
    b = RunFolder.create(tmp_path, "demo", now=NOW)
    c = RunFolder.create(tmp_path, "demo", now=NOW)
    assert a.path.name == "20260102-030405-demo"
    assert b.path.name == "20260102-030405-demo-2" and c.path.name.endswith("-demo-3")
    assert len({a.path, b.path, c.path}) == 3
    for f in (a, b, c):
        assert json.loads(f.manifest_path.read_text())["status"] == "running"


def test_create_sanitises_names_and_refuses_a_file_as_output(tmp_path: Path) -> None:
    f = RunFolder.create(tmp_path, "../../etc/my run", now=NOW)
    assert f.path.parent == tmp_path and f.path.name == "20260102-030405-etc-my-run"
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunFolderError, match="not a folder"):
        RunFolder.create(tmp_path / "afile", "x")


def test_complete_run_round_trips(tmp_path: Path) -> None:
    folder = _complete_run(tmp_path)
    opened = RunFolder.open(folder.path)
    m = opened.manifest
    assert m.status == "complete" and m.seed == 7 and m.mindscope_version == mindscope.__version__
    assert set(m.files) >= {"config.yaml", "results.parquet", "report.html"}
    assert m.config_sha256 == m.files["config.yaml"]
    pd.testing.assert_frame_equal(opened.read_results(), read_table(folder.results_path))
    assert all(len(h) == 64 for h in m.files.values())


def test_incomplete_run_is_refused(tmp_path: Path) -> None:
    folder = RunFolder.create(tmp_path, "crashy", now=NOW)
    folder.write_results(example_table(n_layers=2))  # results on disk, but the run never finished
    with pytest.raises(RunFolderError, match="incomplete .status 'running'") as info:
        RunFolder.open(folder.path)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, MindscopeError)
    folder.finish("failed", error="boom\nwith a traceback")
    with pytest.raises(RunFolderError, match="status 'failed'.*boom with a traceback"):
        RunFolder.open(folder.path)
    assert RunFolder.open(folder.path, require_complete=False).manifest.status == "failed"


@pytest.mark.parametrize(
    "patch",
    [{"mindscope_version": "99.0.0"}, {"format_version": 2}, {"mindscope_version": "0.99.0rc1"}],
)
def test_newer_run_folder_is_refused(tmp_path: Path, patch: dict[str, object]) -> None:
    folder = _complete_run(tmp_path)
    data = json.loads(folder.manifest_path.read_text())
    data.update(patch)
    data["added_by_a_future_version"] = True
    folder.manifest_path.write_text(json.dumps(data))
    with pytest.raises(RunFolderError, match="newer than this mindscope") as info:
        RunFolder.open(folder.path)
    assert "\n" not in str(info.value)


def test_older_run_folder_is_accepted(tmp_path: Path) -> None:
    folder = _complete_run(tmp_path)
    data = json.loads(folder.manifest_path.read_text())
    data["mindscope_version"] = "0.0.1"
    folder.manifest_path.write_text(json.dumps(data))
    assert RunFolder.open(folder.path).manifest.mindscope_version == "0.0.1"


def test_tampered_or_missing_results_are_refused(tmp_path: Path) -> None:
    folder = _complete_run(tmp_path)
    df = read_table(folder.results_path)
    df.loc[0, "value"] = 123.0
    df.to_parquet(folder.results_path)
    with pytest.raises(RunFolderError, match="does not match the hash"):
        RunFolder.open(folder.path)
    folder.results_path.unlink()
    with pytest.raises(RunFolderError, match="missing results.parquet"):
        RunFolder.open(folder.path)


def test_not_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(RunFolderError, match="no run folder"):
        RunFolder.open(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="no manifest.json"):
        RunFolder.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunFolderError, match="corrupted"):
        RunFolder.open(tmp_path)


def test_crash_while_writing_results_keeps_the_previous_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = RunFolder.create(tmp_path, "x", now=NOW)
    first = example_table(n_layers=2, steps=(), audits=False)
    folder.write_results(first)

    def crash(self: pd.DataFrame, path: str, **kw: object) -> None:
        Path(path).write_bytes(b"PAR1 half a file")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", crash)
    with pytest.raises(OSError, match="disk full"):
        folder.write_results(example_table(n_layers=3))
    monkeypatch.undo()
    pd.testing.assert_frame_equal(read_table(folder.results_path), first)
    assert not [p for p in folder.path.iterdir() if p.name.startswith(".tmp-")]


def test_run_log_captures_the_mindscope_logger(tmp_path: Path) -> None:
    import logging

    folder = RunFolder.create(tmp_path, "x", now=NOW)
    with folder.logging() as log:
        log.info("stage one done")
        logging.getLogger("mindscope.lenses").warning("from a sub-logger")
    logging.getLogger("mindscope").info("after the run")
    text = folder.log_path.read_text()
    assert "stage one done" in text and "from a sub-logger" in text
    assert "after the run" not in text


def test_version_tuple() -> None:
    assert version_tuple("0.10.2rc1") == (0, 10, 2)
    assert version_tuple("1.2") < version_tuple("1.10")
    assert version_tuple("0.1.0") == (0, 1, 0)


def test_cli_report_rebuilds_from_the_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = _complete_run(tmp_path)
    folder.report_path.unlink()
    assert main(["report", str(folder.path)]) == 0
    assert capsys.readouterr().out.strip() == str(folder.report_path)
    html = folder.report_path.read_text()
    assert "<section id='reporters'>" in html and folder.path.name in html


def test_cli_report_refuses_incomplete_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    folder = RunFolder.create(tmp_path, "x", now=NOW)
    folder.write_results(example_table(n_layers=2))
    assert main(["report", str(folder.path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mindscope: error: run ") and "incomplete" in err
    assert err.count("\n") == 1
    assert not folder.report_path.exists()
