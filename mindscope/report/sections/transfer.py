"""Quirky transfer matrix: reporters trained on one distribution, scored on another.

Rows: ``metric`` in :data:`TRANSFER_METRICS`, or ``auroc`` whose ``extra`` has ``train`` and
``eval`` (and ``labels`` absent or ``"truth"``): one cell per ``(extra.train, extra.eval)``.
``val_auroc`` rows (``extra.train`` set, ``split == "validation"``: a held-out part of each
training cell) choose the layer each method's matrix is drawn at.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import final_step, is_transfer_cell, metric_names
from mindscope.results import extras

__all__ = ["TRANSFER_METRICS", "transfer_rows", "transfer_figures"]

TRANSFER_METRICS = frozenset({"transfer_auroc", "quirky_transfer_auroc"})
"""Metric names of a transfer cell (besides ``auroc`` rows with ``extra.train``/``eval``)."""


def transfer_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Cells of the quirky transfer matrix, with ``train``/``eval`` columns from ``extra``, and
    the ``val_auroc`` rows (``eval == ""``) that choose the layer."""
    df = final_step(df)
    m = metric_names(df)
    mask = m.isin(TRANSFER_METRICS) | (m.isin({"auroc", "auc"}) & is_transfer_cell(df))
    sub = df[mask].copy()
    ex = extras(sub)
    sub["train"] = [str(e.get("train", "")) for e in ex]
    sub["eval"] = [str(e.get("eval", "")) for e in ex]
    # cells scored against another label set than the truth (e.g. Bob's) are not the matrix
    truth = pd.Series([e.get("labels", "truth") == "truth" for e in ex], index=sub.index)
    cells = sub[(sub["train"] != "") & (sub["eval"] != "") & truth]
    # the layers chosen for the transfer headline (not the test-split line's own choice)
    val = df[m.isin({"val_auroc", "auroc_selected"}) & (df["split"].astype(str) != "test")].copy()
    if val.empty:
        return cells
    val["train"] = [str(e.get("train", "")) for e in extras(val)]
    val["eval"] = ""
    return pd.concat([cells, val])


def _pick_layer(grp: pd.DataFrame) -> tuple[int, str]:
    """The layer one method's matrix is drawn at, and how it was chosen: the layer the
    elicit stage chose on validation data for the headline (``auroc_selected`` rows; its rule
    in their ``extra.selection``); else the best mean validation AUROC against the truth of
    the reporters fitted on truthful (Alice) cells (``val_auroc`` rows); else the layer with
    the most cells (ties: the lowest layer); never the test values."""
    m = metric_names(grp)
    sel = grp[m == "auroc_selected"]
    if len(sel):
        rule = str(extras(sel.iloc[:1])[0].get("selection", "chosen on validation data"))
        return int(sel["layer"].iloc[0]), f"the headline's layer: {rule}"
    val = grp[m == "val_auroc"]
    ex = extras(val)
    truthful = [str(e.get("labels", "")) == "truth" and str(e.get("train", "")).startswith(
        "alice") for e in ex]  # fmt: skip
    if any(truthful):
        val = val[truthful]
        mean = val.groupby("layer")["value"].mean()
        best = mean[mean == mean.max()]
        return int(best.index.min()), (
            "best mean validation AUROC vs truth of the reporters fitted on Alice's cells"
        )
    cells = grp.groupby("layer")["value"].size()
    best = cells[cells == cells.max()]
    return int(best.index.min()), "no validation split: the layer scored on most cells"


def transfer_figures(rows: pd.DataFrame) -> list[Any]:
    """Quirky transfer matrix (train distribution x eval distribution), one heatmap per method."""
    if rows.empty:
        return []
    go = plot.go()
    figs = []
    cell_rows = rows[rows["eval"] != ""]
    n_cells = cell_rows.groupby("method", dropna=False)[["train", "eval"]].apply(
        lambda g: len(g.drop_duplicates())
    )
    for method, grp in rows.groupby("method", dropna=False, sort=True):
        if method not in n_cells or n_cells[method] == 1 < n_cells.max():
            continue  # a lone cell (e.g. a baseline scored on one transfer only) is no matrix
        layer, how = _pick_layer(grp)
        grp = grp[grp["eval"] != ""]
        cells = grp[grp["layer"] == layer].groupby(["train", "eval"])["value"].mean().unstack()
        z = cells.to_numpy(float)  # [train, eval]
        text = [[("" if math.isnan(v) else f"{v:.2f}") for v in row] for row in z]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=[str(c) for c in cells.columns],
                y=[str(i) for i in cells.index],
                text=text,
                texttemplate="%{text}",
                colorscale="RdBu",
                zmin=0.0,
                zmax=1.0,
                colorbar={"title": {"text": "AUROC"}},
                hovertemplate="train %{y} → eval %{x}: %{z:.3f}<extra></extra>",
            )
        )
        where = f"layer {layer}" if layer >= 0 else "all layers"
        title = f"Transfer matrix: {method} ({where})<br><sub>layer: {how}</sub>"
        plot.layout(fig, title, "evaluated on", "trained on")
        fig.update_yaxes(autorange="reversed")
        figs.append(fig)
    return figs


register(
    "transfer",
    order=40,
    title="Quirky transfer matrix",
    caption="AUROC against the truth of a reporter trained on one distribution (rows, with that "
    "persona's labels) and evaluated on another (columns), e.g. trained on Alice's easy "
    "questions and tested on Bob's hard ones. Each method's matrix is drawn at one layer, "
    "never chosen on the test "
    "cells shown: the layer of the headline's Bob-hard line, chosen on held-out training "
    "examples scored against the truth (so the output layer, which reads each persona's "
    "answer, cannot win trivially); the subtitle says which. 'random' is the random-direction "
    "baseline. A sweep shows its final checkpoint.",
    select=transfer_rows,
    render=transfer_figures,
)
