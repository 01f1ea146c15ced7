"""Rare-event estimators: naive Monte Carlo, ITGIS and MHIS (Wu & Hilton 2024).

All three estimate ``P = Pr_{x ~ dist}[bad(x)]`` with at most ``budget`` model calls (sequences
run through the model, with or without a backward pass) and return a :class:`RareEstimate` with
a confidence interval and an effective sample size.

* **naive**: ``hits / n`` with a Wilson score interval.
* **ITGIS** (independent token gradient importance sampling): the proposal is independent per
  position, ``q_i(v) ∝ p_i(v) exp(g_i(v) / T)``, where ``g_i(v)`` is the gradient of the bad
  output's score (the bad tokens' logit) with respect to the one-hot input at position ``i``,
  averaged over samples of the current proposal (refreshed every round). Samples come from the
  defensive mixture ``(1 - eps) q + eps p`` (``eps = 0.1``: weights stay below ``1/eps``).
  Estimate: the mean of ``1{bad} p(x)/q_mix(x)``; ESS is Kish's over the hits' weights.
* **MHIS** (Metropolis-Hastings importance sampling): chains sample
  ``π(x) ∝ p(x) exp(s(x) / T)`` (``s`` = the bad output's score) with single-position
  proposals drawn from the ITGIS-style gradient table; the estimate is the self-normalised
  ``Σ 1{bad} e^{-s/T} / Σ e^{-s/T}``; the interval is the ratio estimator's delta-method interval
  with chains as the independent units.

``temperature=None`` tunes ``T`` from a pilot batch (a quarter of the budget by default) over a
grid scaled by the spread of the gradients: every grid point gets the same pilot budget, and
the one with the smallest estimated relative variance wins, first among points whose pilot saw
at least 3 bad outputs, else by the relative variance of the smooth proxy ``exp(s)``
(``s`` = the bad output's score, :meth:`BadOutput.score`). Pilot
calls count against the budget and pilot samples are not reused in the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import torch

from mindscope.audit.rare.bad import BadOutput
from mindscope.audit.rare.distributions import InputDistribution
from mindscope.audit.rare.scoring import Scorer
from mindscope.errors import MindscopeError
from mindscope.results import Row

__all__ = [
    "RareEstimate",
    "estimate_rare",
    "naive",
    "itgis",
    "mhis",
    "ce",
    "MIN_BUDGET",
    "METHODS",
    "MIN_TRUST_ESS",
    "SEARCHED",
    "SEARCHED_OPTIONS",
    "DEFAULT_METHOD",
]

SEARCHED = "ce+search"
"""Method name for :func:`ce` whose restarts each start from their own :func:`search_inputs`
(30% of the budget in all; ``search=`` changes it) and whose known bad inputs are expanded to
their neighbours (10%, ``expand=``): :data:`SEARCHED_OPTIONS`."""
SEARCHED_OPTIONS: dict[str, Any] = {"search": 0.3, "expand": 0.1, "per_restart_search": True}
"""The options :data:`SEARCHED` adds to ``ce`` (options given by the caller override them)."""
METHODS = ("naive", "itgis", "mhis", "ce", SEARCHED)
DEFAULT_METHOD = SEARCHED
"""The method :func:`estimate_rare`, the ``rare`` stage and ``mindscope audit rare estimate``
use when none is named."""
MIN_BUDGET = {"naive": 1, "itgis": 256, "mhis": 512, "ce": 1024, SEARCHED: 1024}
"""Smallest budget (model calls) each method accepts."""

_GRID = (
    0.0,
    0.25,
    0.5,
    1.0,
    2.0,
    4.0,
    8.0,
)  # inverse temperatures, in units of 1 / gradient spread
_MIN_PILOT_HITS = 3


def _incidence(finders: list[set[tuple[int, ...]]]) -> tuple[float, float]:
    """Sample coverage and unseen-count estimates from which samplers found which inputs
    (Chao & Jost 2012, incidence data): ``(coverage, unseen)``; ``(0, inf)`` with fewer than
    two samplers that found anything."""
    t = len(finders)
    counts: dict[tuple[int, ...], int] = {}
    for f in finders:
        for x in f:
            counts[x] = counts.get(x, 0) + 1
    u = sum(counts.values())
    if t < 2 or u == 0:
        return 0.0, math.inf
    q1 = sum(c == 1 for c in counts.values())
    q2 = sum(c == 2 for c in counts.values())
    if q1 == 0:
        return 1.0, 0.0
    r = (t - 1) / t
    unseen = r * q1 * q1 / (2 * q2) if q2 else r * q1 * (q1 - 1) / 2
    coverage = 1 - (q1 / u) * ((t - 1) * q1 / ((t - 1) * q1 + 2 * q2))
    return coverage, unseen


MIN_TRUST_ESS = 10.0
"""Smallest effective sample size of the hits for an estimate to count as trusted."""


@dataclass(frozen=True)
class RareEstimate:
    """An estimate of a rare output's probability.

    Attributes:
        method: ``naive``, ``itgis``, ``mhis``, ``ce`` or ``ce+search``.
        estimate: the point estimate of the probability.
        ci_low, ci_high: the ``confidence`` interval (clipped to [0, 1]).
        confidence: nominal coverage of the interval.
        ess: effective sample size (naive: the number of hits; ITGIS: Kish's ESS of the hits'
            weights; MHIS: Kish's ESS of the self-normalised weights, ignoring autocorrelation).
        n_calls: model calls spent (pilot and gradients included).
        n_hits: samples in the estimate that were bad outputs.
        temperature: the temperature used (``nan`` for naive).
        extra: method-specific details (pilot criterion per temperature, ...; CE:
            ``extra["trust"]``, the diagnostics behind ``trusted``).
        trusted: whether the interval can be relied on: naive sampling's Wilson interval
            always; ITGIS and MHIS when the hits' effective sample size is at least
            :data:`MIN_TRUST_ESS`; CE as its docstring says. A flagged estimate reports its
            numbers anyway.
    """

    method: str
    estimate: float
    ci_low: float
    ci_high: float
    confidence: float
    ess: float
    n_calls: int
    n_hits: int
    temperature: float = math.nan
    extra: dict[str, Any] = field(default_factory=dict)
    trusted: bool = True

    def rows(self, **context: Any) -> list[Row]:
        """Results rows (``rare_probability`` with the CI, ``rare_ess``, ``rare_hits``,
        ``rare_trusted`` = 1 or 0; ``extra.trusted`` and ``extra.untrusted_because`` too);
        ``context`` fills the other columns (``model``, ``dataset``, ...) and ``extra``."""
        extra: dict[str, Any] = {
            "confidence": self.confidence,
            "temperature": self.temperature,
            "n_calls": self.n_calls,
            "trusted": self.trusted,
        }
        trust = self.extra.get("trust")
        if trust:
            extra["untrusted_because"] = trust["reasons"]
            extra["restarts"] = self.extra.get("restarts", 1)
        extra.update(context.pop("extra", {}))
        common = dict(method=self.method, n=self.n_calls, _extra=extra, **context)
        return [
            Row(
                metric="rare_probability",
                value=self.estimate,
                ci_low=self.ci_low,
                ci_high=self.ci_high,
                **common,
            ),
            Row(metric="rare_ess", value=self.ess, **common),
            Row(metric="rare_hits", value=float(self.n_hits), **common),
            Row(metric="rare_trusted", value=float(self.trusted), **common),
        ]


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise MindscopeError(f"confidence must be in (0, 1), got {confidence}")
    return float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + confidence / 2)))


def _check_budget(method: str, budget: int) -> None:
    if budget < MIN_BUDGET[method]:
        raise MindscopeError(
            f"budget {budget} is too small for {method}: the minimum is {MIN_BUDGET[method]}"
        )


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` over ``n`` (possibly effective) trials."""
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(max(0.0, p * (1 - p)) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval(est: float, se: float, n: int, z: float) -> tuple[float, float]:
    """Interval of an importance-sampling estimate: Wilson's with the effective number of
    trials ``est (1 - est) / se^2`` (asymmetric, never below 0); with no hit (``est == 0``),
    the naive Wilson bound over the ``n`` samples, since nothing bad was seen."""
    if est <= 0 or not math.isfinite(se):
        return _wilson(0.0, max(1, n), z) if est <= 0 else (0.0, 1.0)
    if se <= 0:
        return est, est
    n_eff = max(1.0, est * (1 - est) / (se * se))
    return _wilson(est, n_eff, z)


# --------------------------------------------------------------------- naive
def naive(scorer: Scorer, budget: int, *, seed: int = 0, confidence: float = 0.9) -> RareEstimate:
    """Plain Monte Carlo: ``budget`` samples of the distribution, Wilson interval."""
    _check_budget("naive", budget)
    z = _z(confidence)
    gen = torch.Generator().manual_seed(seed)
    start = scorer.calls
    hit, _ = scorer.evaluate(scorer.dist.sample(budget, generator=gen))
    k, n = int(hit.sum()), budget
    p = k / n
    lo, hi = _wilson(p, n, z)
    return RareEstimate(
        "naive",
        p,
        lo,
        hi,
        confidence,
        float(k),
        scorer.calls - start,
        k,
    )


# --------------------------------------------------------------------- shared
def _logq_table(dist: InputDistribution, g: torch.Tensor, beta: float) -> torch.Tensor:
    """log q ``[n_positions, vocab]``: ``log p + beta * g`` renormalised over p's support."""
    logp = dist.probs.log()
    tilt = torch.where(dist.probs > 0, beta * g, torch.zeros_like(g))
    logits = logp + tilt
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


def _sample_table(logq: torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    cols = [torch.multinomial(row.exp(), n, replacement=True, generator=gen) for row in logq]
    return torch.stack(cols, dim=1)  # [n, n_positions]


def _table_logprob(logq: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return logq[torch.arange(logq.shape[0]), x].sum(-1)  # [n]


def _sample_mixture(
    dist: InputDistribution, logq: torch.Tensor, n: int, gen: torch.Generator, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` draws of the defensive mixture ``(1 - eps) q + eps p`` and their log-weights
    ``log p(x) - log q_mix(x)`` (at most ``log(1/eps)``): ``([n, n_positions], [n])``."""
    x = _sample_table(logq, n, gen)
    from_p = torch.rand(n, generator=gen) < eps
    if from_p.any():
        x[from_p] = dist.sample(int(from_p.sum()), generator=gen)
    logp = dist.log_prob(x)
    lq = _table_logprob(logq, x)
    lmix = torch.logaddexp(lq + math.log1p(-eps), logp + math.log(eps)) if eps > 0 else lq
    return x, logp - lmix


def _mean_gradient(scorer: Scorer, x: torch.Tensor) -> torch.Tensor:
    """Average one-hot gradient ``[n_positions, vocab]``, centred per position on p's support."""
    _, _, grad = scorer.gradient(x)
    g = grad.mean(0)  # [n_positions, vocab]
    p = scorer.dist.probs
    return g - (g * p).sum(-1, keepdim=True)  # centre: E_p[g_i] = 0


def _spread(dist: InputDistribution, g: torch.Tensor) -> float:
    """Typical size of the gradient table over the support (its p-weighted std per position)."""
    p = dist.probs
    var = (p * g.pow(2)).sum(-1)  # [n_positions] (g is centred)
    s = float(var.mean().sqrt())
    return s if s > 0 else 1.0


def _rel_var_is(logw: torch.Tensor, f: torch.Tensor) -> float:
    """Estimated relative variance (CV^2 per sample) of the IS mean of ``w f``."""
    mask = f > 0
    if not mask.any():
        return math.inf
    lv = logw[mask] + f[mask].log()
    m = torch.logsumexp(lv, 0) - math.log(len(f))
    m2 = torch.logsumexp(2 * lv, 0) - math.log(len(f))
    return float((m2 - 2 * m).exp() - 1)


def _is_mean(lt: torch.Tensor) -> tuple[float, float, float]:
    """Importance-sampling mean of terms given as logs ``lt [n]`` (``-inf`` for a zero term):
    ``(estimate, standard error, Kish's ESS of the non-zero terms)``; all 0 without one."""
    n = len(lt)
    if not torch.isfinite(lt).any():
        return 0.0, 0.0, 0.0
    shift = float(lt.max())
    w = (lt - shift).exp()  # [n], scaled by e^-shift
    est = float(w.mean()) * math.exp(shift)
    se = float(w.std(unbiased=True)) * math.exp(shift) / math.sqrt(n) if n > 1 else math.inf
    return est, se, float(w.sum() ** 2 / w.pow(2).sum())


def _pick(table: dict[float, tuple[int, float, float]]) -> float:
    """Choose the inverse temperature: min hit-based relative variance among grid points with
    enough pilot hits, else min proxy relative variance."""
    enough = {b: v for b, v in table.items() if v[0] >= _MIN_PILOT_HITS and math.isfinite(v[1])}
    if enough:
        return min(enough, key=lambda b: enough[b][1])
    return min(table, key=lambda b: table[b][2])


def _tune(
    run: Callable[[float, int], tuple[int, float, float]], scale: float, pilot: int
) -> tuple[float, dict[str, list[float]]]:
    per = max(1, pilot // len(_GRID))
    table = {c / scale: run(c / scale, per) for c in _GRID}  # beta = 0 is plain sampling
    beta = _pick(table)
    info = {
        (f"{1 / b:.4g}" if b > 0 else "inf"): [float(v[0]), v[1], v[2]] for b, v in table.items()
    }  # T -> [pilot hits, relvar(hits), relvar(proxy)]
    return beta, info


def _inverse_temperature(
    temperature: float | None,
    run: Callable[[float, int], tuple[int, float, float]],
    scale: float,
    pilot: int,
    info: dict[str, Any],
) -> float:
    """``1 / temperature``, or tuned from a pilot of ``pilot`` calls (recorded in ``info``)."""
    if temperature is None:
        beta, info["pilot"] = _tune(run, scale, pilot)
        return beta
    if temperature <= 0:
        raise MindscopeError(f"temperature must be > 0, got {temperature}")
    return 1.0 / temperature


# --------------------------------------------------------------------- ITGIS
def itgis(
    scorer: Scorer,
    budget: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    confidence: float = 0.9,
    grad_batch: int = 32,
    n_rounds: int = 4,
    pilot_fraction: float = 0.25,
    defensive: float = 0.1,
) -> RareEstimate:
    """Independent token gradient importance sampling; see the module docstring."""
    _check_budget("itgis", budget)
    if not 0.0 <= defensive < 1.0:
        raise MindscopeError(f"defensive must be in [0, 1), got {defensive}")
    z = _z(confidence)
    dist = scorer.dist
    gen = torch.Generator().manual_seed(seed)
    start = scorer.calls
    grad_batch = max(1, min(grad_batch, budget // 16))
    g = _mean_gradient(scorer, dist.sample(grad_batch, generator=gen))
    n_grad = 1
    info: dict[str, Any] = {}

    def run(beta: float, n: int) -> tuple[int, float, float]:
        x, logw = _sample_mixture(dist, _logq_table(dist, g, beta), n, gen, defensive)
        hit, score = scorer.evaluate(x)
        return int(hit.sum()), _rel_var_is(logw, hit.double()), _rel_var_is(logw, score.exp())

    beta = _inverse_temperature(
        temperature, run, _spread(dist, g), int(budget * pilot_fraction), info
    )
    remaining = budget - (scorer.calls - start)
    per_round = max(1, remaining // n_rounds)
    terms: list[torch.Tensor] = []  # log of w * 1{bad}, -inf when not bad
    for r in range(n_rounds):
        logq = _logq_table(dist, g, beta)
        n = (
            min(per_round, budget - (scorer.calls - start))
            if r < n_rounds - 1
            else budget - (scorer.calls - start)
        )
        if n <= 0:
            break
        x, logw = _sample_mixture(dist, logq, n, gen, defensive)
        ng = min(grad_batch, n) if r < n_rounds - 1 else 0
        if ng:  # these samples give the next round's gradients and count as IS samples too
            hit_g, _, grad = scorer.gradient(x[:ng])
            gr = grad.mean(0)
            gr = gr - (gr * dist.probs).sum(-1, keepdim=True)
            g = (g * n_grad + gr) / (n_grad + 1)
            n_grad += 1
            hit_r, _ = scorer.evaluate(x[ng:])
            hit = torch.cat([hit_g, hit_r])
        else:
            hit, _ = scorer.evaluate(x)
        terms.append(torch.where(hit, logw, torch.full_like(logw, -math.inf)))
    lt = torch.cat(terms)
    n = len(lt)
    k = int(torch.isfinite(lt).sum())
    est, se, ess = _is_mean(lt)
    info["samples"] = n
    return RareEstimate(
        "itgis",
        est,
        *_interval(est, se, n, z),
        confidence,
        ess,
        scorer.calls - start,
        k,
        1.0 / beta if beta > 0 else math.inf,
        info,
        trusted=ess >= MIN_TRUST_ESS,
    )


# --------------------------------------------------------------------- MHIS
def _chains(
    scorer: Scorer,
    logr: torch.Tensor,
    beta: float,
    n_chains: int,
    calls: int,
    burn_frac: float,
    gen: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Run MH chains on π ∝ p exp(beta s) with ``calls`` model calls.

    Returns ``(hit [steps, chains], score [steps, chains], acceptance rate)`` after burn-in."""
    dist = scorer.dist
    logp = dist.probs.log()
    x = _sample_table(logr, n_chains, gen)  # [chains, n_positions]
    hit, s = scorer.evaluate(x)
    steps = max(1, calls // n_chains - 1)
    burn = int(steps * burn_frac)
    hits, scores, acc = [], [], 0
    probs = logr.exp()  # [n_positions, vocab]
    for t in range(steps):
        pos = torch.randint(0, dist.n_positions, (n_chains,), generator=gen)  # [chains]
        new = torch.empty(n_chains, dtype=torch.long)
        for i in range(dist.n_positions):  # one draw per position: no [chains, vocab] gather
            at = (pos == i).nonzero().squeeze(-1)
            if len(at):
                new[at] = torch.multinomial(probs[i], len(at), replacement=True, generator=gen)
        old = x[torch.arange(n_chains), pos]
        y = x.clone()
        y[torch.arange(n_chains), pos] = new
        hit_y, s_y = scorer.evaluate(y)
        log_a = beta * (s_y - s) + logp[pos, new] - logp[pos, old] + logr[pos, old] - logr[pos, new]
        ok = torch.rand(n_chains, generator=gen, dtype=torch.float64).log() < log_a
        x = torch.where(ok[:, None], y, x)
        hit = torch.where(ok, hit_y, hit)
        s = torch.where(ok, s_y, s)
        if t >= burn:
            acc += int(ok.sum())
            hits.append(hit.clone())
            scores.append(s.clone())
    kept = max(1, len(hits))
    if not hits:
        hits, scores = [hit], [s]
    return torch.stack(hits), torch.stack(scores), acc / (kept * n_chains)


def _ratio(
    hit: torch.Tensor, score: torch.Tensor, beta: float, f: torch.Tensor | None = None
) -> tuple[float, float, float]:
    """Self-normalised estimate, its delta-method standard error over chains and Kish's ESS.

    ``hit``/``score``: ``[steps, chains]``; weights ``e^{-beta s}``; ``f`` replaces ``hit``."""
    lw = -beta * score
    lw = lw - lw.max()
    w = lw.exp()  # [steps, chains]
    val = hit.double() if f is None else f
    a = (w * val).sum(0)  # [chains]
    b = w.sum(0)  # [chains]
    est = float(a.sum() / b.sum())
    c = a.shape[0]
    resid = a - est * b  # [chains]
    se = float(resid.std(unbiased=True) * math.sqrt(c) / b.sum()) if c > 1 else math.inf
    ess = float(w.sum() ** 2 / w.pow(2).sum())
    return est, se, ess


def mhis(
    scorer: Scorer,
    budget: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    confidence: float = 0.9,
    n_chains: int = 256,
    burn_in: float = 0.2,
    grad_batch: int = 32,
    pilot_fraction: float = 0.25,
) -> RareEstimate:
    """Metropolis-Hastings importance sampling; see the module docstring."""
    _check_budget("mhis", budget)
    z = _z(confidence)
    dist = scorer.dist
    gen = torch.Generator().manual_seed(seed)
    start = scorer.calls
    grad_batch = max(1, min(grad_batch, budget // 16))
    g = _mean_gradient(scorer, dist.sample(grad_batch, generator=gen))
    n_chains = max(2, min(n_chains, budget // 32))  # at least ~32 steps per chain
    info: dict[str, Any] = {}

    def run(beta: float, n: int) -> tuple[int, float, float]:
        chains = max(2, min(n_chains // 4, n // 4))
        hit, score, _ = _chains(scorer, _logq_table(dist, g, beta), beta, chains, n, burn_in, gen)
        est, se, _ = _ratio(hit, score, beta)
        pe, pse, _ = _ratio(hit, score, beta, score.exp())
        rv = (se / est) ** 2 if est > 0 else math.inf
        prv = (pse / pe) ** 2 if pe > 0 else math.inf
        return int(hit.sum()), rv, prv

    beta = _inverse_temperature(
        temperature, run, _spread(dist, g), int(budget * pilot_fraction), info
    )
    remaining = budget - (scorer.calls - start)
    hit, score, acc = _chains(
        scorer, _logq_table(dist, g, beta), beta, n_chains, remaining, burn_in, gen
    )
    est, se, ess = _ratio(hit, score, beta)
    lo, hi = _interval(est, se, int(hit.numel()), z)
    info.update(acceptance=acc, chains=n_chains, steps=int(hit.shape[0]))
    return RareEstimate(
        "mhis",
        est,
        lo,
        hi,
        confidence,
        ess,
        scorer.calls - start,
        int(hit.sum()),
        1.0 / beta if beta > 0 else math.inf,
        info,
        trusted=ess >= MIN_TRUST_ESS,
    )


# --------------------------------------------------------------------- CE
def _fit_table(
    dist: InputDistribution, x: torch.Tensor, w: torch.Tensor, prior: float
) -> torch.Tensor:
    """Weighted per-position token frequencies of ``x [n, n_positions]`` (weights ``w [n]``),
    smoothed by ``prior`` pseudo-samples of ``p``: log table ``[n_positions, vocab]``."""
    p = dist.probs
    counts = torch.zeros_like(p)
    wn = w / w.sum()
    for i in range(dist.n_positions):
        counts[i].index_add_(0, x[:, i], wn)
    tab = (counts + prior * p) / (1.0 + prior)
    return torch.where(p > 0, tab.log(), torch.full_like(tab, -math.inf))


def search_inputs(
    scorer: Scorer,
    calls: int,
    *,
    n_searches: int | None = None,
    width: int = 64,
    gen: torch.Generator | None = None,
) -> torch.Tensor:
    """Coordinate search for bad inputs inside the distribution's support, within ``calls``
    model calls: ``n_searches`` greedy searches from samples of ``p``. Each step takes one
    position per search (cycling) and tries ``width`` substitutions there: every supported
    token when the support is that small, else the ``width`` best by the one-hot gradient of the
    bad output's score (GCG's proposal, :meth:`Scorer.gradient`); the search moves to the
    candidate with the largest margin when it improves. ``n_searches=None``: as many as leave
    two sweeps over the positions each (at most 8). Returns every distinct bad input seen,
    ``[k, n_positions]`` (``k`` may be 0)."""
    dist = scorer.dist
    gen = gen or torch.Generator().manual_seed(0)
    start = scorer.calls
    n = dist.n_positions
    if n_searches is None:
        n_searches = max(1, min(8, calls // (2 * n * (width + 1))))
    x = dist.sample(n_searches, generator=gen)  # [s, n_positions]
    hit, m = scorer.margins(x)
    found = [x[hit]]
    sup = dist.supports()
    order = torch.stack([torch.randperm(n, generator=gen) for _ in range(n_searches)])  # [s, n]
    step = 0
    while True:
        pos = order[:, step % n]  # [s]: the position each search changes this step
        need_grad = any(len(sup[int(i)]) > width for i in pos)
        w = min(width, max(len(sup[int(i)]) for i in pos))
        cost = n_searches * w + (n_searches if need_grad else 0)
        if scorer.calls - start + cost > calls:
            break
        g = scorer.gradient(x)[2] if need_grad else None  # [s, n_positions, vocab]
        cand = x[:, None, :].expand(n_searches, w, n).clone()  # [s, w, n_positions]
        for j in range(n_searches):
            i = int(pos[j])
            toks = sup[i]
            if len(toks) > w:
                assert g is not None
                toks = toks[g[j, i, toks].topk(w).indices]
            cand[j, : len(toks), i] = toks
            cand[j, len(toks) :, i] = toks[0]  # pad (duplicates)
        c_hit, c_m = scorer.margins(cand.reshape(-1, n))
        c_m = c_m.view(n_searches, w)
        found.append(cand.reshape(-1, n)[c_hit])
        best = c_m.argmax(-1)  # [s]
        top = c_m[torch.arange(n_searches), best]
        better = top > m
        x[better] = cand[torch.arange(n_searches), best][better]
        m[better] = top[better]
        step += 1
    out = torch.cat(found)
    return torch.unique(out, dim=0) if len(out) else out


def expand_neighbours(
    scorer: Scorer, bad: torch.Tensor, calls: int, *, width: int = 64
) -> torch.Tensor:
    """Bad inputs one substitution away from known bad ones, within ``calls`` model calls.

    Bad inputs of a language model cluster (they share most of their tokens), so every known bad
    input ``bad [k, n_positions]`` is expanded in turn, breadth first: each of its positions
    takes every other supported token (the ``width`` best by the one-hot gradient where the
    support is larger), and every new bad input found joins the queue. Stops when the next
    input's neighbourhood would exceed ``calls``. Returns the new distinct bad inputs
    ``[m, n_positions]`` (``m`` may be 0; ``bad`` itself is not repeated)."""
    dist = scorer.dist
    start = scorer.calls
    n = dist.n_positions
    sup = dist.supports()
    seen = {tuple(r) for r in bad.tolist()}
    queue = [r for r in bad.long()]
    found: list[torch.Tensor] = []
    while queue:
        x = queue.pop(0)
        need_grad = any(len(sup[i]) > width for i in range(n))
        cands = []
        g = scorer.gradient(x[None])[2][0] if need_grad else None  # [n_positions, vocab]
        for i in range(n):
            toks = sup[i][sup[i] != x[i]]
            if len(toks) > width:
                assert g is not None
                toks = toks[g[i, toks].topk(width).indices]
            c = x[None].expand(len(toks), n).clone()
            c[:, i] = toks
            cands.append(c)
        cand = torch.cat(cands)
        cand = cand[[tuple(r) not in seen for r in cand.tolist()]]
        if scorer.calls - start + len(cand) > calls:
            break
        if not len(cand):
            continue
        seen.update(tuple(r) for r in cand.tolist())
        hit, _ = scorer.margins(cand)
        new = cand[hit]
        found.append(new)
        queue.extend(new)
    return torch.cat(found) if found else bad[:0].long()


def _log_mix(dist: InputDistribution, logqs: list[torch.Tensor], x: torch.Tensor, eps: float):
    """``(log p(x), log q_k(x) [K, n], log q_mix(x))`` for the mixture
    ``(1 - eps) mean_k q_k + eps p`` of product tables ``logqs``."""
    logp = dist.log_prob(x)
    lq = torch.stack([_table_logprob(t, x) for t in logqs])  # [K, n]
    lmean = torch.logsumexp(lq, 0) - math.log(len(logqs))
    lmix = torch.logaddexp(lmean + math.log1p(-eps), logp + math.log(eps))
    return logp, lq, lmix


def _t_quantile(df: int, confidence: float) -> float:
    """Two-sided Student-t quantile ``t`` with ``P(|T| <= t) = confidence`` (bisection)."""
    tail = (1 - confidence) / 2
    lo, hi = 0.0, 1e3
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _betainc_tail(df, mid) > tail else (lo, mid)
    return (lo + hi) / 2


def _betainc_tail(df: int, t: float) -> float:
    """``P(T > t)`` for Student's t with ``df`` degrees of freedom (numerical integration)."""
    n = 4000
    top = t + 2000.0
    xs = torch.linspace(t, top, n + 1, dtype=torch.float64)
    c = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    dens = torch.exp(c - (df + 1) / 2 * torch.log1p(xs * xs / df))
    return float(torch.trapezoid(dens, xs))


def _chi2_sf(q: float, df: int) -> float:
    """Upper tail of the chi-square distribution."""
    if df <= 0:
        return 1.0
    return float(torch.special.gammaincc(torch.tensor(df / 2.0), torch.tensor(q / 2.0)))


def ce(
    scorer: Scorer,
    budget: int,
    *,
    temperature: float | None = None,
    seed: int = 0,
    confidence: float = 0.9,
    round_size: int = 1024,
    elite: float = 0.1,
    adapt_fraction: float = 0.5,
    smoothing: float = 0.3,
    prior: float = 0.05,
    defensive: float = 0.1,
    seeds: torch.Tensor | None = None,
    search: float = 0.0,
    restarts: int = 4,
    expand: float = 0.0,
    per_restart_search: bool = False,
) -> RareEstimate:
    """Cross-entropy adaptive importance sampling (Rubinstein's multi-level CE method) with
    independent restarts mixed into one proposal, and a trust diagnostic.

    **Adaptation.** ``restarts`` independent CE runs each adapt a proposal in the input
    distribution's own family (independent per position). Each round, every run draws
    ``round_size / restarts`` inputs from its defensive mixture ``(1 - defensive) q_k +
    defensive p``, takes the ``elite`` fraction with the largest margin
    (:meth:`BadOutput.margin`; once that many are bad, every bad input it has seen) and refits
    ``q_k`` to them weighted by ``p/q_mix`` (the weighted maximum-likelihood step towards
    ``p(x | bad)``), smoothed with the previous ``q_k`` and ``prior`` pseudo-samples of ``p``. A
    run stops one round after its level reached the bad set; adaptation takes at most
    ``adapt_fraction`` of the budget. Runs lock onto different clusters of bad inputs, so the
    final proposal is their **mixture** ``(1 - defensive) mean_k q_k + defensive p``: the rest of
    the budget is drawn from it, stratified (the same number from each component), and the
    estimate is the importance-sampling mean with the mixture's density (multiple importance
    sampling, balance heuristic: unbiased). Adaptation samples are not reused.

    **Known bad inputs.** Every distinct bad input seen while adapting or searching has an
    exactly known probability: the estimate is their mass plus the importance-sampling
    estimate of the rest (a final draw that hits a known input counts 0), unbiased given the
    known set and never below a mass that is certainly bad.

    **Interval and trust.** The standard error is the largest of (a) the samples' own
    (stratified) standard error, (b) the spread of the ``restarts`` per-component estimates
    (each unbiased on its own; Student-t over restarts), and (c) the error the known bad inputs
    would add under the final proposal, ``sqrt((sum p(x)^2 / q_mix(x) - known^2) / n)`` (a
    proposal that under-weights them likely under-weights their unseen neighbours); the
    interval is Wilson-type with that error and never below the known mass. When every final
    hit is a known input, its upper end is the known mass times ``(S + f0 + 1) / S`` (``S``
    known inputs, ``f0`` Chao's estimate of the inputs no sampler found, from how many of the
    restarts and the search found each one). ``trusted`` is False (``extra["trust"]["reasons"]``
    says why) when the fresh hits' effective sample size is below :data:`MIN_TRUST_ESS`, the
    restarts disagree beyond their errors (chi-square test, p < 0.01), the known inputs' error
    (c) is over twice the others, or, with only known inputs hit, fewer than 10 final draws
    were bad or the capture-recapture coverage is below 0.9.

    ``seeds [k, n_positions]``: inputs found by a search that start every run's proposal (half
    its mass on their tokens); ``search`` > 0 spends that fraction of the budget on
    :func:`search_inputs` first and starts from what it finds (Wu & Hilton, section 6.2).
    Search calls count against the budget.
    """
    _check_budget("ce", budget)
    if temperature is not None:
        raise MindscopeError("ce tunes its proposal from samples: it takes no temperature")
    if not 0.0 < elite < 1.0 or not 0.0 < adapt_fraction < 1.0 or not 0.0 < defensive < 1.0:
        raise MindscopeError("elite, adapt_fraction and defensive must be in (0, 1)")
    if not 0.0 <= expand <= (1.0 - adapt_fraction) / 2:
        raise MindscopeError(
            f"expand must be in [0, {(1.0 - adapt_fraction) / 2:g}] (half of what adaptation "
            f"leaves), got {expand}"
        )
    if restarts < 1 or restarts * 64 > budget * adapt_fraction:
        raise MindscopeError(
            f"restarts must be in [1, {max(1, int(budget * adapt_fraction) // 64)}] for a budget "
            f"of {budget}, got {restarts}"
        )
    z = _z(confidence)
    dist = scorer.dist
    gen = torch.Generator().manual_seed(seed)
    start = scorer.calls
    logq0 = dist.probs.log()
    n_found = 0
    known: list[torch.Tensor] = []  # distinct bad inputs seen before the final draws
    finders: list[set[tuple[int, ...]]] = []  # per sampler (search, each restart): what it found
    run_start: list[torch.Tensor | None] = [None] * restarts  # per restart: its own search's finds
    run_found: list[set[tuple[int, ...]]] = [set() for _ in range(restarts)]
    if search > 0:
        if not 0.0 < search < adapt_fraction:
            raise MindscopeError(f"search must be in (0, adapt_fraction), got {search}")
        if per_restart_search and restarts > 1:
            # one search per restart, each starting only its own restart: the restarts stay
            # independent samplers, so what several of them found is evidence of coverage
            for k in range(restarts):
                f_k = search_inputs(scorer, int(budget * search) // restarts, gen=gen)
                if len(f_k):
                    known.append(f_k)
                    run_found[k].update(tuple(r) for r in f_k.tolist())
                    run_start[k] = f_k
                    n_found += int(f_k.shape[0])
        else:
            found = search_inputs(scorer, int(budget * search), gen=gen)
            n_found = int(found.shape[0])
            if n_found:
                known.append(found)
                finders.append({tuple(r) for r in found.tolist()})
                seeds = found if seeds is None else torch.cat([seeds.long(), found])
    if seeds is not None:
        if seeds.ndim != 2 or seeds.shape[1] != dist.n_positions or len(seeds) == 0:
            raise MindscopeError(
                f"seeds must be [k >= 1, {dist.n_positions}] free-token ids, got "
                f"{tuple(seeds.shape)}"
            )
        ok = dist.log_prob(seeds.long()) > -math.inf
        if not ok.any():
            raise MindscopeError("no seed input lies in the input distribution's support")
        logq0 = _fit_table(
            dist, seeds.long()[ok], torch.ones(int(ok.sum()), dtype=torch.float64), prior=1.0
        )
    n_runs = restarts
    per = max(64, min(round_size, budget // 8) // n_runs)
    adapt_budget = int(budget * adapt_fraction)
    logqs = []
    for k in range(n_runs):
        own = run_start[k]
        if own is None:
            logqs.append(logq0.clone())
        else:  # half the start's mass on this restart's own finds
            fitted = _fit_table(dist, own, torch.ones(len(own), dtype=torch.float64), 1.0)
            logqs.append(torch.logaddexp(fitted + math.log(0.5), logq0 + math.log(0.5)))
    levels: list[list[float]] = [[] for _ in range(n_runs)]
    hits_x: list[list[torch.Tensor]] = [[] for _ in range(n_runs)]
    hits_lw: list[list[torch.Tensor]] = [[] for _ in range(n_runs)]
    reached = [False] * n_runs
    done = [False] * n_runs
    while not all(done):
        active = [k for k in range(n_runs) if not done[k]]
        if scorer.calls - start + per * len(active) > adapt_budget:
            break
        draws = [_sample_mixture(dist, logqs[k], per, gen, defensive) for k in active]
        hit_all, m_all = scorer.margins(torch.cat([x for x, _ in draws]))  # one batched call
        for j, k in enumerate(active):
            x, logw = draws[j]
            hit, m = hit_all[j * per : (j + 1) * per], m_all[j * per : (j + 1) * per]
            hits_x[k].append(x[hit])
            hits_lw[k].append(logw[hit])
            if hit.any():
                known.append(x[hit])
                run_found[k].update(tuple(r) for r in x[hit].tolist())
            n_el = max(1, int(elite * per))
            level = min(0.0, float(m.topk(n_el).values[-1]))
            levels[k].append(level)
            if level >= 0.0:  # fit p(x | bad) on all bad inputs this run saw (unbiased weights)
                xs, lws = torch.cat(hits_x[k]), torch.cat(hits_lw[k])
            else:
                xs, lws = x[m >= level], logw[m >= level]
            new = _fit_table(dist, xs, (lws - lws.max()).exp(), prior)
            logqs[k] = torch.logaddexp(
                new + math.log(1 - smoothing), logqs[k] + math.log(smoothing)
            )
            if reached[k]:
                done[k] = True
            reached[k] = reached[k] or level >= 0.0
    n_expanded = 0
    if expand > 0 and known:
        # the neighbours of every bad input seen so far: found inputs join the known mass
        more = expand_neighbours(
            scorer, torch.unique(torch.cat(known), dim=0), int(budget * expand)
        )
        n_expanded = int(more.shape[0])
        if n_expanded:
            known.append(more)
    # final draws: stratified over the components of the mixture
    n = budget - (scorer.calls - start)
    sizes = [n // n_runs + (1 if k < n % n_runs else 0) for k in range(n_runs)]
    xs_f, comp = [], []
    for k in range(n_runs):
        x, _ = _sample_mixture(dist, logqs[k], sizes[k], gen, defensive)
        xs_f.append(x)
        comp.append(torch.full((sizes[k],), k))
    x = torch.cat(xs_f)
    c = torch.cat(comp)
    hit, _ = scorer.margins(x)
    # the distinct bad inputs seen before the final draws have exactly known mass; the final
    # draws estimate the rest (unbiased given the known set, and never below its mass)
    kx = torch.unique(torch.cat(known), dim=0) if known else x[:0]
    n_known = int(kx.shape[0])
    known_set = {tuple(r) for r in kx.tolist()}
    fresh = hit.clone()
    for i in hit.nonzero().squeeze(-1).tolist():
        if tuple(x[i].tolist()) in known_set:
            fresh[i] = False
    logp, lq, lmix = _log_mix(dist, logqs, x, defensive)
    lw = logp - lmix  # balance-heuristic weights
    lt = torch.where(fresh, lw, torch.full_like(lw, -math.inf))
    k_hits = int(hit.sum())
    rest, _, ess = _is_mean(lt)
    known_mass, second = 0.0, 0.0
    if n_known:
        kp, _, kmix = _log_mix(dist, logqs, kx, defensive)
        known_mass = float(kp.exp().sum())
        second = float(torch.exp(2 * kp - kmix).sum())
    est = known_mass + rest
    # (a) stratified standard error of the mixture estimate
    var = 0.0
    per_est, per_se = [], []
    for k in range(n_runs):
        sel = c == k
        nk = int(sel.sum())
        if nk == 0:
            continue
        shift = float(lt[sel].max()) if torch.isfinite(lt[sel]).any() else 0.0
        wk = torch.where(fresh[sel], (lt[sel] - shift).exp(), torch.zeros(nk, dtype=torch.float64))
        var += float(wk.var(unbiased=True) if nk > 1 else 0.0) * math.exp(2 * shift) * nk / n**2
        # the component's own estimate (weights against its own defensive mixture: unbiased)
        lown = logp[sel] - torch.logaddexp(
            lq[k, sel] + math.log1p(-defensive), logp[sel] + math.log(defensive)
        )
        e_k, se_k, _ = _is_mean(torch.where(fresh[sel], lown, torch.full_like(lown, -math.inf)))
        per_est.append(known_mass + e_k)
        per_se.append(se_k)
    se_within = math.sqrt(var)
    # (b) disagreement between restarts
    se_between, q_pvalue = 0.0, 1.0
    if len(per_est) > 1:
        kk = len(per_est)
        mean_k = sum(per_est) / kk
        sd = math.sqrt(sum((e - mean_k) ** 2 for e in per_est) / (kk - 1))
        se_between = sd / math.sqrt(kk) * _t_quantile(kk - 1, confidence) / z
        floor = kk * se_within**2
        qstat = sum(
            (e - est) ** 2 / max(s * s, floor, 1e-300) for e, s in zip(per_est, per_se, strict=True)
        )
        q_pvalue = _chi2_sf(qstat, kk - 1) if rest > 0 else 1.0
    # (c) the variance the known bad inputs would add were they not known: a proposal that
    # under-weights them likely under-weights their unseen neighbours too
    se_known = math.sqrt(max(0.0, second - known_mass**2) / max(1, n))
    se = max(se_within, se_between, se_known)
    lo, hi = _interval(est, se, n, z)
    lo_raw, hi_raw = _interval(est, se_within, n, z)
    lo, hi = max(lo, known_mass), max(hi, known_mass)
    # (d) capture-recapture over the samplers (each restart, the search): how many bad inputs
    # did several of them find? (Chao's incidence coverage and unseen-count estimates)
    finders += run_found
    coverage, unseen = _incidence(finders)
    reasons = []
    if rest == 0 and known_mass > 0:
        # every final hit was a known input: the estimate is their exact mass, and what is
        # missing is bounded by the inputs no sampler found (one more than Chao's estimate, of
        # the known inputs' average mass). Counted among the samplers' own finds: inputs added
        # by neighbour expansion carry no capture-recapture evidence, so they do not shrink it
        sampled = len(set().union(*finders)) if finders else 0
        base = max(1, min(n_known, sampled) if sampled else n_known)
        hi = max(hi, min(1.0, known_mass * (base + unseen + 1) / base))
        if k_hits < MIN_TRUST_ESS:
            reasons.append(f"only {k_hits} final draws were bad")
        if len(finders) < 2 or coverage < 0.9:
            reasons.append(f"the restarts found different bad inputs (coverage {coverage:.2f})")
    else:
        if ess < MIN_TRUST_ESS:
            reasons.append(f"effective sample size {ess:.1f} < {MIN_TRUST_ESS:g}")
        if se_known > 2 * max(se_within, se_between):
            reasons.append("bad inputs found while adapting are under-weighted by the proposal")
    if q_pvalue < 0.01:
        reasons.append(f"restarts disagree (p = {q_pvalue:.2g})")
    info = {
        "levels": levels[0] if n_runs == 1 else levels,
        "adapt_rounds": max(len(v) for v in levels),
        "samples": n,
        "seeded": seeds is not None,
        "search_found": n_found,
        "expanded_found": n_expanded,
        "restarts": n_runs,
        "trust": {
            "trusted": not reasons,
            "reasons": reasons,
            "restart_estimates": per_est,
            "restart_pvalue": q_pvalue,
            "se_samples": se_within,
            "se_restarts": se_between,
            "se_known": se_known,
            "known_bad_inputs": n_known,
            "known_mass": known_mass,
            "sample_part": rest,
            "finder_coverage": coverage,
            "unseen_estimate": unseen,
            "ci_samples": [lo_raw, hi_raw],
        },
    }
    return RareEstimate(
        "ce",
        est,
        lo,
        hi,
        confidence,
        ess,
        scorer.calls - start,
        k_hits,
        math.nan,
        info,
        trusted=not reasons,
    )


# --------------------------------------------------------------------- entry
def estimate_rare(
    h: Any,
    input_dist: InputDistribution,
    bad_output: BadOutput,
    method: Literal["naive", "itgis", "mhis", "ce", "ce+search"] | str = DEFAULT_METHOD,
    budget: int = 2**14,
    *,
    seed: int = 0,
    confidence: float = 0.9,
    temperature: float | None = None,
    batch_size: int = 512,
    **options: Any,
) -> RareEstimate:
    """Estimate ``Pr_{x ~ input_dist}[bad_output(model(x))]`` with at most ``budget`` model calls.

    Args:
        h: a causal-LM model handle (``ms.load_model(...)``).
        input_dist: the :class:`InputDistribution` of inputs.
        bad_output: the :class:`BadOutput` (see :func:`mindscope.audit.rare.bad_output`).
        method: ``naive``, ``itgis``, ``mhis``, ``ce`` (cross-entropy adaptive importance
            sampling; ``seeds=`` search-found inputs start its proposal) or ``ce+search`` (the
            default: ``ce`` with :data:`SEARCHED_OPTIONS`, a search per restart and the found
            bad inputs' neighbours; ``options`` override them).
        budget: model calls (sequences run, pilot and gradient passes included).
        seed: seeds every random draw.
        confidence: nominal coverage of the interval.
        temperature: fixed temperature; ``None`` tunes it from a pilot batch.
        batch_size: sequences per forward pass.
        options: method-specific keywords (``n_rounds``, ``grad_batch``, ``n_chains``, ...).
    """
    if method not in METHODS:
        raise MindscopeError(f"unknown method {method!r}: choose one of {', '.join(METHODS)}")
    _check_budget(method, budget)
    scorer = Scorer(h, input_dist, bad_output, batch_size=batch_size)
    if method == "naive":
        if temperature is not None or options:
            raise MindscopeError("naive sampling takes no temperature or options")
        return naive(scorer, budget, seed=seed, confidence=confidence)
    if method == SEARCHED:
        opts = {**SEARCHED_OPTIONS, **options}
        r = ce(scorer, budget, temperature=temperature, seed=seed, confidence=confidence, **opts)
        return replace(r, method=SEARCHED)
    methods: dict[str, Callable[..., RareEstimate]] = {"itgis": itgis, "mhis": mhis, "ce": ce}
    fn = methods[method]
    return fn(scorer, budget, temperature=temperature, seed=seed, confidence=confidence, **options)
