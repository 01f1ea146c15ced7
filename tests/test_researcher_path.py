"""The researcher's path (issue 11): own data -> honest split -> flagged results -> report.

Each test pins one trap a new user fell into; every one fails on the behaviour before the fix.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from mindscope.cli import main
from mindscope.data.datasets import load_dataset_split
from mindscope.data.fields import Fields
from mindscope.data.loaders import SplitWarning, train_test_split, twin_key
from mindscope.errors import MindscopeError
from mindscope.report.summary import CHANCE_FLAG, flag_line, format_summary, summarize
from mindscope.results import Row, read_table, to_frame

CITIES = [
    ("Paris", "France"), ("Rome", "Italy"), ("Berlin", "Germany"), ("Madrid", "Spain"),
    ("Oslo", "Norway"), ("Lisbon", "Portugal"), ("Vienna", "Austria"), ("Dublin", "Ireland"),
    ("Athens", "Greece"), ("Warsaw", "Poland"), ("Prague", "Czechia"), ("Cairo", "Egypt"),
    ("Tokyo", "Japan"), ("Lima", "Peru"), ("Quito", "Ecuador"), ("Hanoi", "Vietnam"),
    ("Seoul", "Korea"), ("Nairobi", "Kenya"), ("Ottawa", "Canada"), ("Canberra", "Australia"),
]  # fmt: skip


def _statements(group: bool = True) -> list[dict[str, object]]:
    """40 statements: each city's fact and its negation (the twins of one group)."""
    recs: list[dict[str, object]] = []
    for city, country in CITIES:
        for neg, truth in (("", "true"), (" not", "false")):
            rec: dict[str, object] = {"claim": f"{city} is{neg} in {country}.", "truth": truth}
            if group:
                rec["pair_id"] = city
            recs.append(rec)
    return recs


def _write_jsonl(path: Path, recs: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    return path


def _write_csv(path: Path, recs: list[dict[str, object]]) -> Path:
    pd.DataFrame(recs).to_csv(path, index=False)
    return path


def test_unreadable_label_column_names_the_field(tmp_path, capsys):
    path = _write_csv(tmp_path / "mine.csv", _statements())
    argv = ["data", "check", str(path), "--template", "truefalse", "--text-field", "claim"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "label field 'label'" in err and "'truth'" in err and "--label-field" in err
    assert main([*argv, "--label-field", "truth", "--group-field", "pair_id"]) == 0
    out = capsys.readouterr().out
    assert "40 records" in out and "20 true (1), 20 false (0)" in out
    assert "20 groups" in out and "split: grouped" in out
    assert "'Paris is in France. This statement is true'" in out


def test_bad_label_value_names_the_field(tmp_path):
    recs = _statements()
    recs[3]["truth"] = "maybe"
    path = _write_jsonl(tmp_path / "bad.jsonl", recs)
    with pytest.raises(MindscopeError, match=r"record 4: .*'truth' = 'maybe'"):
        load_dataset_split(str(path), template="truefalse", fields=Fields("truth", "claim"))


def test_data_help_documents_the_format(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    for needle in ("JSONL", "CSV", "--label-field", "--group-field", "truefalse", "qa"):
        assert needle in out


def test_text_field_makes_prompts_without_a_template(tmp_path):
    recs = [{"q": f"Is {c} in {k}?", "label": i % 2} for i, (c, k) in enumerate(CITIES)]
    path = _write_jsonl(tmp_path / "q.jsonl", recs)
    ds = load_dataset_split(str(path), fields=Fields(text="q"))
    pairs = ds.train + ds.test
    assert {p.prompt for p in pairs} == {r["q"] for r in recs}
    assert pairs[0].completions == (" False", " True")


def test_grouped_split_keeps_twins_together(tmp_path):
    path = _write_jsonl(tmp_path / "g.jsonl", _statements())
    f = Fields(label="truth", text="claim", group="pair_id")
    for seed in range(5):
        ds = load_dataset_split(str(path), template="truefalse", fields=f, seed=seed)
        assert ds.method == "grouped" and not ds.warnings
        tr = {p.meta["group"] for p in ds.train}
        te = {p.meta["group"] for p in ds.test}
        assert tr.isdisjoint(te) and len(ds.test) == 10


def test_random_split_warns_when_twins_straddle(tmp_path):
    assert twin_key("Paris is not in France.") == twin_key("Paris is in France.")
    path = _write_jsonl(tmp_path / "r.jsonl", _statements(group=False))
    f = Fields(label="truth", text="claim")
    ds = load_dataset_split(str(path), template="truefalse", fields=f)
    assert ds.method == "random"
    assert ds.warnings and "twin" in ds.warnings[0]
    with pytest.warns(SplitWarning, match="twin"):
        train_test_split(ds.train + ds.test, 0.25, seed=0)


def test_split_field_renamed(tmp_path):
    recs = _statements()
    for i, r in enumerate(recs):
        r["part"] = "test" if i % 4 == 0 else "train"
    path = _write_jsonl(tmp_path / "s.jsonl", recs)
    f = Fields(label="truth", text="claim", split="part")
    ds = load_dataset_split(str(path), template="truefalse", fields=f)
    assert ds.method == "field" and len(ds.test) == 10


def test_config_has_the_field_options(tmp_path):
    from mindscope.runs.config import load_config

    path = _write_csv(tmp_path / "mine.csv", _statements())
    cfg = {
        "lens": {"enabled": False},
        "elicit": {"dataset": str(path), "template": "truefalse", "text_field": "claim"},
    }
    (tmp_path / "bad.yaml").write_text(json.dumps(cfg))
    with pytest.raises(MindscopeError, match="label field 'label'"):
        load_config(tmp_path / "bad.yaml")
    cfg["elicit"].update(label_field="truth", group_field="pair_id")
    (tmp_path / "ok.yaml").write_text(json.dumps(cfg))
    assert load_config(tmp_path / "ok.yaml").elicit.label_field == "truth"


def test_flags_few_examples_and_chance():
    assert "only 12 test examples" in flag_line("auroc", "lr", 0.9, 0.8, 0.95, 12, 0.5)
    assert CHANCE_FLAG in flag_line("auroc", "lr", 0.7, 0.55, 0.85, 400, 0.6)
    assert CHANCE_FLAG in flag_line("auroc", "lr", 0.6, 0.45, 0.75, 400, None)
    assert "below chance" in flag_line("auroc", "lr", 0.2, 0.1, 0.35, 400, 0.5)
    assert flag_line("auroc", "lr", 0.9, 0.85, 0.95, 400, 0.55) == ""
    assert flag_line("kl", "tuned", 0.1, math.nan, math.nan, 10, None) == ""
    rows = [
        Row("auroc", 0.7, "lr", 3, dataset="d", split="test", ci_low=0.5, ci_high=0.9, n=12),
        Row("auroc", 0.62, "random", 2, dataset="d", split="test", ci_low=0.4, ci_high=0.8, n=12),
    ]
    text = format_summary(summarize(to_frame(rows)))
    assert "flag" in text.splitlines()[0] and CHANCE_FLAG in text and "only 12" in text


@pytest.fixture(scope="module")
def elicit_out(tiny_dirs, tmp_path_factory):
    root = tmp_path_factory.mktemp("researcher")
    path = _write_csv(root / "mine.csv", _statements())
    out = root / "elicit"
    argv = [
        "elicit", "--model", str(tiny_dirs["gpt_neox"]), "--dataset", str(path),
        "--template", "truefalse", "--text-field", "claim", "--label-field", "truth",
        "--group-field", "pair_id", "--methods", "lr,diffmean", "--n-boot", "20",
        "--quiet", "--out", str(out),
    ]  # fmt: skip
    return out, argv


def test_elicit_own_data_flags_and_saves_predictions(elicit_out, capsys):
    out, argv = elicit_out
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "only 10 test examples" in text  # 40 statements, 25% held out: never trusted silently
    info = json.loads((out / "run.json").read_text())
    assert info["split"] == "grouped" and info["n_test"] == 10
    preds = pd.read_parquet(out / "predictions.parquet")
    df = read_table(out / "results.parquet")
    n_layers = df.layer.nunique()
    assert len(preds) == 3 * n_layers * 10  # lr, diffmean, random x layers x test examples
    assert set(preds.method) == {"lr", "diffmean", "random"}
    assert preds.credence.between(0, 1).all() and set(preds.label) <= {0, 1}
    # the saved credences are the scored ones: their AUROC is the table's
    from sklearn.metrics import roc_auc_score

    sel = preds[(preds.method == "lr") & (preds.layer == 1)]
    row = df[(df.method == "lr") & (df.layer == 1) & (df.metric == "auroc")].iloc[0]
    assert roc_auc_score(sel.label, sel.credence) == pytest.approx(row.value, abs=1e-9)


def test_report_works_on_elicit_folders_and_never_overwrites(elicit_out, capsys):
    out, argv = elicit_out
    if not (out / "results.parquet").exists():
        assert main(argv) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    first = Path(capsys.readouterr().out.strip())
    assert first == out / "report.html" and first.is_file()
    first.write_text("mine")
    assert main(["report", str(out)]) == 0
    second = Path(capsys.readouterr().out.strip())
    assert second == out / "report-2.html" and (out / "report.html").read_text() == "mine"
    assert main(["report", str(out), "--force"]) == 0
    assert (out / "report.html").read_text() != "mine"
    assert "only 10 test examples" in second.read_text()
    capsys.readouterr()
    assert main(["runs", str(out.parent)]) == 0
    listing = capsys.readouterr().out
    assert "[elicit, complete]" in listing and "test auroc, " in listing


def _auroc(method: str, layer: int, value: float, **kw: object) -> Row:
    return Row("auroc", value, method, layer, ci_low=value - 0.05, ci_high=value + 0.05, **kw)  # type: ignore[arg-type]


def test_methods_keep_their_colour_in_every_figure():
    from mindscope.report.plot import method_colour
    from mindscope.report.sections.pgr import pgr_figures
    from mindscope.report.sections.reporters import auroc_figures

    a = to_frame([_auroc(m, k, 0.6, split="test", n=100) for m in ("lr", "ccs") for k in (0, 1)])
    b = to_frame([Row("gap_recovered", 0.3, m, k) for m in ("ccs", "crc", "lr") for k in (0, 1)])
    colours: dict[str, set[str]] = {}
    for fig in auroc_figures(a) + pgr_figures(b):
        for tr in fig.data:
            if tr.mode == "lines+markers":
                colours.setdefault(tr.name, set()).add(tr.line.color)
    assert colours["lr"] == {method_colour("lr")} and colours["ccs"] == {method_colour("ccs")}
    assert method_colour("lr") != method_colour("ccs")


def test_transfer_matrix_layer_is_chosen_on_validation_not_test():
    from mindscope.report import build_sections

    rows = []
    for layer, test_auc, val_auc in ((1, 0.95, 0.6), (2, 0.7, 0.9)):
        for tr in ("alice-easy", "bob-easy"):
            for ev in ("alice-hard", "bob-hard"):
                # validation against the truth; reporters fitted on Bob's lies do not vote
                v = val_auc if tr.startswith("alice") else 1.5 - val_auc
                ex = {"train": tr, "eval": ev, "labels": "truth", "selection": "validation"}
                rows.append(Row("val_auroc", v, "lr", layer, split="validation", _extra=ex))
            for ev in ("alice-hard", "bob-hard"):
                rows.append(
                    Row("auroc", test_auc, "lr", layer, split=ev, _extra={"train": tr, "eval": ev})
                )
    (sec,) = [s for s in build_sections(to_frame(rows)) if s.id == "transfer"]
    title = sec.figures[0].layout.title.text
    assert "(layer 2)" in title and "validation" in title  # the test-best layer 1 is not used


def test_report_page_header_and_gap_caption_match_the_docs():
    from mindscope.report.page import render_html

    rows = [
        _auroc("lr", 2, 0.9, split="test", dataset="d", n=400),
        _auroc("random", 2, 0.55, split="test", dataset="d", n=400),
        Row("gap_recovered_best", 0.8, "lr", -1, split="bob-hard", dataset="q", n=200),
        Row("gap_recovered", 0.8, "lr", 2, split="bob-hard", dataset="q", n=200),
    ]
    page = render_html(to_frame(rows))
    assert "<section id='headline'>" in page
    assert "AUROC vs truth, test split" in page and "fraction of the AUROC gap recovered" in page
    docs = (Path(__file__).parents[1] / "docs" / "elicit.md").read_text()
    assert "AUROC_LM(Alice-hard) - AUROC_LM(Bob-hard)" in docs  # the definition the caption cites
    assert "answers on Alice-hard - AUROC of its answers on Bob-hard" in page


def test_results_tables_have_typed_extra_columns_and_query_together(tmp_path):
    from mindscope.results import write_table

    for i, (sel, best) in enumerate((("oracle", 3), ("validation", 5))):
        rows = [
            Row("gap_recovered_best", 0.4 + i / 10, "lr", -1, split="bob-hard", n=200,
                _extra={"selection": sel, "best_layer": best}),
            Row("auroc", 0.8, "lr", 2, split="test", n=300),
        ]  # fmt: skip
        (tmp_path / f"run{i}").mkdir()
        write_table(to_frame(rows), tmp_path / f"run{i}" / "results.parquet")
    df = read_table(tmp_path / "run0" / "results.parquet", typed=True)
    assert str(df.best_layer.dtype) == "Int64" and df.best_layer.tolist()[0] == 3
    assert df.best_layer.isna().tolist() == [False, True]
    assert all(str(df[c].dtype) == "string" for c in ("model", "extra", "selection"))
    duckdb = pytest.importorskip("duckdb")  # a dev dependency; the query docs/report.md shows
    glob = str(tmp_path / "*" / "results.parquet")
    got = duckdb.sql(
        "SELECT selection, best_layer, value FROM read_parquet(?, filename = true, "
        "union_by_name = true) "
        "WHERE metric = 'gap_recovered_best' ORDER BY value",
        params=[glob],
    ).fetchall()
    assert [(s, b) for s, b, _ in got] == [("oracle", 3), ("validation", 5)]


def test_trajectory_has_next_token_rank_and_side_by_side(tiny_dirs):
    import torch

    import mindscope as ms
    from mindscope.lenses import trajectory
    from mindscope.report.sections.trajectory import trajectory_figures, trajectory_rows

    h = ms.load_model(tiny_dirs["gpt2"], device="cpu")
    tr = trajectory(h, None, "a b c d")
    ids = h.tokenizer("a b c d", add_special_tokens=False)["input_ids"]
    # closed form at the last layer: the model's own next-token distribution
    with torch.no_grad():
        logp = h.forward(torch.tensor([ids])).float().log_softmax(-1)[0]
    k = len(tr.layers) - 1
    for t in range(len(ids) - 1):
        assert tr.next_probs[k, t] == pytest.approx(float(logp[t, ids[t + 1]].exp()), rel=1e-4)
        assert tr.next_ranks[k, t] == int((logp[t] > logp[t, ids[t + 1]]).sum()) + 1
    assert math.isnan(tr.next_probs[k, -1])
    rows = tr.to_rows() + [
        Row(r.metric, r.value, "tuned_lens", r.layer, model=r.model, _extra=json.loads(r.extra))
        for r in (to_frame(tr.to_rows()).itertuples())
    ]
    figs = trajectory_figures(trajectory_rows(to_frame(rows)))
    assert len(figs) == 3 and figs[-1].layout.title.text.startswith("Side by side")
    assert "actual next" in str(figs[0].data[0].customdata[k][0])


def test_disagree_auroc_is_scored_only_where_the_persona_lies():
    import torch

    from mindscope.analyses.predictions import disagree_rows, prediction_frame
    from mindscope.data.pairs import ContrastPair
    from mindscope.probes import evaluation as pe

    class Fixed:
        """A 'reporter' whose credence is feature 0 (a known answer to score)."""

        labels_used_ = True

        def predict_proba(self, x):
            return x[..., 0]

    truth = [1, 0, 1, 0, 1, 0, 1, 0, 1, 0]
    lies = [0, 0, 1, 1, 0, 0, 1, 1, 0, 1]  # Bob's label differs from the truth here
    pairs = [
        ContrastPair(f"q{i}", label=t, meta={"persona": "bob", "bob_label": (1 - t) if lie else t})
        for i, (t, lie) in enumerate(zip(truth, lies))
    ]
    # credence follows the truth exactly where Bob lies, is inverted elsewhere
    cred = [float(t) if lie else 1.0 - t for t, lie in zip(truth, lies)]
    x = torch.tensor(cred, dtype=torch.float64)[None, :, None]  # [1 layer, n, d=1]
    y = torch.tensor(truth)
    rows = disagree_rows(pe, {"fixed": Fixed()}, x, pairs, y, [3], n_boot=0)
    auc = [r for r in rows if r.metric == "auroc_disagree"]
    assert len(auc) == 1 and auc[0].value == 1.0 and auc[0].n == sum(lies)
    overall = pe.score_rows({"fixed": Fixed()}, x, y, layers=[3], n_boot=0)
    assert [r.value for r in overall if r.metric == "auroc"][0] <= 0.5  # the subset matters
    preds = prediction_frame({"fixed": Fixed()}, x, pairs, y, [3])
    assert preds.persona_label.tolist() == [p.meta["bob_label"] for p in pairs]
