"""`mindscope run` end to end on a tiny random model: a complete, trustworthy run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mindscope.cli import main
from mindscope.runs import RunFolder
from mindscope.runs.manifest import file_sha256

WORDS = (
    "the a cat dog sat on mat is true false yes no alice bob one two three four five paris "
    "london france capital of and to in it was red blue green"
).split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mindscope.testing import tiny_run_setup

    return tiny_run_setup(
        tmp_path_factory.mktemp("pipeline"),
        WORDS,
        n_docs=60,
        doc_words=40,
        tokens_per_step=256,
        max_texts=40,
        n=64,
        methods=["lr", "ccs"],
    )


@pytest.fixture(scope="module")
def run_dir(setup: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    old = os.environ.get("MINDSCOPE_HOME")
    os.environ["MINDSCOPE_HOME"] = str(tmp_path_factory.mktemp("home"))
    try:
        assert main(["run", str(setup / "run.yaml")]) == 0
    finally:
        if old is None:
            os.environ.pop("MINDSCOPE_HOME")
        else:
            os.environ["MINDSCOPE_HOME"] = old
    (folder,) = (setup / "runs").iterdir()
    return folder


def test_run_folder_is_complete_and_verified(run_dir: Path) -> None:
    folder = RunFolder.open(run_dir)  # raises unless complete and hashes match
    names = {p.name for p in run_dir.iterdir()}
    assert names >= {
        "config.yaml",
        "results.parquet",
        "artefacts",
        "manifest.json",
        "run.log",
        "report.html",
    }
    m = folder.manifest
    assert m.status == "complete" and m.name == "tiny"
    assert len(m.models) == 1 and len(m.models[0]["weights_hash"]) >= 8
    assert any(k.startswith("lens-train:") for k in m.data)
    assert any(k.startswith("elicit-train:quirky-arith") for k in m.data)
    assert m.files["results.parquet"] == file_sha256(folder.results_path)
    assert "stage elicit: done" in folder.log_path.read_text()


def test_results_cover_both_analyses(run_dir: Path) -> None:
    df = RunFolder.open(run_dir).read_results()
    lens = df[(df["metric"] == "kl") & (df["extra"].str.contains('"tokens"'))]
    assert set(lens["method"]) == {"logit_lens", "tuned_lens"}
    assert sorted(lens["layer"].unique()) == [0, 1, 2]
    auroc = df[(df["metric"] == "auroc") & (df["split"] == "test")]  # the main reporter fits
    assert set(auroc["method"]) == {"lr", "ccs"} and sorted(auroc["layer"].unique()) == [0, 2]
    assert ((auroc["value"] >= 0) & (auroc["value"] <= 1)).all()
    assert (df["metric"] == "top_prob").sum() > 0


def test_artefacts_and_resolved_config(run_dir: Path, setup: Path) -> None:
    arte = {p.name for p in (run_dir / "artefacts").iterdir()}
    assert {"tuned_lens", "reporter-lr", "reporter-ccs"} <= arte
    assert (run_dir / "artefacts" / "reporter-lr" / "model.safetensors").is_file()
    traj = json.loads((run_dir / "artefacts" / "trajectory-tuned_lens.json").read_text())
    assert traj["method"] == "tuned_lens"
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert cfg["model"]["name"] == str(setup / "model")  # relative paths resolved
    assert cfg["lens"]["train_text"] == str(setup / "corpus.txt")
    # the resolved config is a valid config that repeats the run
    from mindscope.runs import load_config
    from mindscope.runs.config import to_dict

    assert to_dict(load_config(run_dir / "config.yaml")) == cfg


def test_report_has_lens_and_reporter_sections(run_dir: Path) -> None:
    html = (run_dir / "report.html").read_text()
    for sid in ("lens-kl", "trajectory", "reporters", "summary"):
        assert f"<section id='{sid}'>" in html


def test_a_failing_run_is_marked_failed(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mindscope.runs import load_config, pipeline

    cfg = load_config(setup / "run.yaml")
    cfg.output_dir = str(tmp_path)
    cfg.lens.enabled = False

    def broken(*a: object, **k: object) -> None:
        raise RuntimeError("extraction exploded")

    monkeypatch.setattr(pipeline, "run_stage", broken)
    monkeypatch.setenv("MINDSCOPE_HOME", str(tmp_path / "home"))
    with pytest.raises(RuntimeError, match="exploded"):
        pipeline.run_pipeline(cfg, progress=False)
    (folder,) = tmp_path.glob("*-tiny")
    data = json.loads((folder / "manifest.json").read_text())
    assert data["status"] == "failed" and "extraction exploded" in data["error"]
    assert main(["report", str(folder)]) == 2


def test_every_row_carries_the_model_provenance(run_dir: Path) -> None:
    folder = RunFolder.open(run_dir)
    df, (model,) = folder.read_results(), folder.manifest.models
    assert (df["model"] == model["name"]).all()
    assert (df["weights_hash"] == model["weights_hash"]).all() and len(model["weights_hash"]) >= 8
    assert (df["step"] == -1).all() and (df["revision"] == "").all()  # a local folder: no step


def test_elicit_cli_reads_the_same_pairs_as_the_run(
    run_dir: Path, setup: Path, tmp_path: Path
) -> None:
    out = tmp_path / "elicit"
    argv = ["elicit", "--model", str(setup / "model"), "--dataset", "quirky-arith", "--n", "64"]
    argv += ["--methods", "lr", "--layers", "0", "--n-boot", "10", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    data = json.loads((out / "run.json").read_text())["data"]
    manifest = RunFolder.open(run_dir).manifest
    assert set(data) == {"elicit-train:quirky-arith", "elicit-test:quirky-arith"}
    assert all(manifest.data[k] == v for k, v in data.items())


def test_stages_are_pure(setup: Path) -> None:
    import torch

    from mindscope.analyses import run_stage
    from mindscope.models import load_model
    from mindscope.runs import load_config

    cfg = load_config(setup / "run.yaml")
    h = load_model(setup / "model", device="cpu")
    torch.manual_seed(123)
    state, threads = torch.random.get_rng_state(), torch.get_num_threads()
    before = sorted(p.name for p in setup.iterdir())
    small = cfg.elicit.model_copy(update={"methods": ["lr"], "transfer": False})
    a = run_stage("elicit", h, small, seed=3)
    b = run_stage("elicit", h, small, seed=3, threads=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's RNG is untouched
    assert torch.get_num_threads() == threads
    assert sorted(p.name for p in setup.iterdir()) == before  # nothing written
    assert (a.rows["model"] == "").all()  # provenance is the pipeline's job (results.stamp)
    import pandas as pd

    pd.testing.assert_frame_equal(a.rows, b.rows)  # seed in, same numbers out
    assert set(a.artefacts) == {"reporter-lr", "predictions.parquet"} and set(a.data) == {
        "elicit-train:quirky-arith",
        "elicit-test:quirky-arith",
    }


def test_a_run_asks_for_the_free_cores_before_each_stage(
    setup: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --threads, each stage runs on the cores free when it starts (a neighbour that
    arrives mid-run takes effect at the next stage); --threads pins every stage."""
    from mindscope import threads as policy
    from mindscope.runs import load_config, pipeline

    cfg = load_config(setup / "run.yaml")
    cfg.output_dir = str(tmp_path)
    free = iter([2, 2, 1, 1, 1, 1, 1, 1])
    monkeypatch.setattr(policy, "free_cores", lambda load=None: next(free))
    for var in ("MINDSCOPE_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(var, raising=False)
    seen: list[tuple[str, int]] = []
    real = pipeline.run_stage

    def recording(name, *a, **k):  # type: ignore[no-untyped-def]
        seen.append((name, k["threads"]))
        return real(name, *a, **k)

    monkeypatch.setattr(pipeline, "run_stage", recording)
    monkeypatch.setenv("MINDSCOPE_HOME", str(tmp_path / "home"))
    pipeline.run_pipeline(cfg, progress=False)
    assert [n for n, _ in seen] == ["lens", "elicit"]
    assert [t for _, t in seen] == [2, 1]  # the first call is the run's own default
    seen.clear()
    cfg.output_dir = str(tmp_path / "pinned")
    pipeline.run_pipeline(cfg, progress=False, threads=1)
    assert [t for _, t in seen] == [1, 1]
