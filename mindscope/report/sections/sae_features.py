"""Feature pages of sparse autoencoders, from results rows only.

Rows (written by the ``sae`` stage with ``feature_cards: N``, :mod:`mindscope.analyses.sae`):
``method`` ``sae:<arch>``, metric ``feature_fire_rate`` (the latent's firing rate on held-out
tokens), ``extra`` with ``site``, ``latent``, ``contexts`` (``[activation, text]`` pairs, the
activating token in brackets), ``promoted`` / ``suppressed`` (``[token, logit]`` pairs: the
decoder direction read through the model's head) and ``hist_edges`` / ``hist_counts`` (the
histogram of its non-zero activations)
-> *one page per latent*: the histogram of its activations and a table of its top contexts and
the tokens it promotes and suppresses.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mindscope.report import plot
from mindscope.report.registry import Content, register
from mindscope.report.rows import metric_names
from mindscope.results import extras

__all__ = ["feature_rows", "feature_content", "MAX_PAGES"]

MAX_PAGES = 24
"""Latents drawn at most (the most often firing first)."""


def feature_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The feature-card rows of SAE methods."""
    method = df["method"].astype(str)
    return df[method.str.startswith("sae:") & (metric_names(df) == "feature_fire_rate")]


def _tokens(pairs: list[Any]) -> str:
    return ", ".join(f"{tok!r} {float(v):+.2f}" for tok, v in pairs)


def _page(card: dict[str, Any], method: str, rate: float) -> list[Any]:
    """The histogram and the table of one latent."""
    g = plot.go()
    name = f"{method} at {card.get('site', '?')}, latent {card.get('latent', '?')}"
    figs = []
    edges = np.asarray(card.get("hist_edges", []), dtype=float)
    counts = np.asarray(card.get("hist_counts", []), dtype=float)
    if len(counts) and len(edges) == len(counts) + 1:
        fig = g.Figure(
            g.Bar(
                x=(edges[:-1] + edges[1:]) / 2,
                y=counts,
                width=np.diff(edges),
                marker={"color": plot.method_colour(method)},
                hovertemplate="activation %{x:.3g}: %{y} tokens<extra></extra>",
            )
        )
        title = f"{name}: activations when firing (fires on {rate:.2%} of tokens)"
        figs.append(plot.layout(fig, title, "activation", "tokens", showlegend=False))
    contexts = card.get("contexts", [])
    acts = [f"{float(a):.3g}" for a, _ in contexts]
    texts = [plot.escape(str(t)) for _, t in contexts]
    extra = [
        ("promoted tokens", plot.escape(_tokens(card.get("promoted", [])))),
        ("suppressed tokens", plot.escape(_tokens(card.get("suppressed", [])))),
    ]
    cells = [acts + [""] * len(extra), texts + [e[1] for e in extra]]
    cells[0][len(acts) :] = [e[0] for e in extra]
    figs.append(
        plot.table_figure(
            ["activation", "top context ([token] read)"], cells, f"{name}: top contexts"
        )
    )
    return figs


def feature_content(rows: pd.DataFrame) -> Content:
    """One page (histogram + contexts and logit effects) per latent, most often firing first."""
    cards = extras(rows)
    order = np.argsort(-rows["value"].to_numpy(float), kind="stable")[:MAX_PAGES]
    figs: list[Any] = []
    summary = []
    for i in order:
        card, method, rate = cards[i], str(rows["method"].iloc[i]), float(rows["value"].iloc[i])
        figs += _page(card, method, rate)
        top = card.get("contexts", [])
        summary.append(
            {
                "site": card.get("site", ""),
                "method": method,
                "latent": card.get("latent", -1),
                "fire_rate": round(rate, 4),
                "top_context": str(top[0][1]) if top else "",
                "promotes": ", ".join(str(t) for t, _ in card.get("promoted", [])[:3]),
            }
        )
    warning = (
        f"{len(rows)} latents have pages; the {MAX_PAGES} most often firing are drawn"
        if len(rows) > MAX_PAGES
        else ""
    )
    return Content(figures=tuple(figs), table=pd.DataFrame(summary), warning=warning)


register(
    "sae-features",
    order=76,
    title="Sparse autoencoder features: top contexts, logit effects, activations",
    caption="One page per latent (the most often firing latents of each SAE, on held-out "
    "tokens): the histogram of its activations when it fires, the contexts where it fires "
    "most (the token it reads in brackets, with the tokens before it) and the tokens its "
    "decoder direction promotes and suppresses when read through the model's final norm and "
    "unembedding (logit change against the zero vector).",
    select=feature_rows,
    render=feature_content,
)
