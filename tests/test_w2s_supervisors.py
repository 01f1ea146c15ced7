"""Supervisors place exactly the errors they promise, on any contrast pairs."""

from __future__ import annotations

import numpy as np
import pytest

from mindscope.data import ContrastPair, quirky_arith
from mindscope.errors import MindscopeError
from mindscope.w2s import (
    ArraySupervisor,
    FieldSupervisor,
    FunctionSupervisor,
    RuleSupervisor,
    TruthSupervisor,
    predicate,
    truth_of,
)
from mindscope.w2s.supervisors import check_labels, harden


def _pairs(n: int = 200) -> list[ContrastPair]:
    # a format unlike quirky-arith: the truth is the label, a colour in meta, a word in the prompt
    return [
        ContrastPair(
            f"item {i} is {'big' if i % 3 == 0 else 'small'}. True?",
            (" no", " yes"),
            label=i % 2,
            meta={"colour": "red" if i % 4 < 2 else "blue"},
        )
        for i in range(n)
    ]


def test_truth_of_reads_meta_truth_or_the_label() -> None:
    q = quirky_arith(16, seed=0)
    assert (truth_of(q) == [p.meta["truth"] for p in q]).all()
    assert (truth_of(q, "label") == [p.label for p in q]).all()
    assert (truth_of(_pairs(8)) == [i % 2 for i in range(8)]).all()
    with pytest.raises(MindscopeError, match="no meta.nope"):
        truth_of(q, "nope")


@pytest.mark.parametrize("acc", [0.5, 0.75, 0.9, 1.0])
def test_random_errors_hit_the_accuracy(acc: float) -> None:
    pairs = _pairs()
    y = truth_of(pairs)
    lab = RuleSupervisor(acc).label(pairs, y, split="train", seed=3)
    assert (lab == y).mean() == pytest.approx(acc)
    again = RuleSupervisor(acc).label(pairs, y, split="train", seed=3)
    assert (again == lab).all()
    if acc < 1:
        other = RuleSupervisor(acc).label(pairs, y, split="train", seed=4)
        assert (other != lab).any()


def test_slice_errors_stay_in_the_slice() -> None:
    pairs = _pairs()
    y = truth_of(pairs)
    lab = RuleSupervisor(0.8, "slice", "prompt~big").label(pairs, y, split="train", seed=0)
    wrong = np.nonzero(lab != y)[0]
    assert len(wrong) == 40
    assert all("big" in pairs[i].prompt for i in wrong)
    with pytest.raises(MindscopeError, match="only 67 pairs qualify"):
        RuleSupervisor(0.6, "slice", "prompt~big").label(pairs, y, split="train", seed=0)


def test_spurious_errors_follow_the_feature() -> None:
    pairs = _pairs()
    y = truth_of(pairs)
    lab = RuleSupervisor(0.75, "spurious", "meta.colour=red").label(pairs, y, split="t", seed=0)
    red = np.array([p.meta["colour"] == "red" for p in pairs], dtype=float)
    wrong = lab != y
    assert wrong.mean() == pytest.approx(0.25)
    assert (lab[wrong] == red[wrong]).all()  # every wrong label equals the feature
    assert np.corrcoef(lab, red)[0, 1] > np.corrcoef(y, red)[0, 1] + 0.2


def test_field_array_function_truth() -> None:
    q = quirky_arith(32, seed=1)
    y = truth_of(q)
    bob = FieldSupervisor("bob_label").label(q, y, split="train", seed=0)
    assert (bob == [p.meta["bob_label"] for p in q]).all()
    assert (TruthSupervisor().label(q, y, split="x", seed=0) == y).all()
    arr = ArraySupervisor({"train": np.ones(32) * 0.3})
    assert arr.label(q, y, split="train", seed=0).shape == (32,)
    with pytest.raises(MindscopeError, match="length 32, but the train split has 5 pairs"):
        arr.label(q[:5], y[:5], split="train", seed=0)
    with pytest.raises(MindscopeError, match="no labels for split 'test'"):
        arr.label(q, y, split="test", seed=0)
    fn = FunctionSupervisor(lambda ps: [float("Bob" in p.prompt) for p in ps])
    assert fn.label(q, y, split="train", seed=0).sum() == 16


def test_predicates_and_label_checks() -> None:
    p = ContrastPair("a + b", label=1, meta={"k": 3})
    assert predicate("meta.k=3")(p) and predicate("k=3")(p) and predicate("label=1")(p)
    assert predicate("prompt~\\+")(p) and not predicate("prompt~^b")(p)
    for bad in ("nothing", "=3", "prompt~("):
        with pytest.raises(MindscopeError, match="predicate"):
            predicate(bad)
    with pytest.raises(MindscopeError, match="a pair has no meta.z"):
        predicate("z=1")(p)
    with pytest.raises(MindscopeError, match="single class"):
        check_labels(np.zeros(5), 5)
    with pytest.raises(MindscopeError, match=r"shape \(4,\), expected \[5\]"):
        check_labels(np.array([0, 1, 0, 1]), 5)
    with pytest.raises(MindscopeError, match="in \\[0, 1\\]"):
        check_labels(np.array([0, 2.0]), 2)
    with pytest.raises(MindscopeError, match="need 'where'"):
        RuleSupervisor(0.8, "slice")
    assert (harden(np.array([0.0, 1.0, 1.0])) == [0, 1, 1]).all()
    # credences all below 0.5 keep their ranking at their own base rate
    assert (harden(np.array([0.1, 0.4, 0.3, 0.2])) == [0, 1, 0, 0]).all()
