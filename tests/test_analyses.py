"""The stage registry: one analysis, four doors (``mindscope elicit``, ``mindscope run``,
``mindscope sweep`` and the Python call), identical rows for the same config and seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from sweep_helpers import make_series, make_text

import mindscope as ms
from mindscope.analyses import (
    ElicitConfig,
    LensConfig,
    StageConfig,
    StageOutput,
    get_stage,
    register,
    run_stage,
    stage_names,
)
from mindscope.analyses import base as registry
from mindscope.cli import main
from mindscope.errors import ConfigError
from mindscope.results import extras, read_table, to_frame

SCIENCE = ["dataset", "split", "layer", "method", "metric", "value", "ci_low", "ci_high", "n"]
"""Columns that carry the measurement (provenance differs by door: a sweep names its series)."""

ELICIT = {
    "dataset": "quirky-arith",
    "n": 96,
    "n_test": 96,
    "methods": ["lr", "diffmean", "random"],
    "read": "prompt",
    "n_boot": 20,
    "transfer_from": ["alice-easy", "bob-easy"],
}
LENS = {"steps": 4, "tokens_per_step": 256, "seq_len": 16, "n_boot": 10, "max_texts": 40}


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_series(tmp_path_factory.mktemp("series") / "q")


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text(tmp_path_factory.mktemp("text") / "arith.txt")


def _science(df: pd.DataFrame, stage: str) -> pd.DataFrame:
    """The measured columns of one stage's rows plus ``extra`` without provenance keys, sorted."""
    ex = extras(df)
    keep = [e.get("stage") == stage for e in ex]
    out = df.loc[keep, SCIENCE].copy()
    out["extra"] = [
        json.dumps({k: v for k, v in e.items() if k not in ("weights_hash",)}, sort_keys=True)
        for e, k in zip(ex, keep)
        if k
    ]
    return out.sort_values([*SCIENCE[:6], "extra"]).reset_index(drop=True)


def test_elicit_rows_are_identical_from_every_door(
    series: Path, text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINDSCOPE_HOME", str(tmp_path / "home"))
    model = series / "step12"
    # 1. Python
    h = ms.load_model(model, device="cpu")
    py = _science(run_stage("elicit", h, ELICIT, seed=3).rows, "elicit")
    assert len(py) > 100 and {"lr", "diffmean", "random"} <= set(py["method"])
    # 2. mindscope elicit (flags generated from the same config)
    out = tmp_path / "elicit"
    argv = ["elicit", "--model", str(model), "--dataset", "quirky-arith", "--seed", "3"]
    argv += ["--n", "96", "--n-test", "96", "--methods", "lr,diffmean,random"]
    argv += ["--read", "prompt", "--n-boot", "20", "--transfer-from", "alice-easy,bob-easy"]
    argv += ["--device", "cpu", "--quiet", "--out", str(out)]
    assert main(argv) == 0
    cli = _science(read_table(out / "results.parquet"), "elicit")
    # 3. mindscope run
    cfg = {
        "name": "same",
        "seed": 3,
        "model": {"name": str(model), "device": "cpu"},
        "lens": {"enabled": False},
        "elicit": ELICIT,
        "output_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "runs").glob("*-same")
    run = _science(read_table(run_dir / "results.parquet"), "elicit")
    # 4. mindscope sweep (one checkpoint)
    sweep = ms.sweep(
        {
            "series": {"source": "folder", "name": str(series), "select": ["step12"]},
            "stages": {"elicit": ELICIT},
            "out": str(tmp_path / "sweep"),
            "random_init": False,
            "seed": 3,
            "store": str(tmp_path / "store"),
        }
    )
    sw = _science(sweep.table, "elicit")
    for name, other in (("elicit", cli), ("run", run), ("sweep", sw)):
        pd.testing.assert_frame_equal(py, other, obj=f"python vs {name}")


def test_lens_rows_are_identical_from_run_sweep_and_python(
    series: Path, text: Path, tmp_path: Path
) -> None:
    model = series / "step12"
    lens = {**LENS, "train_text": str(text), "trajectory_prompt": "1 + 2"}
    h = ms.load_model(model, device="cpu")
    py = _science(run_stage("lens", h, lens, seed=1).rows, "lens")
    assert {"tuned_lens", "logit_lens"} <= set(py["method"])
    cfg = {
        "name": "lens",
        "seed": 1,
        "model": {"name": str(model), "device": "cpu"},
        "lens": lens,
        "elicit": {"enabled": False},
        "output_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "runs").glob("*-lens")
    run = _science(read_table(run_dir / "results.parquet"), "lens")
    sweep = ms.sweep(
        {
            "series": {"source": "folder", "name": str(series), "select": ["step12"]},
            "stages": {"lens": lens},
            "out": str(tmp_path / "sweep"),
            "random_init": False,
            "seed": 1,
        }
    )
    sw = _science(sweep.table, "lens")
    pd.testing.assert_frame_equal(py, run, obj="python vs run")
    pd.testing.assert_frame_equal(py, sw, obj="python vs sweep")


def test_registry_order_configs_and_errors() -> None:
    names = stage_names()
    assert names.index("lens") < names.index("elicit")
    assert get_stage("elicit").config is ElicitConfig and get_stage("lens").config is LensConfig
    with pytest.raises(ConfigError, match="did you mean 'elicit'"):
        get_stage("elicitt")
    with pytest.raises(ConfigError, match=r"elicit: n_boot: expected int"):
        run_stage("elicit", None, {"n_boot": "many"})
    with pytest.raises(TypeError, match="takes a ElicitConfig"):
        run_stage("elicit", None, LensConfig())


def test_a_registered_stage_is_a_run_key_with_one_registration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Adding an analysis is one module: its config becomes a run-config key and a sweep key."""

    class CountConfig(StageConfig):
        """Count the model's layers."""

        scale: float = 1.0

    def count(h: Any, cfg: CountConfig, **kw: Any) -> StageOutput:
        rows = to_frame([{"metric": "layers", "value": cfg.scale * h.n_layers, "method": "count"}])
        return StageOutput(rows)

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register("count", CountConfig, help="count layers", order=50)(count)
    from mindscope.runs import config as run_config
    from mindscope.sweeps import config as sweep_config

    model = run_config._build_run_config()
    cfg = model.model_validate({"count": {"scale": 2.0}, "lens": {"enabled": False}})
    assert cfg.count.scale == 2.0 and model().count is None  # listed stages run, others don't
    stages = sweep_config._build_stages_config()
    assert "count" in stages.model_fields


def test_a_run_lists_audit_stages_in_one_table(series: Path, tmp_path: Path) -> None:
    """lens, elicit, anomaly and rare in one run config -> one results table."""
    model = series / "step12"
    cfg = {
        "name": "audits",
        "model": {"name": str(model), "device": "cpu"},
        "lens": {"enabled": False},
        "elicit": {**ELICIT, "transfer": False},
        "anomaly": {
            "tasks": ["quirky-easy"],
            "detectors": ["mahalanobis"],
            "n_trusted": 48,
            "n_eval": 24,
            "n_boot": 10,
            "monitor": False,
        },
        "rare": {"bad": "1", "tokens": "random:8", "positions": 2, "method": "naive", "budget": 64},
        "output_dir": str(tmp_path / "runs"),
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "run.yaml"), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "runs").glob("*-audits")
    df = read_table(run_dir / "results.parquet")
    stages = {e.get("stage") for e in extras(df)}
    assert stages == {"elicit", "anomaly", "rare"}
    assert "audit_auroc" in set(df["metric"]) and "rare_probability" in set(df["metric"])
    assert (df["model"] != "").all()
    # the run config refuses a bad audit option before loading anything
    cfg["anomaly"]["fpr"] = 3.0
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"bad.yaml: anomaly.fpr: must be in \(0, 1\)"):
        from mindscope.runs import load_config

        load_config(tmp_path / "bad.yaml")
