"""The dose-response report: behaviour against the multiplier, per layer, beside side effects.

A :class:`SteerTask` states the known truth: each prompt is answered by one of two tokens;
``source`` is the label the unsteered model should give (e.g. Alice's), ``target`` the label the
steering should produce (Bob's). Where they differ the steering should *flip* the answer; where
they agree it should leave it (else: *damage*). For every vector (one per layer) and multiplier:

* ``flip_rate`` / ``damage_rate`` with Wilson 95% intervals;
* ``propensity``: mean logit difference towards the target answer;
* side effects on neutral text: ``kl_neutral`` (KL from the unsteered next-token distribution,
  nats per token), ``ppl_neutral`` and ``acc_neutral`` (next-token top-1 accuracy: a task the
  vector should not touch);
and per layer: ``steer_slope`` (Tan et al. 2024's steerability: per-example least-squares slope
of the propensity over the multipliers, mean over the examples that should move, bootstrap CI)
and ``wrong_way`` (the fraction of those examples whose slope is negative).

:func:`select_dose` picks the layer and multiplier with the largest ``flip_rate - damage_rate``
whose ``kl_neutral`` stays within a budget.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mindscope.errors import MindscopeError
from mindscope.steering.apply import steering
from mindscope.steering.read import pad_batch
from mindscope.steering.vector import SteeringVector

__all__ = ["SteerTask", "dose_response", "select_dose", "wilson"]


@dataclass(frozen=True)
class SteerTask:
    """Prompts with two answer tokens and the labels before and after steering.

    Attributes:
        prompts: ``n`` prompts; the answer is the next token after each.
        choices: the token ids of answer 0 and answer 1.
        source: ``[n]`` 0/1, the answer the unsteered model should give.
        target: ``[n]`` 0/1, the answer the steering should produce.
    """

    prompts: list[str]
    choices: tuple[int, int]
    source: torch.Tensor
    target: torch.Tensor

    def __post_init__(self) -> None:
        n = len(self.prompts)
        if n == 0 or len(self.source) != n or len(self.target) != n:
            raise MindscopeError("a steering task needs prompts with one source and target each")


def wilson(k: float, n: int) -> tuple[float, float]:
    """Wilson 95% interval of a proportion ``k / n``."""
    if n == 0:
        return math.nan, math.nan
    p, z = k / n, 1.96
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def _answer_logits(
    h: Any, prompts: Sequence[str], vec: SteeringVector | None, m: float, batch: int = 256
) -> torch.Tensor:
    """``[n, vocab]`` logits at each prompt's last token, steered at every prompt token."""
    out = []
    for s in range(0, len(prompts), batch):
        x, am = pad_batch(h, h.encode(list(prompts[s : s + batch])))
        last = am.sum(1) - 1
        if vec is None:
            logits = h.forward(x, attention_mask=am)
        else:
            with steering(h, vec, m, mask=am.bool()):
                logits = h.forward(x, attention_mask=am)
        out.append(logits[torch.arange(len(x)), last.to(logits.device)].float().cpu())
    return torch.cat(out)


def _neutral_logprobs(
    h: Any, ids: list[list[int]], vec: SteeringVector | None, m: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probs ``[tokens, vocab]`` of every next-token prediction on neutral texts, the true
    next tokens ``[tokens]`` and each token's text index ``[tokens]``."""
    x, am = pad_batch(h, ids)
    if vec is None:
        logits = h.forward(x, attention_mask=am)
    else:
        with steering(h, vec, m, mask=am.bool()):
            logits = h.forward(x, attention_mask=am)
    valid = (am[:, :-1] * am[:, 1:]).bool()  # [b, pos-1]: a next token exists
    lp = logits[:, :-1].float().log_softmax(-1).cpu()[valid]  # [tokens, vocab]
    nxt = x[:, 1:][valid]
    doc = torch.arange(len(ids))[:, None].expand_as(valid)[valid]
    return lp, nxt, doc


def dose_response(
    h: Any,
    vectors: Sequence[SteeringVector],
    task: SteerTask,
    multipliers: Sequence[float],
    neutral_texts: Sequence[str],
    *,
    n_boot: int = 500,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Sweep every vector (typically one per layer) over ``multipliers``.

    Returns:
        results rows (dicts: ``layer``, ``method``, ``metric``, ``value``, ``ci_low``,
        ``ci_high``, ``n``, ``extra`` with ``multiplier`` and ``site``); see the module
        docstring for the metrics.
    """
    mults = [float(m) for m in multipliers]
    if not mults or not all(math.isfinite(m) for m in mults):
        raise MindscopeError(f"multipliers must be finite numbers, got {list(multipliers)}")
    if not neutral_texts:
        raise MindscopeError("dose-response needs neutral texts for the side effects")
    src, tgt = task.source.long(), task.target.long()
    moves = src != tgt
    n_move, n_stay = int(moves.sum()), int((~moves).sum())
    c0, c1 = task.choices
    neutral_ids = [s for s in h.encode(list(neutral_texts)) if len(s) > 1]
    if not neutral_ids:
        raise MindscopeError("neutral texts are all shorter than two tokens")
    base_lp, nxt, doc = _neutral_logprobs(h, neutral_ids, None, 0.0)
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for vec in vectors:
        vec.check_model(h)
        layer = int(vec.site.split(".")[-1])
        base = {"layer": layer, "method": vec.method}
        props = []
        for m in mults:
            logits = _answer_logits(h, task.prompts, vec, m)
            d = logits[:, c1] - logits[:, c0]  # [n] toward answer 1
            pred = (d > 0).long()
            prop = torch.where(tgt == 1, d, -d)  # toward the target answer
            props.append(prop)
            extra = {"multiplier": m, "site": vec.site}
            k_flip = float(((pred == tgt) & moves).sum())
            k_dmg = float(((pred != tgt) & ~moves).sum())
            for name, k, n in (("flip_rate", k_flip, n_move), ("damage_rate", k_dmg, n_stay)):
                lo, hi = wilson(k, n)
                rows.append(
                    {
                        **base,
                        "metric": name,
                        "value": k / n if n else math.nan,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n": n,
                        "extra": extra,
                    }
                )
            sd = float(prop.std()) if len(prop) > 1 else math.nan
            half = 1.96 * sd / math.sqrt(len(prop))
            pm = float(prop.mean())
            rows.append(
                {
                    **base,
                    "metric": "propensity",
                    "value": pm,
                    "ci_low": pm - half,
                    "ci_high": pm + half,
                    "n": len(prop),
                    "extra": extra,
                }
            )
            lp, _, _ = _neutral_logprobs(h, neutral_ids, vec, m)
            kl_tok = (base_lp.exp() * (base_lp - lp)).sum(-1)  # [tokens]
            nll_tok = -lp[torch.arange(len(nxt)), nxt]
            acc_tok = (lp.argmax(-1) == nxt).float()
            n_doc = len(neutral_ids)
            per_doc = {
                name: torch.zeros(n_doc).index_add_(0, doc, t)
                / torch.bincount(doc, minlength=n_doc)
                for name, t in (("kl", kl_tok), ("nll", nll_tok), ("acc", acc_tok))
            }
            for name, key, tf in (
                ("kl_neutral", "kl", lambda a: a),
                ("ppl_neutral", "nll", np.exp),
                ("acc_neutral", "acc", lambda a: a),
            ):
                v = per_doc[key].double().numpy()
                boots = [v[rng.integers(0, len(v), len(v))].mean() for _ in range(n_boot)]
                lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
                rows.append(
                    {
                        **base,
                        "metric": name,
                        "value": float(tf(v.mean())),
                        "ci_low": float(tf(lo)),
                        "ci_high": float(tf(hi)),
                        "n": len(v),
                        "extra": extra,
                    }
                )
        if len(mults) > 1 and n_move > 0:
            p = torch.stack(props).double().numpy()[:, moves.numpy()]  # [n_mult, n_move]
            xm = np.array(mults) - np.mean(mults)
            slopes = (xm[:, None] * (p - p.mean(0))).sum(0) / (xm**2).sum()  # [n_move]
            boots = [
                slopes[rng.integers(0, len(slopes), len(slopes))].mean() for _ in range(n_boot)
            ]
            lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
            extra = {"site": vec.site}
            rows.append(
                {
                    **base,
                    "metric": "steer_slope",
                    "value": float(slopes.mean()),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "n": len(slopes),
                    "extra": extra,
                }
            )
            k = float((slopes < 0).sum())
            lo, hi = wilson(k, len(slopes))
            rows.append(
                {
                    **base,
                    "metric": "wrong_way",
                    "value": k / len(slopes),
                    "ci_low": lo,
                    "ci_high": hi,
                    "n": len(slopes),
                    "extra": extra,
                }
            )
    return rows


def select_dose(rows: Sequence[dict[str, Any]], kl_budget: float) -> dict[str, float] | None:
    """The (layer, multiplier) with the largest ``flip_rate - damage_rate`` among those whose
    ``kl_neutral`` is at most ``kl_budget`` nats per token; ``None`` when none is within budget.

    Returns:
        ``{"layer", "multiplier", "flip_rate", "damage_rate", "kl_neutral", "score"}``.
    """
    table: dict[tuple[int, float], dict[str, float]] = {}
    for r in rows:
        extra = r.get("extra") or {}
        if "multiplier" not in extra:
            continue
        table.setdefault((int(r["layer"]), float(extra["multiplier"])), {})[r["metric"]] = float(
            r["value"]
        )
    best: dict[str, float] | None = None
    for (layer, m), v in table.items():
        if v.get("kl_neutral", math.inf) > kl_budget:
            continue
        flip = v.get("flip_rate", 0.0)
        dmg = v.get("damage_rate", 0.0)
        flip = 0.0 if math.isnan(flip) else flip
        dmg = 0.0 if math.isnan(dmg) else dmg
        score = flip - dmg
        if best is None or score > best["score"]:
            best = {
                "layer": layer,
                "multiplier": m,
                "flip_rate": flip,
                "damage_rate": dmg,
                "kl_neutral": v["kl_neutral"],
                "score": score,
            }
    return best
