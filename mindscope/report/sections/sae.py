"""Sparse autoencoders, from results rows only.

Rows (written by the ``sae`` stage, :mod:`mindscope.analyses.sae`): ``method`` ``sae:<arch>``,
``extra.site``, metrics ``l0``, ``fve``, ``dead_frac``, ``dense_frac``, ``shrinkage`` and, when
the SAE was spliced in, ``ce_recovered_zero|mean`` and ``kl_recovered_zero|mean``
-> *bars of loss recovered and dead fraction per architecture and site*, and a table of every
architecture's sparsity and reconstruction.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values

__all__ = ["SAE_METRICS", "sae_rows", "sae_content"]

SAE_METRICS = (
    "l0",
    "fve",
    "dead_frac",
    "dense_frac",
    "shrinkage",
    "ce_recovered_zero",
    "ce_recovered_mean",
    "kl_recovered_mean",
)
"""Metrics of the section, in table order."""


def sae_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the SAE section: the ``sae:<arch>`` methods' metrics."""
    method = df["method"].astype(str)
    return df[method.str.startswith("sae:") & metric_names(df).isin(SAE_METRICS)]


def sae_content(rows: pd.DataFrame) -> Content:
    """Bars per architecture (one figure per site and metric) and the summary table."""
    rows = rows.assign(site=extra_values(rows, "site", "").astype(str))
    figs: list[Any] = []
    for site, grp in rows.groupby("site", sort=True):
        for metric, ylabel in (
            ("ce_recovered_mean", "CE loss recovered (vs mean-ablation)"),
            ("dead_frac", "dead fraction"),
        ):
            sub = grp[grp["metric"] == metric]
            if len(sub):
                figs += plot.bars(sub, f"{ylabel} at {site}", ylabel)
    table = rows.pivot_table(index=["site", "method"], columns="metric", values="value")
    table = table[[m for m in SAE_METRICS if m in table.columns]].round(3).reset_index()
    return Content(figures=tuple(figs), table=table)


register(
    "sae",
    order=75,
    title="Sparse autoencoders: reconstruction, sparsity, loss recovered",
    caption="Each architecture's SAE at each site, on held-out tokens: L0 (active latents per "
    "token), fraction of variance explained, dead latents (never active on these tokens), "
    "dense latents (active on more than 10% of them), shrinkage (sum <x_hat, x> / sum <x, x>; "
    "below 1 when the SAE shrinks) and the loss recovered with the SAE spliced into the "
    "forward pass: (CE with the site ablated - CE with the SAE) / (CE ablated - clean CE), "
    "against zero- and mean-ablation (1: the SAE loses nothing; 0: no better than ablating).",
    select=sae_rows,
    render=sae_content,
)
