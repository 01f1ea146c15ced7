"""Steering dose-response: behaviour against the multiplier, per layer, beside side effects.

Rows (written by the ``steer`` stage): ``flip_rate``, ``damage_rate`` and ``kl_neutral`` with
``extra.multiplier``, per ``layer``; ``steer_slope`` and ``wrong_way`` per layer; ``chosen_*``
for the picked dose.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["steering_rows", "steering_content"]

_METRICS = {"flip_rate", "damage_rate", "kl_neutral", "steer_slope", "wrong_way"}


def steering_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the steering section (the ``steer`` stage's)."""
    metric = metric_names(df)
    stage = extra_values(df, "stage")
    return df[(metric.isin(_METRICS) | metric.str.startswith("chosen_")) & (stage == "steer")]


def _curves(rows: pd.DataFrame) -> Any:
    go = plot.go()
    fig = plot.subplots(
        rows=1, cols=2, subplot_titles=("behaviour", "side effect (KL, nats/token)")
    )
    sub = rows[rows["metric"].isin(["flip_rate", "damage_rate", "kl_neutral"])].copy()
    sub["multiplier"] = pd.to_numeric(extra_values(sub, "multiplier"), errors="coerce")
    for i, (layer, g) in enumerate(sub.groupby("layer", sort=True)):
        colour = plot.series_colour(i)
        for metric, col, dash in (
            ("flip_rate", 1, "solid"),
            ("damage_rate", 1, "dot"),
            ("kl_neutral", 2, "solid"),
        ):
            m = g[g["metric"] == metric].sort_values("multiplier")
            if m.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=m["multiplier"],
                    y=m["value"],
                    mode="lines+markers",
                    name=f"layer {layer} {metric.split('_')[0]}",
                    line={"color": colour, "dash": dash},
                    error_y={
                        "type": "data",
                        "symmetric": False,
                        "array": (m["ci_high"] - m["value"]).clip(lower=0),
                        "arrayminus": (m["value"] - m["ci_low"]).clip(lower=0),
                        "thickness": 1,
                    },
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="multiplier")
    return plot.layout(fig, "Dose-response per layer", "multiplier", "rate")


def steering_content(rows: pd.DataFrame) -> Content:
    """Dose-response curves (flip solid, damage dotted) beside the KL on neutral text, and a
    table of the per-layer steerability and the chosen dose."""
    per_layer = rows[rows["metric"].isin(["steer_slope", "wrong_way"])]
    table = per_layer.pivot_table(index="layer", columns="metric", values="value").reset_index()
    chosen = rows[rows["metric"].str.startswith("chosen_")]
    caption = ""
    if not chosen.empty:
        c = {r.metric.removeprefix("chosen_"): float(r.value) for r in chosen.itertuples()}
        nan = float("nan")
        budget = extra_values(chosen, "kl_budget").iloc[0]
        caption = (
            f"Chosen dose (largest flip - damage within KL {budget} nats/token): layer "
            f"{int(chosen['layer'].iloc[0])}, multiplier {c.get('multiplier', nan):g}, flip "
            f"{c.get('flip_rate', nan):.3f}, damage {c.get('damage_rate', nan):.3f}, KL "
            f"{c.get('kl_neutral', nan):.3f}."
        )
    return Content((_curves(rows),), caption=caption, table=table.round(3))


register(
    "steering-dose",
    order=80,
    title="Steering: dose-response against a known truth",
    caption="Per layer, the share of examples whose answer the vector should flip that it "
    "flips (solid) and the share it should leave that it changes (dotted), with Wilson 95% "
    "intervals, against the multiplier; right: the KL from the unsteered model on neutral "
    "text. The table gives the steerability slope (Tan et al. 2024: per-example slope of the "
    "logit difference towards the target, mean) and the share of examples moving the wrong "
    "way.",
    select=steering_rows,
    render=steering_content,
)
