"""The ICL organisms against their closed forms, and the bayes stage and command on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mindscope as ms
from mindscope import organisms
from mindscope.analyses import run_stage
from mindscope.bayes import FiniteTaskPrior, HMMMixture
from mindscope.errors import MindscopeError
from mindscope.organisms.icl import (
    HMMConfig,
    RegressionConfig,
    encode_regression,
    hmm_logprobs,
    hmm_mixture,
    regression_predictions,
    regression_prior,
    regression_task,
)
from mindscope.organisms.neox import ModelShape
from mindscope.results import extra_of

SHAPE = ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=24)


@pytest.fixture(scope="module")
def tiny_regression(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = RegressionConfig(
        n_tasks=4,
        d=3,
        k=6,
        max_steps=12,
        batch_size=16,
        shape=SHAPE,
        threads=1,
        eval_contexts=32,
        transcript_segments=0,
    )
    root = tmp_path_factory.mktemp("icl") / "reg"
    return organisms.train("icl-regression-m4", cfg, out=root, progress=False)


@pytest.fixture(scope="module")
def tiny_hmm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = HMMConfig(
        n_hmms=2,
        n_states=2,
        n_symbols=3,
        length=12,
        max_steps=12,
        batch_size=16,
        shape=SHAPE,
        threads=1,
        eval_sequences=32,
        transcript_segments=0,
    )
    root = tmp_path_factory.mktemp("icl") / "hmm"
    return organisms.train("icl-hmm", cfg, out=root, progress=False)


def test_regression_data_follow_the_model() -> None:
    """Training batches are y = x . w + N(0, s^2) with w from the pool drawn by pool_seed."""
    cfg = RegressionConfig(n_tasks=5, d=4, k=8, batch_size=512, shape=SHAPE, threads=1)
    task = regression_task(cfg)
    batch = next(task.batches())
    tokens, y = batch["tokens"], batch["y"]  # [b, 2K, D+1], [b, K]
    x = tokens[:, 0::2, :4]
    torch.testing.assert_close(tokens[:, 1::2, 4], y)
    assert (tokens[:, 0::2, 4] == 0).all() and (tokens[:, 1::2, :4] == 0).all()
    pool = FiniteTaskPrior.sample_pool(5, 4, 0.25, 0).tasks
    # each context's least-squares residual against its best pool task is pure noise
    resid = y[:, :, None] - x @ pool.T  # [b, K, M]
    best = resid.square().sum(1).argmin(-1)
    noise = resid[torch.arange(len(y)), :, best]
    assert noise.var().item() == pytest.approx(0.25, rel=0.1)


def test_regression_organism_loads_and_is_scored(tiny_regression: Path) -> None:
    manifest = json.loads((tiny_regression / "manifest.json").read_text())
    spec = manifest["info"]["data_spec"]
    assert spec["n_tasks"] == 4 and spec["features"] == 4
    h = ms.load_model(str(tiny_regression / "step12"))
    # checkpoint metrics are the closed forms' own numbers
    m = manifest["revisions"]["step12"]["metrics"]
    assert m["mse_dmmse"] < m["mse_ridge"]
    out = run_stage("bayes", h, {"spec": spec, "n": 64, "tasks": ["pool", "cap"], "k": 10})
    df = out.rows
    assert set(df["dataset"]) == {"pool", "cap"}
    ks = {extra_of(e).get("k") for e in df["extra"]}
    assert set(range(10)) | {"all"} == ks  # 10 > the trained 6 pairs: the long-context test
    share = df[df["metric"] == "ridge_share"]["value"]
    assert ((share >= 0) & (share <= 1)).all()
    # the stage's model predictions are the handle's own forward pass
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 6, 3, generator=gen), torch.randn(5, 6, generator=gen)
    emb = encode_regression(x, y) @ h.embedding_matrix[:4]
    direct = h.forward(inputs_embeds=emb)[:, 0::2, 3]
    torch.testing.assert_close(regression_predictions(h, x, y), direct)
    prior, _ = regression_prior(manifest["info"])
    assert prior.n_tasks == 4


def test_regression_bad_inputs(tiny_regression: Path) -> None:
    h = ms.load_model(str(tiny_regression / "step12"))
    with pytest.raises(MindscopeError, match="input width does not match"):
        regression_predictions(h, torch.zeros(2, 3, 5), torch.zeros(2, 3))
    with pytest.raises(MindscopeError, match="positions"):
        regression_predictions(h, torch.zeros(2, 13, 3), torch.zeros(2, 13))
    spec = json.loads((tiny_regression / "manifest.json").read_text())["info"]["data_spec"]
    with pytest.raises(MindscopeError, match="M must be >= 1"):
        run_stage("bayes", h, {"spec": {**spec, "n_tasks": 0}})
    with pytest.raises(MindscopeError, match="noise level"):
        run_stage("bayes", h, {"spec": {**spec, "noise": -0.1}})
    with pytest.raises(MindscopeError, match="M must be"):
        organisms.train("icl-regression-m0", RegressionConfig(n_tasks=0), progress=False)


def test_hmm_organism_against_forward_algorithm(tiny_hmm: Path) -> None:
    manifest = json.loads((tiny_hmm / "manifest.json").read_text())
    spec = manifest["info"]["data_spec"]
    mix = hmm_mixture(spec)
    assert isinstance(mix, HMMMixture) and mix.n_hmms == 2
    held = hmm_mixture(spec, heldout=True)
    assert not torch.allclose(held.trans, mix.trans)
    h = ms.load_model(str(tiny_hmm / "step12"))
    obs, _, _ = mix.sample(8, 12, torch.Generator().manual_seed(0))
    lp = hmm_logprobs(h, obs, 3)
    assert lp.shape == (8, 12, 3) and (lp.exp().sum(-1) <= 1 + 1e-5).all()
    out = run_stage("bayes", h, {"spec": spec, "n": 64})
    df = out.rows
    assert set(df["dataset"]) == {"train", "heldout"}
    r2 = df[df["metric"] == "belief_r2"]
    assert sorted(set(r2["layer"])) == [0, 1, 2]
    kl = df[(df["metric"] == "kl_next") & (df["method"] == "bayes")]["value"]
    assert (kl >= 0).all()
    assert "belief_simplex.json" in out.artefacts


def test_bayes_cli(
    tiny_regression: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from mindscope.cli import main

    spec = json.loads((tiny_regression / "manifest.json").read_text())["info"]["data_spec"]
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    out = tmp_path / "out"
    argv = [
        "bayes",
        "--model",
        str(tiny_regression / "step12"),
        "--spec",
        str(tmp_path / "spec.json"),
        "--n",
        "32",
        "--tasks",
        "pool,scaled",
        "--noise",
        "student_t",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "scaled" in text and "ridge share" in text
    assert (out / "results.parquet").is_file() and (out / "bayes_curves.json").is_file()
    assert main(argv) == 2  # refuses to overwrite
    assert "refusing to overwrite" in capsys.readouterr().err
    assert (
        main(["bayes", "--model", str(tiny_regression / "step12"), "--out", str(tmp_path / "o2")])
        == 2
    )
    assert "data spec" in capsys.readouterr().err


def test_organism_train_tasks_flag(capsys: pytest.CaptureFixture[str]) -> None:
    from mindscope.cli import main

    assert main(["organism", "train", "icl-regression", "--tasks", "0"]) == 2
    assert "M must be >= 1" in capsys.readouterr().err
    assert main(["organism", "train", "pocket-lm", "--tasks", "4"]) == 2
    assert "applies to icl-regression" in capsys.readouterr().err
    cfg = organisms.default_config("icl-regression-m37")
    assert cfg.n_tasks == 37 and organisms.info("icl-regression-m37")["data_spec"]["n_tasks"] == 37


def test_report_section(tiny_regression: Path, tiny_hmm: Path) -> None:
    from mindscope.report.registry import build_sections
    from mindscope.results import stamp

    frames = []
    for root in (tiny_regression, tiny_hmm):
        spec = json.loads((root / "manifest.json").read_text())["info"]["data_spec"]
        h = ms.load_model(str(root / "step12"))
        frames.append(stamp(run_stage("bayes", h, {"spec": spec, "n": 32}).rows, h))
    import pandas as pd

    sections = {s.id: s for s in build_sections(pd.concat(frames, ignore_index=True))}
    sec = sections["bayes"]
    titles = [f.layout.title.text for f in sec.figures]
    assert any(t.startswith("Error vs context length") for t in titles)
    assert any(t.startswith("Next-token KL") for t in titles)
    assert any(t.startswith("Belief-state probe") for t in titles)
    assert sec.table is not None and len(sec.table)


def test_sweep_across_checkpoints(tiny_regression: Path, tmp_path: Path) -> None:
    """The bayes stage is a key of sweep configs: one row set per checkpoint."""
    spec = json.loads((tiny_regression / "manifest.json").read_text())["info"]["data_spec"]
    res = ms.sweep(
        {
            "series": {"source": "folder", "name": str(tiny_regression), "select": "all"},
            "stages": {"bayes": {"spec": spec, "n": 32, "tasks": ["pool"]}},
            "random_init": False,
            "out": str(tmp_path / "sw"),
        }
    )
    df = res.table
    share = df[df["metric"] == "ridge_share"]
    steps = json.loads((tiny_regression / "manifest.json").read_text())["revisions"]
    assert sorted(share["step"]) == sorted(v["step"] for v in steps.values())


def _avg(df, dataset: str, method: str, metric: str) -> float:  # noqa: ANN001
    sel = df[(df["dataset"] == dataset) & (df["method"] == method) & (df["metric"] == metric)]
    sel = sel[[extra_of(e).get("k") == "all" for e in sel["extra"]]]
    return float(sel["value"].iloc[0])


def test_shipped_small_m_learner_tracks_dmmse() -> None:
    """Raventos et al.'s small-M regime on the shipped M = 2 organism: its predictions sit
    near dMMSE's and far from ridge's, on pool tasks and off them."""
    h = ms.load_model("organism:icl-regression-m2")
    df = run_stage("bayes", h, {"n": 300, "tasks": ["pool", "gaussian"]}).rows
    for ds in ("pool", "gaussian"):
        assert _avg(df, ds, "dmmse", "dist") < _avg(df, ds, "ridge", "dist")
    assert _avg(df, "pool", "model", "ridge_share") < 0.5
    # realizable: the model's error is close to the Bayes-optimal one and below ridge's
    assert _avg(df, "pool", "model", "mse") < _avg(df, "pool", "ridge", "mse")


def test_shipped_hmm_learner_is_near_bayes_and_linearly_holds_its_belief() -> None:
    h = ms.load_model("organism:icl-hmm")
    df = run_stage("bayes", h, {"n": 200, "hmms": ["train"]}).rows
    kl_bayes, kl_truth = (
        _avg(df, "train", "bayes", "kl_next"),
        _avg(df, "train", "truth", "kl_next"),
    )
    assert kl_bayes < 0.05 and kl_bayes < kl_truth  # it predicts like the posterior, not the truth
    r2 = df[df["metric"] == "belief_r2"].sort_values("layer")["value"].to_numpy()
    assert r2[-1] > 0.5 and r2[-1] > r2[0] + 0.3  # the belief is built up across layers


@pytest.mark.parametrize("kind", ["regression", "hmm"])
def test_training_transcript_verifies(kind: str, tmp_path: Path) -> None:
    """The ICL organisms' training transcripts re-execute bit-exactly (ms.verify.training)."""
    if kind == "regression":
        name = "icl-regression-m4"
        cfg: object = RegressionConfig(
            n_tasks=4,
            d=3,
            k=6,
            max_steps=8,
            batch_size=8,
            shape=SHAPE,
            threads=1,
            eval_contexts=16,
            transcript_segments=4,
        )
    else:
        name = "icl-hmm"
        cfg = HMMConfig(
            n_hmms=2,
            n_states=2,
            n_symbols=3,
            length=8,
            max_steps=8,
            batch_size=8,
            shape=SHAPE,
            threads=1,
            eval_sequences=16,
            transcript_segments=4,
        )
    root = organisms.train(name, cfg, out=tmp_path / kind, progress=False)
    report = ms.verify.training(root, q=1, n_random=1)
    assert report.accepted, report.summary()


def test_lens_reporters_and_verify_on_the_hmm_organism(tiny_hmm: Path, tmp_path: Path) -> None:
    """The general instruments on an ICL organism: a tuned lens trained on its sequences, a
    reporter reading which HMM produced a prompt, the bayes stage, all in one run that
    re-executes to the same table (ms.verify.run)."""
    import yaml

    from mindscope.cli import main
    from mindscope.results import read_table

    spec = json.loads((tiny_hmm / "manifest.json").read_text())["info"]["data_spec"]
    mix = hmm_mixture(spec)
    obs, comp, _ = mix.sample(96, 12, torch.Generator().manual_seed(5))
    text = ["".join(spec["symbols"][int(o)] for o in seq) for seq in obs]
    (tmp_path / "corpus.txt").write_text("\n\n".join(text[:32]))
    pairs = [
        {"prompt": t, "completions": ["a", "b"], "label": int(c), "meta": {"group": str(i)}}
        for i, (t, c) in enumerate(zip(text, comp.tolist()))
    ]
    (tmp_path / "pairs.jsonl").write_text("\n".join(json.dumps(p) for p in pairs))
    config = {
        "name": "icl",
        "model": {"name": str(tiny_hmm / "step12"), "device": "cpu"},
        "lens": {
            "train_text": "corpus.txt",
            "steps": 2,
            "tokens_per_step": 64,
            "max_texts": 16,
            "trajectory_prompt": "abca",
        },
        "elicit": {
            "dataset": "pairs.jsonl",
            "methods": ["lr", "random"],
            "read": "prompt",
            "layers": [0, 2],
            "transfer": False,
        },
        "bayes": {"spec": spec, "n": 32},
        "output_dir": "runs",
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    assert main(["run", str(tmp_path / "run.yaml")]) == 0
    (folder,) = (tmp_path / "runs").iterdir()
    df = read_table(folder / "results.parquet")
    stages = {extra_of(e).get("stage") for e in df["extra"]}
    assert {"lens", "elicit", "bayes"} <= stages, stages
    lr = df[(df["method"] == "lr") & (df["metric"] == "auroc")]
    assert len(lr) and lr["value"].between(0, 1).all()
    assert (df[df["metric"] == "belief_point"]["n"] == 1).all()
    r = ms.verify.run(folder)
    assert r.accepted, r.summary()


def test_report_draws_the_belief_simplex(tiny_hmm: Path) -> None:
    from mindscope.analyses.bayes import SIMPLEX_POINTS
    from mindscope.report.registry import build_sections
    from mindscope.report.sections.bayes import simplex_xy
    from mindscope.results import stamp

    spec = json.loads((tiny_hmm / "manifest.json").read_text())["info"]["data_spec"]
    h = ms.load_model(str(tiny_hmm / "step12"))
    rows = stamp(run_stage("bayes", h, {"spec": spec, "n": 48}).rows, h)
    pts = rows[rows["metric"] == "belief_point"]
    for ds in ("train", "heldout"):
        got = pts[pts["dataset"] == ds]
        assert 0 < len(got) <= SIMPLEX_POINTS
        e = extra_of(got["extra"].iloc[0])
        assert e["axis"] == "hmm" and len(e["true"]) == len(e["probe"]) == 2
        assert abs(sum(e["true"]) - 1) < 1e-3
    sections = {s.id: s for s in build_sections(rows)}
    figs = [f for f in sections["bayes"].figures if "simplex" in f.layout.title.text]
    assert [f.layout.title.text.split(": ")[-1] for f in figs] == ["train", "heldout"]
    # each panel: the simplex outline, then one marker per point
    markers = [t for t in figs[0].data if t.mode == "markers"]
    assert len(markers) == 2 and len(markers[0].x) == len(pts[pts["dataset"] == "train"])
    # the points sit where their beliefs put them: vertices map to the polygon's corners
    xs, ys = simplex_xy([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [1 / 3, 1 / 3, 1 / 3]])
    assert abs(xs[0]) < 1e-9 and abs(ys[0] - 1) < 1e-9 and abs(xs[2]) + abs(ys[2]) < 1e-9
    assert abs(xs[1] - 3**0.5 / 2) < 1e-9 and abs(ys[1] + 0.5) < 1e-9  # the third corner
    # the aggregate sections do not see the points
    assert all(
        "belief_point" not in str(f.to_dict())
        for s in sections.values()
        if s.id != "bayes"
        for f in s.figures
    )
