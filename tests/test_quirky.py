"""The quirky addition dataset (Mallen et al. 2023): cross-tab, Bob's rule, splits, determinism."""

from __future__ import annotations

from collections import Counter

import pytest

from mindscope.data import ContrastPair, quirky_arith
from mindscope.data.quirky import bob_sum
from mindscope.errors import MindscopeError


def test_bob_sum_adds_one_to_the_leading_digit() -> None:
    assert bob_sum(357) == 457
    assert bob_sum(95) == 105
    assert bob_sum(9) == 10
    assert bob_sum(1000) == 2000


@pytest.mark.parametrize("persona", [None, "alice", "bob"])
def test_crosstab_follows_the_paper_for_each_persona(persona: str | None) -> None:
    pairs = quirky_arith(800, seed=3, persona=persona)
    personas = [persona] if persona else ["alice", "bob"]
    for who in personas:
        mine = [p for p in pairs if p.meta["persona"] == who]
        assert len(mine) == (800 if persona else 400)
        tab = Counter((p.meta["alice_label"], p.meta["bob_label"]) for p in mine)
        assert tab[(1, 0)] == len(mine) // 4
        assert tab[(0, 1)] == len(mine) // 4
        assert tab[(0, 0)] == len(mine) // 2
        assert tab[(1, 1)] == 0


def test_labels_follow_alice_truth_and_bob_rule() -> None:
    for p in quirky_arith(1000, seed=1):
        a, b, c = p.meta["a"], p.meta["b"], p.meta["c"]
        assert p.prompt == f"{a} + {b} = {c}. {p.meta['persona'].capitalize()}:"
        assert p.completions == (" False", " True")
        assert p.meta["truth"] == p.meta["alice_label"] == int(c == a + b)
        assert p.meta["bob_label"] == int(c == bob_sum(a + b))
        # Bob's true sum has exactly the leading digit one too high, the rest unchanged.
        if p.meta["bob_label"]:
            assert str(c).endswith(str(a + b)[1:])
            assert c - (a + b) == 10 ** (len(str(a + b)) - 1)
        expected = p.meta["alice_label"] if p.meta["persona"] == "alice" else p.meta["bob_label"]
        assert p.label == expected


def test_distractors_change_exactly_one_digit() -> None:
    for p in quirky_arith(400, seed=2):
        kind, a, b, c = p.meta["kind"], p.meta["a"], p.meta["b"], p.meta["c"]
        if kind.endswith("distractor"):
            base = str(a + b) if kind == "true_distractor" else str(bob_sum(a + b))
            assert len(str(c)) == len(base)
            assert sum(x != y for x, y in zip(str(c), base)) == 1
            assert p.meta["alice_label"] == p.meta["bob_label"] == 0


def test_difficulty_is_the_digit_count_of_the_smaller_operand() -> None:
    kw = {"max_digits": 3, "easy_max_digits": 1, "hard_min_digits": 3}
    easy = quirky_arith(200, seed=0, difficulty="easy", **kw)
    hard = quirky_arith(200, seed=0, difficulty="hard", **kw)
    assert all(min(len(str(p.meta["a"])), len(str(p.meta["b"]))) == 1 for p in easy)
    assert all(min(len(str(p.meta["a"])), len(str(p.meta["b"]))) == 3 for p in hard)
    assert {p.meta["difficulty"] for p in easy} == {"easy"}
    assert {p.meta["difficulty"] for p in hard} == {"hard"}
    mixed = quirky_arith(400, seed=0, **kw)
    assert {p.meta["difficulty"] for p in mixed} == {"easy", "medium", "hard"}
    assert all(p.meta["digits"] == min(len(str(p.meta["a"])), len(str(p.meta["b"]))) for p in mixed)


def test_train_and_test_splits_share_no_operand_pair() -> None:
    train = quirky_arith(2000, seed=0, split="train")
    test = quirky_arith(300, seed=0, split="test")
    key = lambda p: (min(p.meta["a"], p.meta["b"]), max(p.meta["a"], p.meta["b"]))  # noqa: E731
    assert not {key(p) for p in train} & {key(p) for p in test}


def test_deterministic_for_a_seed() -> None:
    assert quirky_arith(64, seed=5) == quirky_arith(64, seed=5)
    assert quirky_arith(64, seed=5) != quirky_arith(64, seed=6)
    assert all(isinstance(p, ContrastPair) for p in quirky_arith(8))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n": -1},
        {"n": 4, "persona": "carol"},
        {"n": 4, "difficulty": "medium"},
        {"n": 4, "split": "val"},
        {"n": 4, "easy_max_digits": 2, "hard_min_digits": 2},
    ],
)
def test_bad_arguments_raise(kwargs: dict) -> None:
    with pytest.raises(MindscopeError):
        quirky_arith(**kwargs)
