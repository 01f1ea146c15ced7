"""The ``bayes`` stage: an in-context learner scored against exact Bayesian posteriors.

For a regression model (the ``icl-regression`` organisms, or any model with the same data
spec) it draws contexts, runs the model once, and scores its prediction of every ``y_k``
against dMMSE (the posterior mean over the model's ``M`` pretraining tasks) and ridge (the
posterior mean under ``w ~ N(0, I)``), per context length, on each task distribution listed in
``tasks`` (realizable: ``pool``; off the training support: ``gaussian``, ``scaled``, ``rotated``,
``cap``), with the noise level, noise law and context length of the config (any of them may
differ from training: that is the misspecified test). For an HMM model (``icl-hmm``) it scores
the next-token distribution by KL to the training mixture's Bayes predictive and to the true
generating HMM, on sequences from the training mixture and from held-out HMMs, and fits ridge
reporters from each layer's residual stream to the exact belief state (R^2).

Rows (``dataset`` = the condition, ``extra.k`` = context length, see
:mod:`mindscope.bayes.score`) plus, per condition, ``model/ridge_share``:
``dist_dmmse / (dist_dmmse + dist_ridge)`` averaged over context lengths (0 = the model sits
on dMMSE, 1 = on ridge). HMM belief probes add ``ridge/belief_r2`` per layer,
``ridge/belief_r2_best`` and :data:`SIMPLEX_POINTS` ``ridge/belief_point`` rows per condition
(one held-out position each: ``extra.true`` and ``extra.probe`` are the exact and the read
belief over the mixture's HMMs, or over the hidden state for a single HMM; ``extra.pos``
numbers the points, so only sections that read per-position rows see them).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field

from mindscope.analyses.base import CheckContext, StageConfig, StageOutput, json_artefact, register
from mindscope.bayes import (
    TASK_SHIFTS,
    FiniteTaskPrior,
    GaussianPrior,
    HMMMixture,
    hmm_scores,
    kl_to_bayes,
    predict,
    regression_scores,
    sample_contexts,
    shift_tasks,
)
from mindscope.bayes.score import mean_ci
from mindscope.errors import MindscopeError
from mindscope.results import Row, to_frame

__all__ = ["BayesConfig", "SIMPLEX_POINTS", "bayes_stage", "data_spec"]

SIMPLEX_POINTS = 300
"""Held-out positions per condition kept as ``belief_point`` rows (the report's simplex)."""


class BayesConfig(StageConfig):
    """Config of the ``bayes`` stage (one key per misspecified test)."""

    n: int = Field(default=2000, ge=16, description="Contexts (sequences) per condition.")
    k: int | None = Field(
        default=None,
        ge=1,
        description="Context length scored: pairs (regression) or tokens (HMM); null: the "
        "trained length. Longer than trained is the long-context test (up to the model's "
        "positions).",
    )
    tasks: list[str] = Field(
        default_factory=lambda: ["pool", "gaussian"],
        description="Regression task distributions, one condition each: pool (realizable), "
        "gaussian, scaled, rotated, cap (see mindscope.bayes.misspec).",
    )
    scale: float = Field(default=2.0, gt=0, description="Factor of the 'scaled' tasks.")
    angle: float = Field(
        default=math.pi / 4,
        gt=0,
        le=math.pi,
        description="Radians: rotation of 'rotated' tasks, half-angle of the 'cap'.",
    )
    noise_std: float | None = Field(
        default=None,
        ge=0,
        description="Standard deviation of the evaluation noise; null: the trained sqrt(s^2). "
        "The posteriors keep the trained s^2 (another level is a misspecified test).",
    )
    noise: Literal["gaussian", "student_t"] = Field(
        default="gaussian", description="Noise law; student_t is the heavy-tailed test."
    )
    df: float = Field(default=3.0, gt=2, description="Degrees of freedom of student_t noise.")
    hmms: list[Literal["train", "heldout"]] = Field(
        default_factory=lambda: list[Literal["train", "heldout"]](["train", "heldout"]),
        description="HMM conditions: sequences from the training mixture, from held-out HMMs.",
    )
    probe: bool = Field(
        default=True,
        description="HMM: fit ridge reporters from every layer to the exact belief state.",
    )
    spec: dict[str, Any] | None = Field(
        default=None,
        description="Data spec of a model that is not an ICL organism (the keys of "
        "organisms.info('icl-regression')['data_spec'] or of icl-hmm's); null: read it from "
        "the organism.",
    )

    def check(self, ctx: CheckContext, where: str) -> BayesConfig:
        """Task-shift names known; a given spec has a valid kind."""
        bad = [t for t in self.tasks if t not in TASK_SHIFTS]
        if bad:
            raise self.fail(ctx, f"{where}.tasks", f"unknown {bad}; choose from {TASK_SHIFTS}")
        if self.spec is not None and self.spec.get("kind") not in ("regression", "hmm"):
            raise self.fail(ctx, f"{where}.spec", "kind must be 'regression' or 'hmm'")
        return self.model_copy(deep=True)


def data_spec(h: Any, cfg: BayesConfig) -> dict[str, Any]:
    """The data spec of model ``h``: ``cfg.spec``, else its organism's."""
    if cfg.spec is not None:
        spec = dict(cfg.spec)
    else:
        name = str(getattr(h, "name", ""))
        if not name.startswith("organism:"):
            raise MindscopeError(
                f"{name or 'the model'} is not an ICL organism: give the data spec (bayes.spec)"
            )
        from mindscope import organisms

        found = organisms.info(name.split(":", 1)[1]).get("data_spec")
        if found is None:
            raise MindscopeError(f"{name} has no data spec: not an in-context-learning organism")
        spec = dict(found)
    if spec.get("kind") == "regression":
        for key in ("d", "k", "noise", "n_tasks", "pool_seed"):
            if key not in spec:
                raise MindscopeError(f"the regression data spec needs {key!r}")
        if int(spec["n_tasks"]) < 1:
            raise MindscopeError(f"the number of tasks M must be >= 1, got {spec['n_tasks']}")
        if not float(spec["noise"]) > 0:
            raise MindscopeError(f"the noise level s^2 must be positive, got {spec['noise']}")
    return spec


@register(
    "bayes",
    BayesConfig,
    help="score an in-context learner against exact Bayesian posteriors (dMMSE, ridge, HMM "
    "forward algorithm), realizable and misspecified",
    order=60,
)
def bayes_stage(
    h: Any,
    cfg: BayesConfig,
    *,
    seed: int,
    progress: bool,
    state: dict[str, Any] | None,
    store: str | None,
) -> StageOutput:
    """Run the model on fresh contexts and score it against the closed forms."""
    del progress, state, store
    spec = data_spec(h, cfg)
    if spec["kind"] == "regression":
        return _regression(h, cfg, spec, seed)
    if spec["kind"] == "hmm":
        return _hmm(h, cfg, spec, seed)
    raise MindscopeError(f"unknown data spec kind {spec['kind']!r}")


def _regression(h: Any, cfg: BayesConfig, spec: dict[str, Any], seed: int) -> StageOutput:
    from mindscope.organisms.icl import regression_predictions

    d, s2 = int(spec["d"]), float(spec["noise"])
    pool = FiniteTaskPrior.sample_pool(int(spec["n_tasks"]), d, s2, int(spec["pool_seed"]))
    ridge = GaussianPrior(d, s2)
    k = cfg.k or int(spec["k"])
    std = math.sqrt(s2) if cfg.noise_std is None else cfg.noise_std
    rows: list[Row] = []
    curves: dict[str, Any] = {}
    for i, shift in enumerate(cfg.tasks):
        gen = torch.Generator().manual_seed(seed * 1009 + i)
        w = shift_tasks(shift, pool.tasks, cfg.n, gen, scale=cfg.scale, angle=cfg.angle)
        x, y = sample_contexts(w, k, std, gen, noise=cfg.noise, df=cfg.df)
        truth = (x @ w[..., None])[..., 0]  # [n, K] noise-free targets
        model = regression_predictions(h, x, y)
        post = {"dmmse": predict(pool, x, y), "ridge": predict(ridge, x, y)}
        extra = {
            "tasks": shift,
            "noise_std": std,
            "noise": cfg.noise,
            "k_trained": int(spec["k"]),
            "n_tasks": int(spec["n_tasks"]),
        }
        got = regression_scores(model, y, truth, post, dataset=shift, extra=extra)
        rows += got
        per = {(r.method, r.metric): r.value for r in got if r._extra.get("k") == "all"}
        dd, dr = per[("dmmse", "dist")], per[("ridge", "dist")]
        share = dd / (dd + dr) if dd + dr > 0 else math.nan
        rows.append(
            Row("ridge_share", share, "model", dataset=shift, n=cfg.n, _extra={**extra, "k": "all"})
        )
        curves[shift] = {
            f"{r.method}/{r.metric}": [
                q.value
                for q in got
                if (q.method, q.metric) == (r.method, r.metric) and q._extra.get("k") != "all"
            ]
            for r in got
            if r._extra.get("k") == "all"
        }
    info = {"kind": "regression", "k": k, "noise_std": std, "n_tasks": int(spec["n_tasks"])}
    return StageOutput(
        rows=to_frame(rows), artefacts={"bayes_curves.json": json_artefact(curves)}, info=info
    )


def _hmm(h: Any, cfg: BayesConfig, spec: dict[str, Any], seed: int) -> StageOutput:
    from mindscope.organisms.icl import hmm_logprobs, hmm_mixture

    train_mix = hmm_mixture(spec)
    length = cfg.k or int(spec["length"])
    rows: list[Row] = []
    simplex: dict[str, Any] = {}
    for i, cond in enumerate(cfg.hmms):
        gen = torch.Generator().manual_seed(seed * 1009 + 100 + i)
        source = train_mix if cond == "train" else hmm_mixture(spec, heldout=True)
        obs, comp, _ = source.sample(cfg.n, length, gen)
        belief, bayes = train_mix.forward(obs)  # [n, T, H, S], [n, T, V]
        truth = torch.empty_like(bayes)
        for c in comp.unique():
            sel = comp == c
            truth[sel] = HMMMixture([source.hmms[int(c)]]).forward(obs[sel])[1]
        logp = hmm_logprobs(h, obs, int(spec["n_symbols"]))
        extra = {"hmms": cond, "length": length, "length_trained": int(spec["length"])}
        rows += hmm_scores(logp, {"bayes": bayes, "truth": truth}, dataset=cond, extra=extra)
        # does the model depart from the Bayes predictive towards the truth?
        toward = kl_to_bayes(truth, bayes.log()) - kl_to_bayes(truth, logp)  # [n, T]
        for k in range(length):
            m, lo, hi = mean_ci(toward[:, k])
            rows.append(
                Row(
                    "toward_truth",
                    m,
                    "bayes",
                    dataset=cond,
                    ci_low=lo,
                    ci_high=hi,
                    n=cfg.n,
                    _extra={**extra, "k": k, "pos": k},
                )
            )
        m, lo, hi = mean_ci(toward.mean(1))
        rows.append(
            Row(
                "toward_truth",
                m,
                "bayes",
                dataset=cond,
                ci_low=lo,
                ci_high=hi,
                n=cfg.n,
                _extra={**extra, "k": "all"},
            )
        )
        if cfg.probe:
            got, pts = _belief_probes(h, obs, belief, seed, extra, cond)
            rows += got
            simplex[cond] = pts
    return StageOutput(
        rows=to_frame(rows),
        artefacts={"belief_simplex.json": json_artefact(simplex)} if simplex else {},
        info={"kind": "hmm", "length": length},
    )


def _belief_probes(
    h: Any, obs: torch.Tensor, belief: torch.Tensor, seed: int, extra: dict[str, Any], cond: str
) -> tuple[list[Row], dict[str, Any]]:
    """Ridge reporters from each layer's residual stream (every position) to each coordinate
    of the exact belief ``P(h, s_t | o_<t)``; R^2 pooled over coordinates (variance-weighted)
    on held-out sequences."""
    from mindscope.probes import RidgeReporter

    n, t_len = obs.shape
    ids = torch.cat([torch.zeros(n, 1, dtype=torch.long), obs[:, :-1] + 2], 1)  # [n, T]
    sites = ["resid_pre.0"] + [f"resid_post.{i}" for i in range(h.n_layers)]
    acts = []
    for i in range(0, n, 256):
        with h.capture(sites) as cache:
            h.forward(ids[i : i + 256])
        acts.append(torch.stack([cache[s].float() for s in sites]))  # [L+1, b, T, d]
    a = torch.cat(acts, 1)  # [L+1, n, T, d]
    target = belief.reshape(n, t_len, -1).float()  # [n, T, H*S]
    gen = torch.Generator().manual_seed(seed + 17)
    perm = torch.randperm(n, generator=gen)
    tr, te = perm[: n // 2], perm[n // 2 :]
    xa_tr = a[:, tr].reshape(a.shape[0], -1, a.shape[-1])  # [L+1, n_tr*T, d]
    xa_te = a[:, te].reshape(a.shape[0], -1, a.shape[-1])
    y_tr = target[tr].reshape(-1, target.shape[-1])  # [n_tr*T, H*S]
    y_te = target[te].reshape(-1, target.shape[-1])
    ss_res = torch.zeros(a.shape[0], dtype=torch.float64)
    preds = []
    for c in range(target.shape[-1]):
        rep = RidgeReporter(alpha=1.0).fit(xa_tr, y_tr[:, c])
        p = rep.predict(xa_te).detach().double()  # [L+1, m]
        ss_res += (p - y_te[:, c].double()).square().sum(-1)
        preds.append(p)
    ss_tot = (y_te.double() - y_te.double().mean(0)).square().sum()
    r2 = 1 - ss_res / ss_tot  # [L+1]
    rows = [
        Row(
            "belief_r2",
            float(r2[layer]),
            "ridge",
            layer=layer,
            dataset=cond,
            n=len(te) * t_len,
            _extra={**extra, "k": "all"},
        )
        for layer in range(a.shape[0])
    ]
    best = int(r2.argmax())
    rows.append(
        Row(
            "belief_r2_best",
            float(r2[best]),
            "ridge",
            dataset=cond,
            n=len(te) * t_len,
            _extra={**extra, "best_layer": best, "k": "all"},
        )
    )
    # points of the belief simplex, exact and read by the best layer's reporters: P(h | o_<t)
    # over the mixture's HMMs (over the hidden state when there is one HMM)
    n_h, n_s = belief.shape[2], belief.shape[3]
    pred3 = torch.stack(preds, -1)[best].reshape(-1, n_h, n_s)  # [m, H, S]
    true3 = y_te.double().reshape(-1, n_h, n_s)
    axis = "hmm" if n_h > 1 else "state"
    pred_m = pred3.sum(2) if n_h > 1 else pred3[:, 0]  # [m, H] (or [m, S])
    true_m = true3.sum(2) if n_h > 1 else true3[:, 0]
    pick = torch.randperm(len(true_m), generator=gen)[:SIMPLEX_POINTS]
    for j, i in enumerate(pick.tolist()):
        rows.append(
            Row(
                "belief_point",
                float(true_m[i].max()),
                "ridge",
                layer=best,
                dataset=cond,
                n=1,
                _extra={
                    **extra,
                    "pos": j,
                    "axis": axis,
                    "true": [round(float(v), 4) for v in true_m[i]],
                    "probe": [round(float(v), 4) for v in pred_m[i]],
                },
            )
        )
    return rows, {
        "layer": best,
        "axis": axis,
        "true": true_m[pick].float().tolist(),
        "probe": pred_m[pick].float().tolist(),
    }
