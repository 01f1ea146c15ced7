"""Weak-to-strong end to end on the shipped quirky-arith organism, scored against its truth:
a perfect supervisor's PGR is refused, a coin-flip supervisor leaves the student at chance,
random errors are corrected while the persona's systematic errors are imitated; the stage,
the CLI and one-line errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import mindscope as ms
from mindscope.cli import main
from mindscope.data import quirky_arith
from mindscope.errors import MindscopeError
from mindscope.w2s import (
    ArraySupervisor,
    FieldSupervisor,
    FineTunedStudent,
    RuleSupervisor,
    TruthSupervisor,
    run_w2s,
)

FAST = {"train_layers": 0, "steps": 40, "head_lr": 0.03, "eval_every": 10, "batch_size": 64}


@pytest.fixture(scope="module")
def strong() -> ms.ModelHandle:
    return ms.load_model("organism:quirky-arith")


@pytest.fixture(scope="module")
def data() -> tuple[list, list]:
    return quirky_arith(480, seed=11, split="train"), quirky_arith(240, seed=12, split="test")


@pytest.fixture(scope="module")
def result(strong, data, tmp_path_factory):  # noqa: ANN001, ANN201
    """Reporter students (cheap) on four supervisors over four seeds."""
    train, test = data
    sups = {
        "truth": TruthSupervisor(),
        "coin": RuleSupervisor(0.5),
        "random": RuleSupervisor(0.75),
        "persona": FieldSupervisor("label"),
    }
    return run_w2s(
        strong,
        train,
        test,
        sups,
        methods=["reporter"],
        seeds=4,
        supervisor_fraction=0.0,
        n_boot=200,
        store=str(tmp_path_factory.mktemp("store")),
    )


@pytest.fixture(scope="module")
def tuned(strong, data):  # noqa: ANN001, ANN201
    """Fine-tuned (head-only, few steps) students on two supervisors, one seed."""
    train, test = data
    sups = {"truth": TruthSupervisor(), "random": RuleSupervisor(0.75)}
    return run_w2s(
        strong,
        train,
        test,
        sups,
        methods=["ce"],
        seeds=1,
        student=FAST,
        supervisor_fraction=0.0,
        n_boot=100,
    )


def _value(res, sup: str, method: str, metric: str, seed="all", split="test") -> float:  # noqa: ANN001
    for r in res.rows:
        e = r._extra
        if (e["supervisor"], r.method, r.metric, e["seed"], r.split) == (
            sup,
            method,
            metric,
            seed,
            split,
        ):
            return r.value
    raise KeyError((sup, method, metric))


def test_perfect_supervisor_pgr_is_refused(result, tuned) -> None:  # noqa: ANN001
    for res, method in ((result, "reporter"), (tuned, "ce")):
        p = res.pgr[("truth", method, "auroc")]
        assert math.isnan(p.value) and p.refused
        assert _value(res, "truth", method, "auroc_weak") == 1.0
        assert f"truth/{method}/auroc" in res.info["refused"]


def test_coin_flip_supervisor_leaves_the_student_at_chance(result) -> None:  # noqa: ANN001
    # per seed a student fitted to noise reads some random direction, whose AUROC against a
    # truth that dominates the residual stream can sit far from 0.5 either way; over seeds the
    # sign is a coin flip too, so the mean sits at chance and PGR's interval holds 0
    auc = _value(result, "coin", "reporter", "auroc_student")
    assert abs(auc - 0.5) < 0.1, auc
    assert _value(result, "coin", "reporter", "auroc_ceiling") > 0.8
    p = result.pgr[("coin", "reporter", "auroc")]
    assert p.ci_low < 0.1 and abs(p.value) < 0.2


def test_fine_tuned_student_learns_from_noisy_labels(tuned) -> None:  # noqa: ANN001
    p = tuned.pgr[("random", "ce", "auroc")]
    assert p.refused is None and p.student > p.weak
    assert _value(tuned, "random", "ce", "best_step", seed=0) <= FAST["steps"]


def test_random_errors_corrected_systematic_errors_imitated(result) -> None:  # noqa: ANN001
    # the strong model reads the truth: uniform label noise is averaged away ...
    rep = result.pgr[("random", "reporter", "auroc")]
    assert rep.refused is None and rep.student > rep.weak + 0.05
    assert _value(result, "random", "reporter", "acc_weak_wrong") > 0.6
    # ... but Bob's systematic error is something the strong model represents: it is learned
    assert _value(result, "persona", "reporter", "acc_weak_wrong") < 0.3
    assert _value(result, "persona", "reporter", "imitation") > 0.7


def test_rows_and_predictions(result, data) -> None:  # noqa: ANN001
    _, test = data
    preds = result.predictions
    assert set(preds.columns) >= {"supervisor", "method", "seed", "truth", "weak", "student"}
    assert len(preds) == 4 * 4 * len(test)
    metrics = {r.metric for r in result.rows}
    assert {"pgr_auroc", "pgr_acc", "misfit", "gain", "misfit_gain_holds", "imitation"} <= metrics
    per_seed = [_value(result, "random", "reporter", "auroc_student", seed=s) for s in range(4)]
    assert _value(result, "random", "reporter", "auroc_student") == pytest.approx(np.mean(per_seed))


def test_student_does_not_touch_the_callers_model(strong, data) -> None:  # noqa: ANN001
    train, _ = data
    before = strong.rehash()
    y = np.array([p.meta["truth"] for p in train[:128]], dtype=float)
    st = FineTunedStudent(train_layers=1, steps=3, eval_every=1).fit(strong, train[:128], y)
    assert strong.rehash() == before
    assert st.model_.rehash() != before
    assert len(st.history_) == 4 and 0 <= st.best_step_ <= 3


def test_bad_inputs_are_one_line_errors(strong, data) -> None:  # noqa: ANN001
    train, test = data
    with pytest.raises(MindscopeError, match="unknown loss 'hinge'"):
        FineTunedStudent(loss="hinge")
    with pytest.raises(MindscopeError, match="unknown student method 'cee'.*did you mean 'ce'"):
        run_w2s(strong, train, test, {"r": RuleSupervisor()}, methods=["cee"])
    short = ArraySupervisor({"train": np.ones(10), "test": np.ones(len(test))})
    with pytest.raises(
        MindscopeError, match="train have length 10, but the train split has 480 pairs"
    ):
        run_w2s(
            strong,
            train,
            test,
            {"arr": short},
            methods=["reporter"],
            seeds=1,
            supervisor_fraction=0.0,
        )
    flat = ArraySupervisor({"train": np.zeros(len(train)), "test": np.zeros(len(test))})
    with pytest.raises(MindscopeError, match="single class"):
        run_w2s(
            strong,
            train,
            test,
            {"flat": flat},
            methods=["reporter"],
            seeds=1,
            supervisor_fraction=0.0,
        )


def test_stage_with_a_weak_organism(tmp_path: Path) -> None:
    from sweep_helpers import make_series

    weak = make_series(tmp_path / "weak") / "step12"
    from mindscope.analyses import run_stage
    from mindscope.results import extras

    out = run_stage(
        "w2s",
        ms.load_model("organism:quirky-arith"),
        {
            "n": 400,
            "n_test": 160,
            "seeds": 1,
            "methods": ["reporter"],
            "n_boot": 50,
            "supervisors": [{"kind": "weak-model", "model": str(weak)}, {"kind": "random"}],
        },
        store=str(tmp_path / "store"),
    )
    df = out.rows
    assert {"weak-model", "random-0.75"} <= {e["supervisor"] for e in extras(df)}
    overall = np.array([e.get("seed") == "all" for e in extras(df)])
    assert ((df.metric == "pgr_auroc") & overall).sum() == 2
    assert out.info["n_supervisor"] == 200 and "w2s-summary.json" in out.artefacts


def test_cli_run_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    args = [
        "w2s",
        "--model",
        "organism:quirky-arith",
        "--n",
        "320",
        "--n-test",
        "160",
        "--seeds",
        "2",
        "--methods",
        "reporter",
        "--n-boot",
        "50",
        "--quiet",
        "--store",
        str(tmp_path / "store"),
    ]
    assert (
        main([*args, "--out", str(out), "--supervisor", "random:0.7", "--supervisor", "truth"]) == 0
    )
    text = capsys.readouterr().out
    assert "random-0.7" in text and "refused" in text
    assert (out / "results.parquet").is_file() and (out / "w2s-predictions.parquet").is_file()
    assert main([*args, "--out", str(out), "--supervisor", "random"]) == 2  # exists
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "x"), "--supervisor", "coin:0.5"]) == 2
    assert "--supervisor 'coin:0.5'" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "y"), "--methods", "svm"]) == 2
    assert "unknown method 'svm'" in capsys.readouterr().err
    cfg = tmp_path / "c.yaml"
    cfg.write_text("supervisors: [{kind: slice, accuracy: 0.8}]\n")
    assert main([*args[:1], str(cfg), *args[1:], "--out", str(tmp_path / "z")]) == 2
    err = capsys.readouterr().err
    assert "needs a predicate" in err and str(cfg) in err  # the file is named
    assert (out / "run.json").is_file()
    for bad, msg in (
        (["--backend", "dask"], "--backend: unknown 'dask'"),
        (["--workers", "0"], "--workers: must be >= 1"),
        (["--lora-rank", "4", "--train-layers", "0"], "--lora-rank: needs trained blocks"),
        (["--steps", "0"], "--steps: must be >= 1"),
    ):
        assert main([*args, "--out", str(tmp_path / "b"), *bad]) == 2
        err = capsys.readouterr().err
        assert msg in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert not (tmp_path / "b").exists()  # nothing written before the config is checked
    assert main(["w2s", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "n")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_sweep_runs_the_stage_on_every_checkpoint(tmp_path: Path) -> None:
    """The strong model over checkpoints through the sweep machinery: one table, one PGR per
    checkpoint (a tiny 12-step organism, so only the plumbing is checked here)."""
    from sweep_helpers import copy_series, make_series

    from mindscope.results import extras

    series = copy_series(make_series(tmp_path / "q"), tmp_path / "s", [4, 12])
    res = ms.sweep(
        {
            "series": {"source": "folder", "name": str(series), "select": "all"},
            "stages": {
                "w2s": {
                    "n": 200,
                    "n_test": 96,
                    "seeds": 1,
                    "methods": ["reporter"],
                    "n_boot": 20,
                    "supervisors": [{"kind": "random", "accuracy": 0.75}],
                }
            },
            "out": str(tmp_path / "out"),
            "store": str(tmp_path / "store"),
            "random_init": False,
        }
    )
    df = res.table
    pgr = df[(df.metric == "pgr_auroc") & np.array([e.get("seed") == "all" for e in extras(df)])]
    assert sorted(pgr.step.tolist()) == [4, 12]


def test_report_section_reads_the_rows(result) -> None:  # noqa: ANN001
    pytest.importorskip("plotly")
    from mindscope.report.sections.w2s import w2s_render, w2s_rows
    from mindscope.results import to_frame

    rows = w2s_rows(to_frame(result.rows))
    content = w2s_render(rows)
    table = content.table.set_index("supervisor")
    assert set(table.index) == {"truth", "coin", "random", "persona"}
    assert table.loc["truth", "PGR [95% CI]"].startswith("refused: the ceiling is below")
    assert "refused" in content.warning and len(content.figures) == 1
    got = table.loc["random", "student"]
    assert got == pytest.approx(_value(result, "random", "reporter", "auroc_student"), abs=1e-3)
