"""Checkpoint sweeps in-process: selection, integrity hashing, duplicates, resume, controls,
warm starts, bad input and the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from sweep_helpers import ForwardCounter, config, copy_series, make_series, make_text

import mindscope as ms
from mindscope.analyses import base as stage_registry
from mindscope.cli import main
from mindscope.errors import ConfigError, MindscopeError, ModelLoadError
from mindscope.sweeps import (
    checkpoint_hash,
    folder_checkpoints,
    log_spaced,
    parse_config,
    refine_candidate,
    select,
)
from mindscope.sweeps import runner as runner_mod


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_series(tmp_path_factory.mktemp("series") / "q")


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_text(tmp_path_factory.mktemp("text") / "arith.txt")


# ------------------------------------------------------------------ series and selection


def test_listing_selection_and_unknown_steps(series: Path) -> None:
    ckpts = folder_checkpoints(series)
    steps = [c.step for c in ckpts]
    assert steps == sorted(steps) and steps[0] == 0 and steps[-1] == 12
    assert [c.step for c in select(ckpts, "all")] == steps
    picked = [c.step for c in select(ckpts, 4)]
    assert len(picked) == 4 and picked[0] == 0 and picked[-1] == 12
    assert log_spaced([0, 1, 2, 4, 8, 16, 32, 64, 128], 5) == [0, 2, 8, 32, 128]
    assert [c.revision for c in select(ckpts, ["step2", 12])] == ["step2", "step12"]
    with pytest.raises(ConfigError, match=r"step5 \(nearest: step4, step6\)"):
        select(ckpts, [2, 5])
    with pytest.raises(ConfigError, match="step99 \\(nearest: step12\\)"):
        select(ckpts, [99])


def test_refine_candidate_picks_the_biggest_change() -> None:
    values = {0: 5.0, 8: 4.9, 64: 1.0, 512: 0.9}
    avail = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
    assert refine_candidate(values, [0, 8, 64, 512], avail) == 32  # log-midpoint of 8..64 ~ 23
    assert refine_candidate(values, [0, 8, 16, 32, 64, 512], avail) in (128, 256, 1, 2, 4)
    assert refine_candidate({0: 1.0, 1: 2.0}, [0, 1], [0, 1]) is None


def test_hash_before_load_equals_handle_hash(series: Path) -> None:
    hs = checkpoint_hash(series / "step12")
    h = ms.load_model(series / "step12", device="cpu")
    assert hs == h.weights_hash
    assert hs != checkpoint_hash(series / "step0")


def test_bad_folders_are_one_line_errors(series: Path, tmp_path: Path, tiny_dirs: Any) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelLoadError, match="holds no step<N>/ model folder"):
        folder_checkpoints(empty)
    mixed = copy_series(series, tmp_path / "mixed", [0, 2])
    shutil.copytree(series / "step4", mixed / "final")
    with pytest.raises(ModelLoadError, match="'final' is not named step<N>"):
        folder_checkpoints(mixed)
    half = copy_series(series, tmp_path / "half", [0])
    (half / "step3").mkdir()
    with pytest.raises(ModelLoadError, match="step3/ has no config.json"):
        folder_checkpoints(half)
    archs = copy_series(series, tmp_path / "archs", [0, 2])
    shutil.copytree(tiny_dirs["gpt2"], archs / "step9")
    out = tmp_path / "o"
    cfg = tmp_path / "c.json"
    (tmp_path / "t.txt").write_text("a text\n\nanother text")
    cfg.write_text(json.dumps(config(archs, tmp_path / "t.txt", out)))
    err = _cli_error(["sweep", str(cfg)])
    assert "different architectures" in err and "step9 is gpt2" in err
    assert not out.exists()  # refused before anything was written


def _cli_error(argv: list[str]) -> str:
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stderr(buf):
        assert main(argv) == 2
    lines = buf.getvalue().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mindscope: error: ")
    return lines[0]


def test_config_errors(tmp_path: Path) -> None:
    base = {"series": {"source": "folder", "name": "x"}, "stages": {"lens": {}}}
    with pytest.raises(ConfigError, match="did you mean 'warm_start'"):
        parse_config({**base, "stages": {"lens": {"warmstart": True}}})
    with pytest.raises(ConfigError, match="did you mean 'stages'"):
        parse_config({**base, "stagess": {}})
    with pytest.raises(ConfigError, match="at least one stage"):
        parse_config({**base, "stages": {}})
    with pytest.raises(ConfigError, match="did you mean 'diffmean'"):
        parse_config({**base, "stages": {"elicit": {"methods": ["difmean"]}}})
    cfg = tmp_path / "c.yaml"
    cfg.write_text("series: {source: organism, name: quirky-arth}\nstages: {elicit: {}}\n")
    assert "did you mean 'quirky-arith'" in _cli_error(["sweep", str(cfg)])
    cfg.write_text("series: {source: organism, name: pocket-lm}\nstages: {elicit: {}}\n")
    assert "mindscope organism train pocket-lm" in _cli_error(["sweep", str(cfg)])


# ------------------------------------------------------------------ the sweep itself


def test_duplicate_checkpoint_costs_zero_forwards(series: Path, text: Path, tmp_path: Path) -> None:
    plain = copy_series(series, tmp_path / "plain", [0, 4, 12])
    dup = copy_series(series, tmp_path / "dup", [0, 4, 12])
    shutil.copytree(series / "step12", dup / "step16")  # same weights under a later step
    with ForwardCounter() as c_plain:
        r_plain = ms.sweep(config(plain, text, tmp_path / "o1"))
    with ForwardCounter() as c_dup:
        r_dup = ms.sweep(config(dup, text, tmp_path / "o2"))
    assert r_dup.duplicates == {"step16": "step12"}
    assert c_plain.n > 0 and c_dup.n == c_plain.n  # the duplicate ran no forward pass
    assert r_dup.loads == r_plain.loads == 3 and r_dup.forwards == r_plain.forwards
    t = r_dup.table
    a = t[t["revision"] == "step12"].reset_index(drop=True)
    b = t[t["revision"] == "step16"].reset_index(drop=True)
    assert len(a) == len(b) > 0 and (b["step"] == 16).all()
    pd.testing.assert_series_equal(a["value"], b["value"])
    assert all(json.loads(e)["duplicate_of"] == "step12" for e in b["extra"])
    manifest = json.loads((tmp_path / "o2" / "manifest.json").read_text())
    assert manifest["checkpoints"]["step16"]["duplicate_of"] == "step12"
    assert "step16" not in manifest["done"]


def test_resume_recomputes_nothing_and_survives_a_kill(
    series: Path, text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    small = copy_series(series, tmp_path / "s", [0, 2, 6, 12])
    ref = ms.sweep(config(small, text, tmp_path / "ref", random_init=True))
    assert {r for r, _ in ref.computed} == {"step0", "step2", "step6", "step12", "random-init"}

    # 1. a finished sweep, re-run: no model load, no forward pass, the same table
    def no_load(*a: Any, **k: Any) -> Any:
        raise AssertionError("a finished sweep loaded a model")

    with monkeypatch.context() as m, ForwardCounter() as fc:
        m.setattr(runner_mod, "load_checkpoint", no_load)
        again = ms.sweep(config(small, text, tmp_path / "ref", random_init=True))
    assert again.computed == [] and again.loads == 0 and fc.n == 0
    pd.testing.assert_frame_equal(again.table, ref.table)

    # 2. killed mid-way (exception in the elicit stage of step6), then restarted
    real = stage_registry.get_stage("elicit")
    import dataclasses

    def boom(h: Any, cfg: Any, **kw: Any) -> Any:
        if h.revision == "step6":
            raise RuntimeError("killed")
        return real.fn(h, cfg, **kw)

    with monkeypatch.context() as m:
        m.setitem(stage_registry._REGISTRY, "elicit", dataclasses.replace(real, fn=boom))
        with pytest.raises(RuntimeError, match="killed"):
            ms.sweep(config(small, text, tmp_path / "killed", random_init=True))
    done = json.loads((tmp_path / "killed" / "manifest.json").read_text())["done"]
    # the random-init control runs first (step -1), then steps in order until the kill
    assert set(done) == {"random-init", "step0", "step2", "step6"}
    assert set(done["step6"]) == {"lens"}
    resumed = ms.sweep(config(small, text, tmp_path / "killed", random_init=True))
    assert sorted(resumed.computed) == sorted(
        [
            ("step6", "elicit"),
            ("step12", "lens"),
            ("step12", "elicit"),
        ]
    )
    # warm starts continue from the stored state: the table equals the uninterrupted one
    pd.testing.assert_frame_equal(resumed.table, ref.table)


def test_rows_controls_and_warm_start(series: Path, text: Path, tmp_path: Path) -> None:
    small = copy_series(series, tmp_path / "s", [0, 12])
    res = ms.sweep(config(small, text, tmp_path / "o", random_init=True))
    t = res.table
    assert set(t["revision"]) == {"step0", "step12", "random-init"}
    assert set(t.loc[t["revision"] == "random-init", "step"]) == {-1}
    extras = [json.loads(e) for e in t["extra"]]
    hashes = {r: e["weights_hash"] for r, e in zip(t["revision"], extras)}
    assert hashes["step12"] == checkpoint_hash(small / "step12")
    assert hashes["random-init"] not in (hashes["step0"], hashes["step12"])
    lens = t[(t["metric"] == "kl") & (t["method"] == "tuned_lens") & (t["split"] == "heldout")]
    warm = {r: json.loads(e)["warm_start"] for r, e in zip(lens["revision"], lens["extra"])}
    assert warm == {"step0": False, "step12": True, "random-init": False}
    assert {"lr:shuffled", "diffmean:shuffled", "lm", "lr"} <= set(t["method"])
    # the lm rows are the model's own answers: recompute them independently
    h = ms.load_model(small / "step12", device="cpu")
    # Mallen et al.'s report scores the model on every Bob-hard example (train and test pairs)
    test = ms.data.quirky_arith(96, seed=0, split="train") + ms.data.quirky_arith(
        128, seed=1, split="test"
    )
    idx = [
        i
        for i, p in enumerate(test)
        if p.meta["persona"] == "bob" and p.meta["difficulty"] == "hard"
    ]
    from mindscope.activations import lm_logodds
    from mindscope.probes.metrics import roc_auc

    lo = lm_logodds(h, [test[i] for i in idx])
    want = float(roc_auc(lo, torch.tensor([float(test[i].meta["bob_label"]) for i in idx])))
    got = t[
        (t["revision"] == "step12")
        & (t["method"] == "lm")
        & (t["metric"] == "auroc_bob")
        & (t["split"] == "bob-hard")
    ]["value"]
    assert got.tolist() == pytest.approx([want], abs=1e-9)
    # the untrained translators at init are the logit lens: a lens with 0 steps would tie it;
    # after fitting, the tuned lens is below the logit lens at layer 0 of the final checkpoint
    kl = t[
        (t["metric"] == "kl")
        & (t["revision"] == "step12")
        & (t["layer"] == 0)
        & (t["split"] == "heldout")
    ]
    by = dict(zip(kl["method"], kl["value"]))
    assert by["tuned_lens"] < by["logit_lens"]


def test_refine_adds_checkpoints_and_cli(
    series: Path, text: Path, tmp_path: Path, capsys: Any
) -> None:
    cfg = config(series, text, tmp_path / "o")
    cfg["series"]["select"] = [0, 12]
    cfg["stages"] = {"lens": cfg["stages"]["lens"]}
    path = tmp_path / "sweep.json"
    path.write_text(json.dumps(cfg))
    assert main(["sweep", str(path), "--refine", "2"]) == 0
    out = capsys.readouterr().out
    assert "4 checkpoints" in out and "0 reused" in out
    t = pd.read_parquet(tmp_path / "o" / "results.parquet")
    steps = sorted(set(t["step"]))
    assert len(steps) == 4 and steps[0] == 0 and steps[-1] == 12
    assert main(["sweep", str(path), "--refine", "2"]) == 0
    assert "0 stage runs computed, 4 reused" in capsys.readouterr().out
    cfg["stages"]["lens"]["steps"] = 9
    path.write_text(json.dumps(cfg))
    assert "another config" in _cli_error(["sweep", str(path)])


def test_changed_checkpoint_is_refused(series: Path, text: Path, tmp_path: Path) -> None:
    from mindscope.sweeps.runner import run_checkpoint

    small = copy_series(series, tmp_path / "s", [0])
    ckpt = {
        "revision": "step0",
        "step": 0,
        "path": str(small / "step0"),
        "repo": "x",
        "weights_hash": "0" * 16,
    }
    with pytest.raises(MindscopeError, match="changed since the sweep hashed it"):
        run_checkpoint(ckpt, [], seed=0)


def test_time_figures_from_rows_only() -> None:
    from mindscope.report import build_sections
    from mindscope.report.sections.time_layers import heatmap_figures, metric_vs_step_figures
    from mindscope.results import Row, to_frame

    rows = []
    for step in (0, 8, 64, 512, 1000):
        for layer in range(3):
            kl = 1.0 / (1 + step) + 0.1 * layer
            extra = {"duplicate_of": "step512"} if step == 1000 else {}
            for method, v in (("tuned_lens", kl), ("logit_lens", 2 * kl)):
                rows.append(
                    Row(
                        metric="kl",
                        value=v,
                        method=method,
                        layer=layer,
                        step=step,
                        revision=f"step{step}",
                        _extra=extra,
                    )
                )
            rows.append(
                Row(
                    metric="auroc",
                    value=0.5 + step / 2000,
                    method="lr",
                    layer=layer,
                    step=step,
                    split="bob-hard",
                    revision=f"step{step}",
                    _extra=extra,
                )
            )
    rows.append(
        Row(metric="kl", value=3.0, method="tuned_lens", layer=0, step=-1, revision="random-init")
    )
    df = to_frame(rows)
    (line,) = metric_vs_step_figures(df, "kl", "tuned_lens")
    assert line.layout.xaxis.type == "log" and len(line.data) == 3
    first = line.data[0]
    assert list(first.x) == [1, 9, 65, 513, 1001]  # step + 1
    assert list(first.marker.symbol) == ["circle"] * 4 + ["x"]  # the duplicate is marked
    assert list(first.y) == pytest.approx([1.0, 1 / 9, 1 / 65, 1 / 513, 1 / 1001])
    (heat,) = heatmap_figures(df, "auroc", "lr", "bob-hard")
    assert list(heat.data[0].x) == ["0", "8", "64", "512", "1000*"]
    assert heat.data[0].z[2][4] == pytest.approx(1.0)
    sections = {s.id: s for s in build_sections(df)}
    assert len(sections["time-layers"].figures) >= 4


def test_hub_listing_and_hash_without_download() -> None:
    from types import SimpleNamespace as NS

    from mindscope.sweeps.series import _hub_hash, hub_checkpoints

    class FakeApi:
        def list_repo_refs(self, repo: str) -> Any:
            names = ["main", "step143000", "step0", "step1000", "step512", "v1"]
            return NS(branches=[NS(name=n) for n in names])

        def model_info(self, repo: str, revision: str, files_metadata: bool) -> Any:
            sha = "a" * 64 if revision in ("step512", "step1000") else "b" * 64
            return NS(
                siblings=[
                    NS(rfilename="model.safetensors", lfs=NS(sha256=sha)),
                    NS(rfilename="config.json", lfs=None),
                ]
            )

    ckpts = hub_checkpoints("EleutherAI/pythia-70m", api=FakeApi())
    assert [c.revision for c in ckpts] == ["step0", "step512", "step1000", "step143000"]
    assert all(c.path is None and c.repo == "EleutherAI/pythia-70m" for c in ckpts)
    with pytest.raises(ConfigError, match=r"step2000 \(nearest: step1000, step143000\)"):
        select(ckpts, [2000])
    api = FakeApi()
    h = {r: _hub_hash("x", r, api) for r in ("step0", "step512", "step1000")}
    assert h["step512"] == h["step1000"] != h["step0"]  # identical weights found from metadata


def test_warm_start_copies_the_previous_translators(series: Path) -> None:
    from mindscope.analyses.lens import warm_start_lens

    h = ms.load_model(series / "step12", device="cpu")
    state = {
        "weight": torch.randn(h.n_layers, h.d_model, h.d_model),
        "bias": torch.randn(h.n_layers, h.d_model),
    }
    lens = warm_start_lens(h, state)
    assert torch.equal(lens.weight.detach(), state["weight"])
    assert torch.equal(lens.bias.detach(), state["bias"])
    assert torch.count_nonzero(warm_start_lens(h, None).weight) == 0  # cold = the logit lens
