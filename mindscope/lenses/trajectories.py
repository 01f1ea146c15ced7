"""The prediction trajectory of one prompt: what each layer predicts at each position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mindscope.errors import MindscopeError
from mindscope.lenses.base import Lens, check_lens_for, require_causal, residual_stack
from mindscope.lenses.logit import LogitLens
from mindscope.models import ModelHandle
from mindscope.results import Row

__all__ = ["Trajectory", "trajectory"]


@dataclass(frozen=True)
class Trajectory:
    """Top next-token prediction of a lens at every layer ``k`` and position of a prompt.

    Attributes:
        method: the lens (``"logit_lens"`` or ``"tuned_lens"``).
        model: the model's name.
        input_tokens: ``[pos]`` the prompt's tokens, as text.
        top_tokens: ``[layers][pos]`` the most likely next token at each layer and position.
        top_probs: ``[layers, pos]`` its probability.
        entropy: ``[layers, pos]`` entropy of the lens distribution (nats).
        kl: ``[layers, pos]`` KL(final || lens) in nats (0 at the last layer).
        next_probs: ``[layers, pos]`` the lens's probability of the prompt's actual next token
            (NaN at the last position, which has none), or None.
        next_ranks: ``[layers, pos]`` its rank among all tokens (1 = the top guess; NaN at
            the last position), or None.
    """

    method: str
    model: str
    input_tokens: list[str]
    top_tokens: list[list[str]]
    top_probs: np.ndarray
    entropy: np.ndarray
    kl: np.ndarray
    next_probs: np.ndarray | None = None
    next_ranks: np.ndarray | None = None

    @property
    def layers(self) -> list[int]:
        """The layer indices ``k`` (0 = embeddings ... ``n_layers`` = output)."""
        return list(range(len(self.top_tokens)))

    def to_frame(self) -> pd.DataFrame:
        """Long table: one row per (layer, position) with the top token and its probability."""
        recs = [
            {
                "layer": k,
                "pos": t,
                "input_token": self.input_tokens[t],
                "top_token": self.top_tokens[k][t],
                "prob": float(self.top_probs[k, t]),
                "entropy": float(self.entropy[k, t]),
                "kl": float(self.kl[k, t]),
            }
            for k in self.layers
            for t in range(len(self.input_tokens))
        ]
        return pd.DataFrame.from_records(recs)

    def table(self) -> pd.DataFrame:
        """Wide table for printing: rows = layers (top = output), columns = input tokens,
        cells ``"token (p)"``."""
        cols = [f"{t}:{tok!r}" for t, tok in enumerate(self.input_tokens)]
        cells = [
            [f"{self.top_tokens[k][t]!r} ({self.top_probs[k, t]:.2f})" for t in range(len(cols))]
            for k in self.layers
        ]
        return pd.DataFrame(cells, index=pd.Index(self.layers, name="layer"), columns=cols).iloc[
            ::-1
        ]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (lists of floats and strings)."""
        return {
            "method": self.method,
            "model": self.model,
            "input_tokens": list(self.input_tokens),
            "top_tokens": [list(r) for r in self.top_tokens],
            "top_probs": self.top_probs.round(6).tolist(),
            "entropy": self.entropy.round(6).tolist(),
            "kl": self.kl.round(6).tolist(),
        }

    def to_rows(self, *, dataset: str = "prompt") -> list[Row]:
        """Results rows: metrics ``top_prob``, ``entropy``, ``kl`` and (but at the last
        position) ``next_prob``/``next_rank`` of the actual next token, per layer and position;
        position and tokens (``input_token``, ``top_token``, ``next_token``) go in ``extra``."""
        rows = []
        series = [("top_prob", self.top_probs), ("entropy", self.entropy), ("kl", self.kl)]
        if self.next_probs is not None and self.next_ranks is not None:
            series += [("next_prob", self.next_probs), ("next_rank", self.next_ranks)]
        n_pos = len(self.input_tokens)
        for k in self.layers:
            for t, tok in enumerate(self.input_tokens):
                extra = {"pos": t, "input_token": tok, "top_token": self.top_tokens[k][t]}
                if t + 1 < n_pos:
                    extra["next_token"] = self.input_tokens[t + 1]
                for metric, arr in series:
                    if metric.startswith("next_") and t + 1 >= n_pos:
                        continue
                    rows.append(
                        Row(
                            metric=metric,
                            value=float(arr[k, t]),
                            method=self.method,
                            layer=k,
                            model=self.model,
                            dataset=dataset,
                            n=1,
                            _extra=extra,
                        )
                    )
        return rows

    def figure(self, value: str = "entropy") -> Any:
        """A plotly heatmap (layers x positions) coloured by ``value`` (``"entropy"``,
        ``"prob"`` or ``"kl"``), each cell labelled with its top token. Needs plotly."""
        from mindscope.extras import require

        require("report", what="the trajectory heatmap")
        import plotly.graph_objects as go

        z = {"entropy": self.entropy, "prob": self.top_probs, "kl": self.kl}.get(value)
        if z is None:
            raise MindscopeError(f"value must be 'entropy', 'prob' or 'kl', got {value!r}")
        x = [f"{t}:{tok}" for t, tok in enumerate(self.input_tokens)]
        fig = go.Figure(
            go.Heatmap(
                z=z,
                x=x,
                y=self.layers,
                text=self.top_tokens,
                texttemplate="%{text}",
                customdata=self.top_probs,
                hovertemplate="layer %{y}, %{x}<br>top %{text} p=%{customdata:.3f}"
                "<br>" + value + " %{z:.3f}<extra></extra>",
                colorscale="Blues_r" if value == "entropy" else "Blues",
                colorbar={"title": value + (" (nats)" if value != "prob" else "")},
            )
        )
        fig.update_layout(
            title=f"{self.method} prediction trajectory ({self.model})",
            xaxis_title="input token",
            yaxis_title="layer k",
        )
        return fig


@torch.no_grad()
def trajectory(h: ModelHandle, lens: Lens | None, prompt: str) -> Trajectory:
    """Decode every layer of ``prompt`` with ``lens`` (logit lens when ``None``).

    Returns:
        A :class:`Trajectory` with ``[n_layers + 1, pos]`` arrays.
    """
    require_causal(h)
    ln: Lens = lens if lens is not None else LogitLens(h)
    check_lens_for(h, ln)
    if not isinstance(prompt, str) or not prompt.strip():
        raise MindscopeError("the prompt is empty")
    ids = h.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    if ids.shape[1] == 0:
        raise MindscopeError("the prompt tokenises to no tokens")
    if h.n_ctx and ids.shape[1] > h.n_ctx:
        raise MindscopeError(f"prompt has {ids.shape[1]} tokens; the model reads {h.n_ctx}")
    resid, logits = residual_stack(h, ids)  # [K, 1, T, d], [1, T, V]
    logp = logits[0].float().log_softmax(-1)  # [T, V]
    tops, probs, ents, kls, nprobs, nranks = [], [], [], [], [], []
    nxt = ids[0, 1:].to(logp.device)  # [T - 1] the actual next tokens
    nan = torch.full((1,), float("nan"))
    for k in range(h.n_layers + 1):
        logq = ln.logits(resid[k, 0], k).float().log_softmax(-1)  # [T, V]
        pk, ik = logq.exp().max(-1)
        lq_next = logq[:-1].gather(-1, nxt[:, None])  # [T - 1, 1]
        nprobs.append(torch.cat([lq_next[:, 0].exp().cpu(), nan]))
        nranks.append(torch.cat([((logq[:-1] > lq_next).sum(-1) + 1).float().cpu(), nan]))
        tops.append([_tok(h.tokenizer, int(i)) for i in ik])
        probs.append(pk.cpu())
        ents.append((-(logq.exp() * logq).sum(-1)).cpu())
        kls.append((logp.exp() * (logp - logq)).sum(-1).clamp_min(0).cpu())
    return Trajectory(
        method=ln.method,
        model=h.name,
        input_tokens=[_tok(h.tokenizer, int(i)) for i in ids[0]],
        top_tokens=tops,
        top_probs=torch.stack(probs).numpy(),
        entropy=torch.stack(ents).numpy(),
        kl=torch.stack(kls).numpy(),
        next_probs=torch.stack(nprobs).numpy(),
        next_ranks=torch.stack(nranks).numpy(),
    )


def _tok(tokenizer: Any, i: int) -> str:
    return str(tokenizer.decode([i]))
