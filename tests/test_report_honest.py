"""Every headline is the quantity its caption names: the layer of the quirky transfer chosen on
validation data (the output layer cannot win trivially), the random-direction null, the Bob-hard
headline rows, chance floors, sweeps at their final checkpoint, splits never mixed, labels in
``mindscope runs``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from sweep_helpers import config, make_series

from mindscope.analyses.elicit import select_layers
from mindscope.cli import main
from mindscope.probes.evaluation import fraction_gap_recovered, null_summary, random_null
from mindscope.probes.metrics import roc_auc
from mindscope.report import build_sections
from mindscope.report.sections.headline import bob_hard_lines, headline_table
from mindscope.report.summary import summarize
from mindscope.results import Row, extras, read_table, to_frame


# ---- the layer rule -------------------------------------------------------------------------
def _val(method: str, layer: int, train: str, ev: str, value: float) -> Row:
    return Row("val_auroc", value, method, layer, split="validation",
               _extra={"train": train, "eval": ev, "labels": "truth"})  # fmt: skip


def test_output_layer_cannot_win_by_reading_the_persona() -> None:
    """At the output layer a reporter fitted on Alice reads the persona's answer: perfect on
    Alice's cells, anti-truth on Bob's. A middle layer that reads the truth everywhere wins;
    Bob-fitted reporters (trained on Bob's lies) do not vote."""
    rows = []
    for ev in ("alice-easy", "alice-hard", "bob-easy", "bob-hard"):
        out = 1.0 if ev.startswith("alice") else 0.2
        for train in ("alice-easy", "alice-hard"):
            rows += [_val("lr", 3, train, ev, 0.85), _val("lr", 6, train, ev, out)]
        rows += [_val("lr", 6, "bob-easy", ev, 1.0), _val("lr", 3, "bob-easy", ev, 0.1)]
    assert select_layers(rows) == {"lr": 3}
    # the same validation numbers, had they been scored against each persona's own labels,
    # would pick the output layer: that was the old rule's failure
    own = [_val("lr", 6, "alice-easy", "alice-easy", 1.0), _val("lr", 3, "alice-easy",
           "alice-easy", 0.9)]  # fmt: skip
    assert select_layers(own) == {"lr": 6}
    # ties go to the lowest layer (the catalogue's one rule)
    tie = [_val("lr", 4, "alice-easy", "bob-hard", 0.8), _val("lr", 2, "alice-easy",
           "bob-hard", 0.8)]  # fmt: skip
    assert select_layers(tie) == {"lr": 2}


# ---- the random-direction null ---------------------------------------------------------------
def test_random_null_on_a_planted_direction() -> None:
    """One planted truth direction in 64 dimensions: a reporter along it beats every random
    direction (p = 1/201); the null's AUROCs sit above 0.5 (signs fitted on the labels) and far
    below the planted reporter's."""
    g = torch.Generator().manual_seed(0)
    n, d = 400, 64
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x[:, 0] += 3.0 * (2 * y - 1)  # the truth lives on coordinate 0
    null = random_null(x[:200], y[:200], x[200:], y[200:], seed=0)
    assert null.shape == (200,)
    planted = float(roc_auc(x[200:, 0], y[200:]))
    p95, p = null_summary(planted, null)
    assert planted > 0.98 and p == pytest.approx(1 / 201)
    assert p95 == pytest.approx(float(torch.quantile(null, 0.95)))
    assert 0.5 < float(null.median()) < p95 < planted
    # a value inside the null gets a large p-value
    assert null_summary(float(null.median()), null)[1] > 0.4
    # seeded: the same null twice, another seed another null
    assert torch.equal(null, random_null(x[:200], y[:200], x[200:], y[200:], seed=0))
    assert not torch.equal(null, random_null(x[:200], y[:200], x[200:], y[200:], seed=1))


# ---- the elicit stage's headline rows, end to end on a tiny organism -------------------------
@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_series(tmp_path_factory.mktemp("series") / "q")


@pytest.fixture(scope="module")
def elicit_rows(series: Path) -> pd.DataFrame:
    import mindscope as ms
    from mindscope.analyses import run_stage

    h = ms.load_model(str(series / "step12"))
    cfg = {"dataset": "quirky-arith", "n": 240, "n_test": 240, "read": "prompt",
           "methods": ["lr", "diffmean", "random"], "n_boot": 20}  # fmt: skip
    return run_stage("elicit", h, cfg, seed=0).rows


def test_selected_rows_are_the_transfer_cell_at_the_validation_layer(elicit_rows) -> None:
    df = elicit_rows
    rows = [Row(**{k: v for k, v in r.items() if k in Row.__dataclass_fields__})
            for r in df.to_dict("records")]  # fmt: skip
    chosen = select_layers(rows)
    sel = df[(df.metric == "auroc_selected") & (df.split == "bob-hard")]
    assert set(sel.method) == set(chosen) and len(sel)
    ex = extras(df)
    for r in sel.itertuples():
        assert r.layer == chosen[r.method]
        is_cell = pd.Series(
            [
                e.get("train") == "alice-easy"
                and e.get("labels") == "truth"
                and e.get("eval") == "bob-hard"
                for e in ex
            ],
            index=df.index,
        )
        cell = df[(df.metric == "auroc") & (df.method == r.method) & (df.layer == r.layer)
                  & (df.split == "bob-hard") & is_cell]  # fmt: skip
        assert r.value in set(cell.value)  # the same number as the matrix's cell
        null = df[(df.metric == "auroc_null_p95") & (df.method == r.method) & (df.split == r.split)]
        pv = df[(df.metric == "null_pvalue") & (df.method == r.method) & (df.split == r.split)]
        assert len(null) == len(pv) == 1 and 0.5 <= null.value.iloc[0] <= 1
        assert 1 / 201 <= pv.value.iloc[0] <= 1
        gap = df[(df.metric == "gap_recovered_selected") & (df.method == r.method)]
        if len(gap):
            ge = extras(gap)[0]
            want = fraction_gap_recovered(r.value, ge["lm_auroc_bob"], ge["lm_auroc_alice"])
            assert gap.value.iloc[0] == pytest.approx(want, nan_ok=True)
            chance = fraction_gap_recovered(0.5, ge["lm_auroc_bob"], ge["lm_auroc_alice"])
            assert ge["chance"] == pytest.approx(chance, nan_ok=True)
    # validation rows are scored against the truth on training-split examples only
    val = df[df.metric == "val_auroc"]
    assert len(val) and set(val.split) == {"validation"}
    assert all(e.get("labels") == "truth" for e in extras(val))


def test_headline_shows_the_bob_hard_lines_from_the_table(elicit_rows) -> None:
    """Each Bob-hard headline cell equals a direct query of the results table."""
    df = elicit_rows
    table = headline_table(summarize(df), df)
    bob = table[table.result.str.contains("reporter fitted on alice-easy")]
    sel = df[(df.metric == "auroc_selected") & (df.split == "bob-hard")]
    assert len(bob) == len(sel) > 0
    for r in sel.itertuples():
        line = bob[bob.method == r.method].iloc[0]
        assert line.value == f"{r.value:.3f}"
        assert line["where"].startswith(f"layer {r.layer} ")
        pv = df[(df.metric == "null_pvalue") & (df.method == r.method) & (df.split == r.split)]
        pv = pv.value.iloc[0]
        assert f"p = {pv:.3f}" in line["against chance"]
    model = table[table.method == "model"]
    lines = bob_hard_lines(df)
    assert len(model) == 1 and model.value.iloc[0] == f"{lines.lm_auroc_bob.iloc[0]:.3f}"
    # the oracle best-layer gap is not a headline any more; the lm line is not "(train ...)"
    assert not table.result.str.contains("train Alice-easy").any()


def test_test_split_headline_at_a_layer_chosen_on_held_out_training_pairs(elicit_rows) -> None:
    """The test-split headline is each reporter's test AUROC at the layer its refit on 80% of
    the training pairs scores best on the other 20% (never the test split's best layer), with
    a 200-direction random null at that layer; the headline and `mindscope runs` show exactly
    these rows."""
    from mindscope.report.sections.headline import test_lines
    from mindscope.runs.outputs import headline_numbers

    df = elicit_rows
    sel = df[(df.metric == "auroc_selected") & (df.split == "test")]
    assert set(sel.method) == {"lr", "diffmean"}  # the random baseline is the null instead
    table = headline_table(summarize(df), df)
    test_head = table[table.result == "AUROC vs truth, test split"]
    assert len(test_head) == len(sel)
    assert not table.result.str.contains("best layer on that split").any()
    nums = headline_numbers(df)
    for r in sel.itertuples():
        ex = extras(df.loc[[r.Index]])[0]
        assert "20% of the training split held out" in ex["selection"] and ex["n_directions"] == 200
        same = df[(df.metric == "auroc") & (df.split == "test") & (df.method == r.method)
                  & (df.layer == r.layer)]  # fmt: skip
        assert r.value in set(same.value)  # the fitted reporter's own test number
        line = test_head[test_head.method == r.method].iloc[0]
        assert line.value == f"{r.value:.3f}" and line["where"].startswith(f"layer {r.layer} ")
        pv = df[(df.metric == "null_pvalue") & (df.method == r.method) & (df.split == "test")]
        assert 1 / 201 <= pv.value.iloc[0] <= 1
        assert f"p = {pv.value.iloc[0]:.3f}" in line["against chance"]
        assert nums[f"test auroc, {r.method}"].startswith(f"{r.value:.3f} (L{r.layer} chosen")
    lines = test_lines(df)
    assert set(lines.method) == set(sel.method) and (lines["eval"] == "test").all()
    # the best layer on the test split is at least as high: the chosen one is never better
    for m in sel.method:
        best_test = df[(df.metric == "auroc") & (df.split == "test") & (df.method == m)].value.max()
        assert sel[sel.method == m].value.iloc[0] <= best_test


def test_transfer_matrix_and_gap_plot_use_the_selected_layer_and_floors(elicit_rows) -> None:
    df = elicit_rows
    secs = {s.id: s for s in build_sections(df)}
    chosen = df[(df.metric == "auroc_selected") & (df.split != "test")].set_index("method").layer
    titles = [f.layout.title.text for f in secs["transfer"].figures]
    for method, layer in chosen.items():
        if method == "random":
            continue
        assert any(t.startswith(f"Transfer matrix: {method} (layer {layer})") for t in titles)
    pgr = secs["pgr"].figures[0]
    dashed = [s for s in pgr.layout.shapes if s.line.dash == "dash"]
    assert len(dashed) == 1  # the constant probe's fraction
    assert any("null" in (t.name or "") for t in pgr.data)


# ---- sweeps -----------------------------------------------------------------------------------
def _sweep_folder(rows: pd.DataFrame, out: Path) -> Path:
    """A sweep folder as `mindscope sweep` leaves it: its manifest and its results table of
    checkpoints 0 and 12 (step 0: every value shifted) and a random-init control."""
    from mindscope.results import write_table
    from mindscope.sweeps.manifest import MANIFEST_FORMAT

    steps = []
    for step, rev, shift in ((0, "step0", -0.2), (12, "step12", 0.0), (-1, "random-init", -0.3)):
        part = rows.copy()
        part["step"], part["revision"] = step, rev
        part["value"] = part["value"] + shift
        steps.append(part)
    out.mkdir()
    write_table(pd.concat(steps, ignore_index=True), out / "results.parquet")
    checkpoints = {r: {"step": s, "weights_hash": "0" * 16, "duplicate_of": None}
                   for r, s in (("step0", 0), ("step12", 12))}  # fmt: skip
    done = {r: {"elicit": {"rows": f"rows/{r}.elicit.parquet"}} for r in checkpoints}
    MANIFEST_FORMAT.write(out / "manifest.json", {"stages": {"elicit": "x"}, "seed": 0,
                          "checkpoints": checkpoints, "done": done})  # fmt: skip
    return out


def test_report_of_a_sweep_folder(elicit_rows, tmp_path: Path, capsys) -> None:
    """`mindscope report` opens a sweep folder; the headline and the transfer matrix are the
    final checkpoint's; the across-time figure keeps splits apart and draws the random-init
    control dashed; `mindscope runs` lists it."""
    out = _sweep_folder(elicit_rows, tmp_path / "sw")
    assert main(["report", str(out)]) == 0
    assert Path(capsys.readouterr().out.strip()).is_file()
    assert main(["runs", str(tmp_path)]) == 0
    assert "[sweep, complete]" in capsys.readouterr().out
    table = read_table(out / "results.parquet")
    secs = {s.id: s for s in build_sections(table)}
    head = secs["headline"].table
    final = table[(table.step == 12) & (table.metric == "auroc_selected") & (table.split != "test")]
    for r in final.itertuples():  # the final model's numbers, not another step's
        line = head[(head.method == r.method) & head.result.str.contains("fitted on")]
        assert line.value.iloc[0] == f"{r.value:.3f}"
    time = secs["time"].figures
    auroc = [f for f in time if f.layout.title.text.startswith("auroc across")][0]
    lines = [t for t in auroc.data if t.mode and "lines" in t.mode]
    ctrl = [t for t in lines if "random-init" in t.name]
    assert ctrl and all(t.line.dash == "dash" for t in ctrl)
    lr = [t.name for t in lines
          if t.name.startswith("lr") and t not in ctrl and not t.name.endswith("CI")]  # fmt: skip
    splits = set(table[(table.metric == "auroc") & (table.method == "lr")].split)
    assert len(lr) == len(splits) > 1  # one line per split, never the best over splits


@pytest.mark.slow
def test_report_of_a_real_sweep(series: Path, tmp_path: Path) -> None:
    """The same on a sweep run here (slow: two checkpoints and the control, each with the
    transfer matrix and its random null)."""
    from mindscope.sweeps import parse_config, sweep

    out = tmp_path / "sw"
    cfg = config(series, tmp_path / "unused.txt", out, random_init=True)
    del cfg["stages"]["lens"]
    cfg["series"]["select"] = [0, 12]
    sweep(parse_config(cfg))
    table = read_table(out / "results.parquet")
    assert {0, 12} <= set(table.step) and "random-init" in set(table.revision)
    assert main(["report", str(out)]) == 0


def test_runs_labels_every_number(elicit_rows) -> None:
    from mindscope.runs.outputs import headline_numbers

    nums = headline_numbers(elicit_rows)
    bob = {k: v for k, v in nums.items() if k.startswith("bob-hard auroc")}
    assert bob and all("chosen on validation" in v and "random-direction p95" in v
                       for v in bob.values())  # fmt: skip
    test = {k: v for k, v in nums.items() if k.startswith("test auroc")}
    assert test and all("chosen on held-out training pairs" in v for v in test.values())
    # a table without the validation choice says its number is the test split's best layer
    old = elicit_rows[elicit_rows.split.astype(str) != "test"]
    old = pd.concat([old, elicit_rows[(elicit_rows.split == "test")
                                      & (elicit_rows.metric == "auroc")]])  # fmt: skip
    assert "best layer on the test split" in headline_numbers(old)["best test auroc"]


def test_seeds_are_not_flagged_as_test_examples() -> None:
    rows = [Row("auroc_tamper_within_k", 0.9, "lr", 1, split="test", n=10, ci_low=0.85,
                ci_high=0.95, _extra={"per_seed": [0.9] * 10})]  # fmt: skip
    rows += [Row("auroc", 0.9, "lr", 1, split="test", n=10, ci_low=0.85, ci_high=0.95)]
    s = summarize(to_frame(rows)).set_index("metric")
    assert s.loc["auroc_tamper_within_k", "flag"] == ""
    assert "only 10 test examples" in s.loc["auroc", "flag"]


def test_transductive_detector_carries_its_caveat() -> None:
    """QUE's rows say it scored a pool with a stated anomalous share; the summary flags them
    and the bar chart labels them."""
    from mindscope.audit.anomaly import evaluate_detectors

    g = torch.Generator().manual_seed(0)
    trusted = torch.randn(1, 200, 8, generator=g)
    clean = torch.randn(1, 60, 8, generator=g)
    anomalous = torch.randn(1, 60, 8, generator=g) + 2.0
    rows = evaluate_detectors(trusted, clean, anomalous, detectors=["mahalanobis", "que"],
                              n_boot=10, dataset="toy")  # fmt: skip
    df = to_frame(rows)
    s = summarize(df)
    que = s[(s.method == "que") & (s.metric == "audit_auroc")]
    maha = s[(s.method == "mahalanobis") & (s.metric == "audit_auroc")]
    assert que.flag.str.contains("transductive").all() and "50% anomalous" in que.flag.iloc[0]
    assert not maha.flag.str.contains("transductive").any()
    secs = {x.id: x for x in build_sections(df)}
    names = [t.name for f in secs["audits"].figures for t in f.data if t.type == "bar"]
    assert any("que (transductive" in n for n in names)
    assert any(n == "mahalanobis" for n in names)


def test_disagreement_pool_holds_each_prompt_once() -> None:
    from mindscope.audit.disagree import unique_prompts
    from mindscope.data import quirky_arith

    pool = quirky_arith(400, seed=1, split="test")
    assert len({p.prompt for p in pool}) < len(pool)  # the draw repeats prompts
    once = unique_prompts(pool)
    assert [p.prompt for p in once] == list(dict.fromkeys(p.prompt for p in pool))


def test_a_reporter_saved_by_elicit_ranks_prompts(series: Path, tmp_path: Path, capsys) -> None:
    """`elicit --read prompt` saves layered prompt reporters; `audit disagree --reporter`
    ranks a dataset with one at a chosen layer (each prompt once), and refuses a pair
    reporter or a layer it was not fitted on in one line."""
    import json as _json

    from mindscope.data import quirky_arith

    model = str(series / "step12")
    pairs = tmp_path / "pairs.jsonl"
    qa = quirky_arith(24, seed=1)
    lines = [_json.dumps({"prompt": p.prompt, "completions": list(p.completions),
                          "label": p.label}) for p in qa + qa[:4]]  # fmt: skip
    pairs.write_text("\n".join(lines) + "\n")
    e = tmp_path / "e"
    assert main(["elicit", "--model", model, "--dataset", "quirky-arith", "--n", "64",
                 "--read", "prompt", "--methods", "lr", "--no-transfer", "--n-boot", "0",
                 "--quiet", "--out", str(e)]) == 0  # fmt: skip
    d = tmp_path / "d"
    argv = ["audit", "disagree", "--model", model, "--reporter", str(e / "reporters" / "lr"),
            "--layer", "1", "--dataset", str(pairs), "--top", "100", "--quiet"]  # fmt: skip
    assert main([*argv, "--out", str(d)]) == 0
    from mindscope.results import extras, read_table

    df = read_table(d / "results.parquet")
    prompts = [x["prompt"] for x in extras(df[df.metric == "audit_disagreement"])]
    assert len(prompts) == len(set(prompts)) == len({p.prompt for p in qa})
    bad = ["audit", "disagree", "--model", model, "--reporter", str(e / "reporters" / "lr"),
           "--layer", "9", "--dataset", str(pairs), "--out", str(tmp_path / "x")]  # fmt: skip
    capsys.readouterr()
    assert main(bad) == 2 and not (tmp_path / "x").exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fitted on layers [0, 1, 2], not on layer 9" in err[0]
