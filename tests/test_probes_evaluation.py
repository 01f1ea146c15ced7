"""Evaluation rows, transfer matrix and the quirky report on synthetic activations."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mindscope.errors import MindscopeError
from mindscope.probes.evaluation import (
    evaluate,
    fraction_gap_recovered,
    quirky_report,
    transfer_matrix,
)
from mindscope.probes.synthetic import planted_pairs
from mindscope.results import COLUMNS, to_frame

FAST = {"ccs": {"n_restarts": 3, "n_steps": 40}, "lr": {"Cs": (0.1, 10.0), "cv": 3}}


@pytest.fixture(scope="module")
def split():
    x, y, _ = planted_pairs(200, d=12, layers=3, seed=0)
    xt, yt, _ = planted_pairs(150, d=12, layers=3, seed=1)
    return x, y, xt, yt


def test_evaluate_rows(split):
    x, y, xt, yt = split
    rows = evaluate(
        x,
        y,
        xt,
        yt,
        methods=["lr", "ccs"],
        layers=[0, 2, 4],
        model="toy",
        dataset="planted",
        params=FAST,
        n_boot=100,
    )
    df = to_frame(rows)
    assert list(df.columns) == list(COLUMNS)
    assert set(df.method) == {"lr", "ccs", "random"}  # the random baseline is added
    assert set(df.metric) == {"auroc", "acc", "cal_acc", "ece"}
    assert sorted(df.layer.unique()) == [0, 2, 4]
    auc = df[df.metric == "auroc"]
    assert (auc.ci_low <= auc.value).all() and (auc.value <= auc.ci_high).all()
    assert (auc.n == 150).all()
    emb = [json.loads(e) for e in df[df.layer == 0].extra]
    assert all(e.get("baseline") == "embedding" for e in emb)
    lr = auc[auc.method == "lr"].value
    rand = auc[auc.method == "random"].value
    assert lr.min() > 0.95 and lr.min() > rand.max()
    acc = df[(df.metric == "acc") & (df.method == "lr")].value
    assert acc.min() > 0.85


def test_unsupervised_sign_reports_max(split):
    x, y, xt, yt = split
    rows = evaluate(
        x, y, xt, yt, methods=["crc"], unsupervised_sign=True, baselines=False, n_boot=0
    )
    df = to_frame(rows)
    assert {json.loads(e)["sign"] for e in df.extra} == {"max"}
    assert (df[df.metric == "auroc"].value >= 0.5).all()
    assert df.ci_low.isna().all()


def test_transfer_matrix(split):
    x, y, xt, yt = split
    # a second "dataset" whose truth direction differs: transfer should be worse than in-domain
    x2, y2, _ = planted_pairs(200, d=12, layers=3, seed=2, direction_seed=7)
    data = {"a": (x, y), "a_test": (xt, yt), "b": (x2, y2)}
    rows = transfer_matrix(
        data,
        train=["a", "b"],
        eval_on=["a_test", "b"],
        methods=["diffmean"],
        baselines=False,
        n_boot=0,
    )
    df = to_frame(rows)
    cells = {(json.loads(e)["train"], json.loads(e)["eval"]) for e in df.extra}
    assert cells == {("a", "a_test"), ("a", "b"), ("b", "a_test"), ("b", "b")}
    auc = df[df.metric == "auroc"]
    in_domain = auc[auc.split == "a_test"].loc[lambda d: d.extra.str.contains('"train": "a"')]
    cross = auc[auc.split == "a_test"].loc[lambda d: d.extra.str.contains('"train": "b"')]
    assert in_domain.value.mean() > cross.value.mean()
    with pytest.raises(MindscopeError, match="unknown train"):
        transfer_matrix(data, train=["zzz"])


def test_fraction_gap_recovered():
    assert fraction_gap_recovered(0.9, 0.1, 0.9) == pytest.approx(1.0)
    assert fraction_gap_recovered(0.1, 0.1, 0.9) == pytest.approx(0.0)
    assert fraction_gap_recovered(0.5, 0.1, 0.9) == pytest.approx(0.5)
    assert math.isnan(fraction_gap_recovered(0.5, 0.9, 0.9))


def _quirky_arrays(n: int = 480, d: int = 16, seed: int = 0):
    """Synthetic 'quirky' activations: a truth direction present in every context, a Bob
    direction, and an output that follows the persona's label (what an LM would say)."""
    g = torch.Generator().manual_seed(seed)
    dirs = torch.linalg.qr(torch.randn(d, 3, generator=g))[0].T  # truth, bob, persona
    persona = ["alice" if i % 2 else "bob" for i in range(n)]
    difficulty = ["easy" if (i // 2) % 2 else "hard" for i in range(n)]
    truth = torch.randint(0, 2, (n,), generator=g)
    bob = torch.where(torch.rand(n, generator=g) < 0.7, 1 - truth, truth)  # Bob mostly wrong
    s_t = (2 * truth - 1).float()
    s_b = (2 * bob - 1).float()
    p_sign = torch.tensor([1.0 if p == "alice" else -1.0 for p in persona])
    diff = s_t[:, None] * dirs[0] + 0.6 * s_b[:, None] * dirs[1]  # [n, d]
    shared = torch.randn(n, d, generator=g) + 2 * p_sign[:, None] * dirs[2]
    x = shared[:, None, :] + torch.stack([-diff / 2, diff / 2], 1)
    x = x + 0.3 * torch.randn(n, 2, d, generator=g)
    said = torch.where(torch.tensor([p == "alice" for p in persona]), truth, bob)
    logodds = 4 * (2 * said - 1).float() + torch.randn(n, generator=g)
    meta = [
        {"persona": p, "difficulty": dd, "truth": int(t), "bob_label": int(b)}
        for p, dd, t, b in zip(persona, difficulty, truth, bob)
    ]
    return torch.stack([x, x * 0.5 + torch.randn(n, 2, d, generator=g)]), meta, logodds


def test_quirky_report_recovers_truth_and_gap():
    x, meta, logodds = _quirky_arrays()
    rows = quirky_report(
        x, meta, lm_logodds=logodds, methods=["lr", "diffmean"], params=FAST, n_boot=50
    )
    df = to_frame(rows)
    lm = df[df.method == "lm"].set_index(["metric", "split"]).value
    assert lm[("auroc", "alice-hard")] > 0.9  # the model answers truthfully for Alice
    assert lm[("auroc_bob", "bob-hard")] > 0.9  # ... and follows Bob's labels for Bob
    assert lm[("auroc", "bob-hard")] < 0.5
    auc = df[(df.metric == "auroc") & (df.method == "lr")]
    assert auc.value.max() > 0.9  # the probe still reads the truth in Bob's context
    best = df[df.metric == "gap_recovered_best"].set_index("method").value
    assert set(best.index) == {"lr", "diffmean", "random"}
    assert best["lr"] > 0.7 and best["random"] < best["lr"]
    gap = df[(df.metric == "gap_recovered") & (df.method == "lr")]
    assert len(gap) == 2  # one per layer


def test_quirky_report_without_lm_and_bad_meta():
    x, meta, _ = _quirky_arrays(n=160)
    df = to_frame(quirky_report(x, meta, methods=["diffmean"], n_boot=0))
    assert not (df.method == "lm").any() and "auroc_bob" in set(df.metric)
    with pytest.raises(MindscopeError, match="lacks key 'bob_label'"):
        quirky_report(x, [{k: v for k, v in m.items() if k != "bob_label"} for m in meta])
    with pytest.raises(MindscopeError, match="only 0 examples"):
        quirky_report(x, [{**m, "persona": "alice"} for m in meta])
