"""The "Worst-case audits" section: figures built only from ``audit_*`` rows of the results
table (as written by :mod:`mindscope.audit`), or rows with ``split == "audit"``.

* ``audit_auroc`` / ``audit_recall@<f>fpr`` at ``layer == -1`` (aggregated over layers): bars
  per task (``dataset``) and detector (``method``), with the AUROC's 95% interval;
* ``audit_roc_tpr`` (``extra.fpr``): ROC curves per task, one line per detector;
* ``audit_hist`` (``extra.group`` clean/anomalous, ``extra.lo``/``extra.hi``): score histograms
  of trusted-kind vs anomalous inputs per task and detector;
* ``audit_precision@<k>``: disagreement-search precision by layer per method;
* ``audit_disagreement`` (``extra.rank``, ``extra.prompt``, ...): a table of the top-ranked
  examples;
* ``audit_monitor_*``: a table of monitor thresholds, FPR and recall;
* ``audit_flag_jaccard`` / ``audit_score_spearman``: a table of where detectors disagree.

Any other ``audit*`` metric (or ``split == "audit"`` row) is drawn by layer if measured per
layer, else as bars per method (:func:`generic_audit_figures`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from mindscope.metrics_catalog import best
from mindscope.report import plot
from mindscope.report.registry import register
from mindscope.report.rows import metric_names
from mindscope.results import extra_values, extras

__all__ = ["audit_rows", "audit_section_figures", "generic_audit_figures", "OWN_METRICS"]

_OWN_PREFIXES = (
    "audit_auroc",
    "audit_recall@",
    "audit_roc_tpr",
    "audit_hist",
    "audit_precision@",
    "audit_disagreement",
    "audit_monitor_",
    "audit_flag_jaccard",
    "audit_score_spearman",
)
OWN_METRICS = _OWN_PREFIXES
"""Metric prefixes this module draws (the rest go to the generic audit figures)."""


def _own(metric: pd.Series) -> pd.Series:
    m = metric.astype("string").str.lower()
    return m.apply(lambda s: any(str(s).startswith(p) for p in _OWN_PREFIXES)).astype(bool)


def audit_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of the worst-case audit section: ``metric`` starting with ``audit`` or
    ``split == "audit"``."""
    split = df["split"].astype("string").str.lower()
    return df[metric_names(df).str.startswith("audit") | (split == "audit").fillna(False)]


def _extra_col(rows: pd.DataFrame, key: str, default: Any = None) -> list[Any]:
    return extra_values(rows, key, default).tolist()


def _detector_bars(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    out: list[Any] = []
    agg = rows[rows["layer"] == -1]
    for metric in sorted(
        m for m in agg["metric"].unique() if m.startswith(("audit_auroc", "audit_recall@"))
    ):
        sub = agg[agg["metric"] == metric]
        fig = go.Figure()
        for method, grp in sub.groupby("method", sort=True):
            grp = grp.sort_values("dataset")
            err = None
            if grp["ci_high"].notna().any():
                err = {
                    "type": "data",
                    "symmetric": False,
                    "array": (grp["ci_high"] - grp["value"]).tolist(),
                    "arrayminus": (grp["value"] - grp["ci_low"]).tolist(),
                }
            fig.add_bar(
                x=grp["dataset"].tolist(),
                y=grp["value"].tolist(),
                name=str(method),
                marker_color=plot.method_colour(str(method)),
                error_y=err,
            )
        label = metric.removeprefix("audit_")
        plot.layout(fig, f"Anomaly detection: {label} (aggregated over layers)", "task", label)
        fig.update_layout(barmode="group", yaxis_range=[0, 1.05])
        out.append(fig)
    return out


def _roc_curves(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    out: list[Any] = []
    roc = rows[rows["metric"] == "audit_roc_tpr"].copy()
    if roc.empty:
        return out
    roc["fpr"] = _extra_col(roc, "fpr", float("nan"))
    for dataset, grp in roc.groupby("dataset", sort=True):
        fig = go.Figure()
        for method, g in grp.groupby("method", sort=True):
            g = g.sort_values(["fpr", "value"])
            fig.add_scatter(
                x=g["fpr"].tolist(),
                y=g["value"].tolist(),
                mode="lines",
                name=str(method),
                line={"color": plot.method_colour(str(method))},
            )
        fig.add_scatter(
            x=[0, 1], y=[0, 1], mode="lines", name="chance", line={"dash": "dot", "color": "#999"}
        )
        plot.layout(fig, f"ROC: {dataset}", "false-positive rate (clean)", "true-positive rate")
        out.append(fig)
    return out


def _histograms(rows: pd.DataFrame) -> list[Any]:
    go = plot.go()
    out: list[Any] = []
    hist = rows[rows["metric"] == "audit_hist"].copy()
    if hist.empty:
        return out
    hist["group"] = _extra_col(hist, "group", "")
    hist["lo"] = _extra_col(hist, "lo", float("nan"))
    hist["hi"] = _extra_col(hist, "hi", float("nan"))
    for (dataset, method), grp in hist.groupby(["dataset", "method"], sort=True):
        fig = go.Figure()
        for group, color in (
            ("clean", plot.series_colour(0)),
            ("anomalous", plot.series_colour(3)),
        ):
            g = grp[grp["group"] == group].sort_values("lo")
            if g.empty:
                continue
            fig.add_bar(
                x=((g["lo"] + g["hi"]) / 2).tolist(),
                y=g["value"].tolist(),
                width=(g["hi"] - g["lo"]).tolist(),
                name="trusted kind (clean)" if group == "clean" else "anomalous (untrusted)",
                marker_color=color,
                opacity=0.6,
            )
        plot.layout(fig, f"Scores: {dataset}, {method}", "aggregate score", "inputs")
        fig.update_layout(barmode="overlay")
        out.append(fig)
    return out


def _precision(rows: pd.DataFrame) -> list[Any]:
    sub = rows[rows["metric"].str.startswith("audit_precision@")]
    if sub.empty:
        return []
    out: list[Any] = []
    for metric, grp in sub.groupby("metric", sort=True):
        label = str(metric).removeprefix("audit_")
        if grp["layer"].nunique() >= 2:
            out += plot.by_layer(grp, f"Disagreement search: {label} by layer", label)
        else:
            out += plot.bars(grp, f"Disagreement search: {label}", label)
    return out


def _top_examples(rows: pd.DataFrame, per_group: int = 10) -> list[Any]:
    sub = rows[rows["metric"] == "audit_disagreement"].copy()
    if sub.empty:
        return []
    sub["rank"] = _extra_col(sub, "rank", 0)
    out: list[Any] = []
    # one table per method: at the layer where its precision@50 is highest (else the first)
    prec = rows[rows["metric"] == "audit_precision@50"]
    chosen = []
    for (dataset, method), grp in sub.groupby(["dataset", "method"], sort=True):
        p = prec[(prec["dataset"] == dataset) & (prec["method"] == method)]
        layer = int(best(p)["layer"]) if not p.empty else int(grp["layer"].min())
        chosen.append(((dataset, method, layer), grp[grp["layer"] == layer]))
    for (dataset, method, layer), grp in chosen[:4]:
        grp = grp.sort_values("rank").head(per_group)
        ex = extras(grp)
        meta = [e.get("meta", {}) if isinstance(e.get("meta"), dict) else {} for e in ex]
        cells: list[list[Any]] = [
            [int(e.get("rank", 0)) + 1 for e in ex],
            [str(e.get("prompt", "")) for e in ex],
            [f"{v:.3f}" for v in grp["value"]],
            [f"{float(e.get('credence', float('nan'))):.3f}" for e in ex],
            [f"{float(e.get('model_prob', float('nan'))):.3f}" for e in ex],
            [
                ", ".join(f"{k}={m[k]}" for k in ("persona", "truth", "bob_label") if k in m)
                for m in meta
            ],
        ]
        header = ["rank", "prompt", "score", "reporter credence", "model P(side 1)", "labels"]
        out.append(
            plot.table_figure(
                header, cells, f"Top disagreements: {dataset}, {method}, layer {layer}"
            )
        )
    return out


def _monitor(rows: pd.DataFrame) -> list[Any]:
    sub = rows[rows["metric"].str.startswith("audit_monitor_")]
    if sub.empty:
        return []
    wide = sub.pivot_table(index=["dataset", "method"], columns="metric", values="value")
    wide = wide.reset_index()
    header = [str(c).removeprefix("audit_") for c in wide.columns]
    cells: list[list[Any]] = [
        [f"{v:.4g}" if isinstance(v, float) else str(v) for v in wide[c]] for c in wide.columns
    ]
    return [
        plot.table_figure(
            header, cells, "Monitors on held-out data (threshold set on trusted data)"
        )
    ]


def _agreement(rows: pd.DataFrame) -> list[Any]:
    sub = rows[rows["metric"].isin(["audit_flag_jaccard", "audit_score_spearman"])]
    if sub.empty:
        return []
    wide = sub.pivot_table(index=["dataset", "method"], columns="metric", values="value")
    wide = wide.reset_index()
    header = ["task", "detectors", *[str(c).removeprefix("audit_") for c in wide.columns[2:]]]
    cells: list[list[Any]] = [list(wide["dataset"]), list(wide["method"])]
    cells += [[f"{v:.3f}" for v in wide[c]] for c in wide.columns[2:]]
    return [
        plot.table_figure(
            header, cells, "Where detectors disagree (flag overlap at the FPR, rank corr.)"
        )
    ]


def audit_section_figures(rows: pd.DataFrame) -> list[Any]:
    """Every figure of the worst-case audit section, from its rows (see module docstring)."""
    if rows.empty:
        return []
    own = rows[_own(rows["metric"])]
    rest = rows[~_own(rows["metric"])]
    out: list[Any] = []
    if not own.empty:
        out += _detector_bars(own)
        out += _roc_curves(own)
        out += _histograms(own)
        out += _precision(own)
        out += _top_examples(own)
        out += _monitor(own)
        out += _agreement(own)
    if not rest.empty:
        out += generic_audit_figures(rest)
    return out


def generic_audit_figures(rows: pd.DataFrame) -> list[Any]:
    """One figure per audit metric: by layer if measured per layer, else bars per method."""
    if rows.empty:
        return []
    figs = []
    for metric, grp in rows.groupby("metric", sort=True):
        if grp["layer"].nunique() >= 2 and (grp["layer"] >= 0).all():
            figs += plot.by_layer(grp, f"Audit: {metric} by layer", str(metric))
        else:
            figs += plot.bars(grp, f"Audit: {metric}", str(metric))
    return figs


register(
    "audits",
    order=80,
    title="Worst-case audits",
    caption="Anomaly detection, disagreement search and rare-event estimates.",
    select=audit_rows,
    render=audit_section_figures,
)
