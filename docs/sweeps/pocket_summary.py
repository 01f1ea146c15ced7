"""Summarise a pocket-lm lens sweep and draw docs/sweeps-pocket.png (docs/sweeps.md).

    python docs/sweeps/pocket_summary.py runs/sweep-pocket-lm/results.parquet \
        [--png docs/sweeps-pocket.png]

Prints, per layer below the last: the tuned lens's and the logit lens's held-out KL (nats) at
every step, the logit / tuned ratio, the first step where the ratio reaches 2 and the first
from which it stays >= 2, and the tuned lens's peak KL. With ``--png`` it draws the tuned-lens
KL against the step (log axes) and a layer x step heatmap of log2(logit-lens KL / tuned-lens
KL) (1 = the tuned lens is 2x better), screenshotted by headless Chromium
(``$MINDSCOPE_CHROMIUM`` or ``chromium``).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pandas as pd

from mindscope.report.sections.time_layers import heatmap_figures, metric_vs_step_figures


def kl_grid(rows: pd.DataFrame, method: str) -> pd.DataFrame:
    """Held-out KL of ``method``: ``[layer, step]`` (random-init control left out)."""
    sel = (rows["metric"] == "kl") & (rows["method"] == method) & (rows["step"] >= 0)
    return rows[sel].pivot_table(index="layer", columns="step", values="value", aggfunc="mean")


def first_stable(ratio: pd.Series, thresh: float = 2.0) -> int | None:
    """The first step from which ``ratio`` stays >= ``thresh`` at every later step."""
    ok = ratio >= thresh
    for i, s in enumerate(ratio.index):
        if ok.iloc[i:].all():
            return int(s)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("results", help="a lens sweep's results.parquet")
    p.add_argument("--png", help="write the figure here (needs Chromium)")
    args = p.parse_args()
    rows = pd.read_parquet(args.results)
    tuned, logit = kl_grid(rows, "tuned_lens"), kl_grid(rows, "logit_lens")
    last = int(tuned.index.max())
    steps = [int(s) for s in tuned.columns]
    print("steps:", " ".join(map(str, steps)))
    ctrl = rows[(rows["revision"] == "random-init") & (rows["metric"] == "kl")]
    if not ctrl.empty:
        c = ctrl[ctrl["layer"] < last].groupby("method")["value"].agg(["min", "max"])
        print("random-init control KL (layers < last):", c.round(4).to_dict("index"))
    ratio_rows = []
    for layer in tuned.index:
        if layer == last:
            continue
        t, g = tuned.loc[layer], logit.loc[layer]
        r = g / t
        peak = int(t.idxmax())
        print(
            f"layer {layer}: tuned " + " / ".join(f"{v:.3f}" for v in t)
            + "\n         logit " + " / ".join(f"{v:.3f}" for v in g)
            + "\n         ratio " + " / ".join(f"{v:.2f}" for v in r)
            + f"\n         tuned peak {t.max():.3f} at step {peak}, last {t.iloc[-1]:.3f} "
            f"({'falls' if t.iloc[-1] < t.max() else 'does not fall'} after the peak, "
            f"{t.iloc[-1] / t.max():.2f} of it); logit/tuned >= 2 first at step "
            f"{next((int(k) for k, v in r.items() if v >= 2), None)}, for good from step "
            f"{first_stable(r)}"
        )  # fmt: skip
        for s, v in r.items():
            ratio_rows.append({"layer": layer, "step": int(s), "value": math.log2(float(v))})
    if not args.png:
        return
    rr = pd.DataFrame(ratio_rows).assign(
        metric="log2 ratio",
        method="logit-lens KL / tuned-lens KL",
        split=None,
        revision="",
        extra="",
    )
    below = rows[rows["layer"] < last]  # the last layer's lenses are the model's output: KL 0
    figs = metric_vs_step_figures(below, "kl", "tuned_lens") + heatmap_figures(
        rr, "log2 ratio", "logit-lens KL / tuned-lens KL"
    )
    figs[0].update_yaxes(type="log", title="tuned-lens KL (nats, log)")
    figs[1].update_traces(zmin=0, zmax=8, colorbar={"title": "log2 ratio<br>(1 = 2x)"})
    chromium = os.environ.get("MINDSCOPE_CHROMIUM") or shutil.which("chromium")
    if chromium is None:
        raise SystemExit("--png needs Chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        html = Path(tmp) / "fig.html"
        parts = [f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figs)]
        html.write_text("<html><body style='margin:0'>" + "".join(parts) + "</body></html>")
        out = Path(args.png).resolve()
        subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--screenshot={out}", "--window-size=900,790", "--virtual-time-budget=5000",
             html.as_uri()],
            check=True, capture_output=True,
        )  # fmt: skip
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
