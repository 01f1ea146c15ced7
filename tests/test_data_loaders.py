"""Contrast pairs from JSONL/CSV/records with templates; the built-in facts dataset."""

from __future__ import annotations

import csv
import json
import sys

import pytest

from mindscope.data import ContrastPair
from mindscope.data.facts import facts
from mindscope.data.loaders import (
    load_csv,
    load_hf,
    load_jsonl,
    load_pairs,
    save_jsonl,
    train_test_split,
)
from mindscope.data.templates import TEMPLATES, Template, parse_label, render
from mindscope.errors import MindscopeError


def test_jsonl_roundtrip(tmp_path):
    pairs = [
        ContrastPair("2 + 2 = 4. Alice:", (" False", " True"), 1, {"persona": "alice"}),
        ContrastPair("Is the sky green?", (" No", " Yes"), 0),
    ]
    path = save_jsonl(pairs, tmp_path / "p.jsonl")
    assert load_jsonl(path) == pairs
    assert load_pairs(path) == pairs


def test_jsonl_raw_records_with_template(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(
        json.dumps({"statement": "Paris is in France.", "label": "true", "src": "x"})
        + "\n\n"
        + json.dumps({"statement": "Paris is in Peru.", "label": False})
        + "\n"
    )
    pairs = load_jsonl(path, "truefalse")
    assert [p.label for p in pairs] == [1, 0]
    assert pairs[0].texts == (
        "Paris is in France. This statement is false",
        "Paris is in France. This statement is true",
    )
    assert pairs[0].meta == {"statement": "Paris is in France.", "src": "x"}
    with pytest.raises(MindscopeError, match="pass a template"):
        load_jsonl(path)


def test_csv_with_pattern_template_and_label_map(tmp_path):
    path = tmp_path / "nli.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["premise", "hypothesis", "gold"])
        w.writeheader()
        w.writerow({"premise": "A cat sleeps.", "hypothesis": "An animal rests.", "gold": "entail"})
        w.writerow({"premise": "A cat sleeps.", "hypothesis": "A dog barks.", "gold": "contra"})
    tpl = Template(
        "{premise} Question: {hypothesis} True or false?",
        label_field="gold",
        label_map={"entail": 1, "contra": 0},
    )
    pairs = load_csv(path, tpl)
    assert [p.label for p in pairs] == [1, 0]
    assert pairs[1].prompt == "A cat sleeps. Question: A dog barks. True or false?"


def test_csv_pair_columns(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text('prompt,completions,label\nHi,"["" no"", "" yes""]",1\nHo,,-1\n')
    pairs = load_pairs(path)
    assert pairs[0].completions == (" no", " yes") and pairs[0].label == 1
    assert pairs[1].label == -1


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_jsonl(tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a", "label": 1}\n{oops\n')
    with pytest.raises(MindscopeError, match="bad.jsonl:2"):
        load_jsonl(bad)
    with pytest.raises(MindscopeError, match="cannot tell the format"):
        load_pairs(tmp_path / "x.parquet")
    lab = tmp_path / "lab.jsonl"
    lab.write_text('{"prompt": "a", "label": "maybe"}\n')
    with pytest.raises(MindscopeError, match="record 1"):
        load_jsonl(lab)
    with pytest.raises(MindscopeError, match="lacks field"):
        render([{"text": "x"}], "truefalse")


def test_templates_and_labels():
    assert set(TEMPLATES) >= {"truefalse", "qa"}
    assert TEMPLATES["qa"].fields == ["question", "answer"]
    assert [parse_label(v) for v in (1, "0", "Yes", "no", True, "")] == [1, 0, 1, 0, 1, -1]
    with pytest.raises(MindscopeError):
        Template("{x}", completions=(" a",))  # type: ignore[arg-type]


def test_hf_loader_is_lazy_and_explains_missing_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # import fails as if not installed
    with pytest.raises(MindscopeError, match=r"pip install 'mindscope\[datasets\]'"):
        load_hf("some/dataset", "yesno")
    with pytest.raises(MindscopeError, match="needs a template"):
        load_pairs("hf:some/dataset")


def test_train_test_split_is_seeded_and_disjoint():
    pairs = facts()
    a_tr, a_te = train_test_split(pairs, 0.25, seed=1)
    b_tr, b_te = train_test_split(pairs, 0.25, seed=1)
    assert a_te == b_te and len(a_te) == 50 and len(a_tr) == 150
    assert not {p.prompt for p in a_tr} & {p.prompt for p in a_te}


def test_facts_dataset_is_balanced_and_deterministic():
    pairs = facts()
    assert len(pairs) == 200 and sum(p.label for p in pairs) == 100
    assert len({p.prompt for p in pairs}) == 200
    assert pairs == facts() and pairs != facts(seed=1)
    cats = {p.meta["category"] for p in pairs}
    assert cats == {"capital", "element", "animal", "continent", "sum"}
    true = {p.meta["statement"] for p in pairs if p.label == 1}
    assert "The capital of France is Paris." in true
    assert "Two plus two is four." in true
    assert len(facts(10)) == 10
    with pytest.raises(MindscopeError):
        facts(0)
