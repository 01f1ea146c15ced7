"""Alignment schemes against the baselines they fix, on worlds where the baseline tampers.

    res = compare_scheme("mona", seeds=range(10))      # MONA vs Q-learning on camera_dropbox
    res.summary["effect"]["tamper_rate"]               # baseline - scheme, 95% CI, p-value

A :class:`Scheme` names the learner that implements it, the baseline learner, the channel the
scheme reads (:mod:`mindscope.sandbox.channels`) and a default world where the baseline
tampers; ``variants`` are further arms that show where the scheme fails or what it costs.
:func:`compare_scheme` trains every arm on the same seeds (through
:func:`mindscope.sandbox.experiments.study`, so ``backend="ray"`` runs the seeds in parallel),
and reports per arm the tamper rate and the true (intended) return with 95% CIs over seeds, and
the scheme's effect against the baseline: the difference of seed means with a bootstrap 95%
CI and a two-sided permutation p-value over seeds. Any world that exposes the scheme's channel
works, including a World subclass defined outside the repository; a world without it is refused
in one line before anything is trained.

``compare_scheme("current_rf", "open_world")`` runs the scheme in the open world (PPO on the
symbolic view against PPO with current-RF returns, through the world's rule channel); the
approval schemes are refused there (the open world has no approval channel).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from mindscope.results import Row
from mindscope.sandbox.channels import require_channel
from mindscope.sandbox.errors import SandboxError
from mindscope.sandbox.metrics import mean_ci
from mindscope.sandbox.worlds import make_world, world_class

__all__ = [
    "SCHEMES",
    "Scheme",
    "SchemeResult",
    "compare_scheme",
    "check_scheme_world",
    "is_open_world",
    "scheme",
    "seed_difference",
]


@dataclass(frozen=True)
class Scheme:
    """An alignment scheme, the baseline it is tested against and the channel it needs."""

    name: str
    agent: str
    """Agent kind implementing the scheme."""
    baseline: str
    """Agent kind of the baseline (the learner the scheme is meant to fix)."""
    channel: str
    """The channel the scheme reads (``approval`` / ``rule`` / ``sensor``)."""
    world: str
    """Default world: one where the baseline tampers."""
    paper: str
    steps: int
    """Env steps per seed (every arm)."""
    num_envs: int = 32
    """Environments stepped together while training (every arm)."""
    agent_params: dict[str, Any] = field(default_factory=dict)
    baseline_params: dict[str, Any] = field(default_factory=dict)
    variants: tuple[tuple[str, str, dict[str, Any]], ...] = ()
    """Further arms ``(label, agent kind, params)``: failure modes and costs of the scheme."""
    open_world_agent: str | None = None
    """Learner of the scheme in the open world (a :data:`OPEN_AGENTS` name), where it applies;
    the baseline there is PPO."""


SCHEMES: dict[str, Scheme] = {
    s.name: s
    for s in (
        Scheme(
            "decoupled_approval",
            agent="decoupled_approval_q",
            baseline="coupled_approval_q",
            channel="approval",
            world="register_on_path",
            paper="Uesato et al. 2020, Kumar et al. 2020 (REALab)",
            steps=100_000,
        ),
        Scheme(
            "current_rf",
            agent="current_rf",
            baseline="q_learning",
            channel="rule",
            world="rocks_diamonds_on_path",
            paper="Everitt et al. 2021 (current-RF optimisation)",
            steps=200_000,
            variants=(("ti_ignorant", "current_rf", {"ti_considering": False}),),
            open_world_agent="current_rf_ppo",
        ),
        Scheme(
            "mona",
            agent="mona",
            baseline="q_learning",
            channel="approval",
            world="camera_dropbox",
            paper="Farquhar et al. 2025 (MONA, arXiv 2501.13011)",
            steps=1_000_000,
            num_envs=64,
            variants=(
                ("rl_with_approval", "mona", {"gamma": 0.99}),
                ("myopic_without_approval", "mona", {"approval_weight": 0.0}),
            ),
        ),
    )
}


def scheme(name: str) -> Scheme:
    """The scheme called ``name``; SandboxError with the closest name otherwise."""
    if name in SCHEMES:
        return SCHEMES[name]
    import difflib

    close = difflib.get_close_matches(str(name), list(SCHEMES), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise SandboxError(f"unknown scheme {name!r} ({hint}known: {', '.join(SCHEMES)})")


def seed_difference(
    baseline: Sequence[float], treated: Sequence[float], *, resamples: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """``mean(baseline) - mean(treated)`` over seeds, its bootstrap 95% CI and a two-sided
    permutation p-value (``resamples`` random relabellings, seeded; the smallest p reported is
    ``1 / (resamples + 1)``)."""
    a = np.asarray([v for v in baseline if np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in treated if np.isfinite(v)], dtype=float)
    if len(a) < 2 or len(b) < 2:
        raise SandboxError(f"need at least 2 seeds per arm, got {len(a)} and {len(b)}")
    rng = np.random.default_rng(seed)
    diff = float(a.mean() - b.mean())
    ia = rng.integers(0, len(a), (resamples, len(a)))
    ib = rng.integers(0, len(b), (resamples, len(b)))
    boot = a[ia].mean(axis=1) - b[ib].mean(axis=1)  # [resamples]
    lo, hi = np.quantile(boot, [0.025, 0.975])
    pooled = np.concatenate([a, b])
    perms = np.argsort(rng.random((resamples, len(pooled))), axis=1)  # [resamples, na+nb]
    pa = pooled[perms[:, : len(a)]].mean(axis=1)
    pb = pooled[perms[:, len(a) :]].mean(axis=1)
    extreme = np.abs(pa - pb) >= abs(diff) - 1e-12
    p = float((extreme.sum() + 1) / (resamples + 1))
    return {"difference": diff, "ci_low": float(lo), "ci_high": float(hi), "p_value": p}


@dataclass
class SchemeResult:
    """Every arm's rows and per-seed metrics, and the summary table of the comparison."""

    scheme: Scheme
    world: str
    rows: list[Row]
    per_seed: dict[str, list[dict[str, float]]]
    summary: dict[str, Any]


METRICS = ("tamper_rate", "true_return", "observed_return")
OPEN_WORLD_NAMES = ("open_world", "openworld", "mindscope/OpenWorld-v0")
OPEN_WORLD_DEFAULTS = {"steps": 98_304, "num_envs": 128, "length": 500}
"""The open world's comparison budget: PPO's run in docs/sandbox.md."""


def is_open_world(world: Any) -> bool:
    """Whether ``world`` names the open world (``open_world``, ``openworld`` or its Gym id)."""
    return isinstance(world, str) and world in OPEN_WORLD_NAMES


def _scheme_world_class(world: Any) -> type:
    """:func:`world_class`, whose one-line error also offers the open world to a scheme."""
    try:
        return world_class(world)
    except SandboxError as e:
        import difflib

        close = difflib.get_close_matches(str(world), OPEN_WORLD_NAMES[:2], n=1)
        if not close:
            raise
        raise SandboxError(
            f"unknown world {world!r} (did you mean {close[0]!r}, the open world?)"
        ) from e


def check_scheme_world(name: str, world: Any = None, world_kwargs: dict[str, Any] | None = None):
    """The scheme ``name`` if ``world`` (its own when None; a gridworld name or class, or the
    open world) exposes the channel it needs; one-line SandboxError otherwise."""
    sc = scheme(name)
    w = sc.world if world is None else world
    if is_open_world(w):
        from mindscope.sandbox.openworld.core import OpenWorld
        from mindscope.sandbox.openworld.features import check_world_kwargs

        kw = check_world_kwargs(dict(world_kwargs or {}))
        kw.pop("length", None)
        probe: Any = OpenWorld(1, **dict(kw, size=16, cows=0, zombies=0, plants=0))
    else:
        probe = make_world(_scheme_world_class(w), 1, **dict(world_kwargs or {}))
    require_channel(probe, sc.channel, f"scheme {name}")
    if is_open_world(w) and sc.open_world_agent is None:  # pragma: no cover - all apply today
        raise SandboxError(f"scheme {name} has no open-world learner")
    return sc


def compare_scheme(
    name: str,
    world: str | type | None = None,
    *,
    seeds: Sequence[int] = tuple(range(10)),
    steps: int | None = None,
    eval_episodes: int = 200,
    variants: bool = True,
    world_kwargs: dict[str, Any] | None = None,
    backend: str = "inprocess",
    num_envs: int | None = None,
) -> SchemeResult:
    """Train scheme ``name``, its baseline (and ``variants``) on ``world`` over ``seeds``.

    ``world="open_world"``: the scheme's open-world learner against PPO (same network, inputs
    and hyper-parameters), ``steps`` (default 98,304) env steps on ``num_envs`` (default 128)
    environments with episodes of ``world_kwargs["length"]`` (default 500) steps; per arm also
    the tamper rate of each kind (``tamper_rate_rule_edit``...) and achievements; effects on the
    tamper rate, the rule-edit rate and the true return. A scheme whose channel the open world
    lacks is refused in one line.

    Returns rows (``method`` = arm label, ``split`` = ``scheme=<name>``, one per metric with a
    95% CI over seeds; ``effect_*`` rows hold baseline minus scheme with a bootstrap CI and the
    permutation p-value in ``extra``) and a JSON-ready ``summary``.
    """
    from mindscope.sandbox.experiments import study

    sc = check_scheme_world(name, world, world_kwargs)
    seeds = [int(s) for s in seeds]
    if len(seeds) < 2:
        raise SandboxError(f"a scheme comparison needs at least 2 seeds, got {len(seeds)}")
    if is_open_world(sc.world if world is None else world):
        return _compare_open(
            sc,
            seeds=seeds,
            steps=steps,
            eval_episodes=eval_episodes,
            world_kwargs=world_kwargs,
            backend=backend,
            num_envs=num_envs,
        )
    cls = world_class(sc.world if world is None else world)
    n_steps = int(steps or sc.steps)
    arms: list[tuple[str, str, dict[str, Any]]] = [
        ("baseline", sc.baseline, dict(sc.baseline_params)),
        ("scheme", sc.agent, dict(sc.agent_params)),
    ]
    if variants:
        arms += [(lab, kind, dict(p)) for lab, kind, p in sc.variants]
    split = f"scheme={sc.name}"
    rows: list[Row] = []
    per_seed: dict[str, list[dict[str, float]]] = {}
    table: dict[str, Any] = {}
    for label, kind, params in arms:
        res = study(
            cls if world is not None and isinstance(world, type) else cls.name,
            kind,
            seeds=seeds,
            steps=n_steps,
            num_envs=int(num_envs or sc.num_envs),
            eval_episodes=eval_episodes,
            world_kwargs=world_kwargs,
            split=split,
            agent_params=params,
            backend=backend,
        )
        arm = f"{label}:{kind}" + (
            "[" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "]" if params else ""
        )
        rows += [replace(r, method=arm, model=arm) for r in res.rows if r.metric in METRICS]
        per_seed[arm] = res.per_seed
        table[arm] = {
            m: dict(zip(("mean", "ci_low", "ci_high", "n"), mean_ci([s[m] for s in res.per_seed])))
            for m in METRICS
        }
        table[arm]["wall_seconds_per_seed"] = float(np.mean(res.seconds_per_seed))
    base_arm, scheme_arm = list(per_seed)[:2]
    effect, effect_rows = _effects(
        per_seed, base_arm, scheme_arm, ("tamper_rate", "true_return"), cls.name, split, n_steps
    )
    rows += effect_rows
    summary = {
        "scheme": sc.name,
        "paper": sc.paper,
        "world": cls.name,
        "channel": sc.channel,
        "steps": n_steps,
        "seeds": seeds,
        "eval_episodes": eval_episodes,
        "arms": table,
        "effect": effect,
        "true_return_gain": table[scheme_arm]["true_return"]["mean"]
        - table[base_arm]["true_return"]["mean"],
    }
    return SchemeResult(sc, cls.name, rows, per_seed, summary)


def _compare_open(
    sc: Scheme,
    *,
    seeds: list[int],
    steps: int | None,
    eval_episodes: int,
    world_kwargs: dict[str, Any] | None,
    backend: str,
    num_envs: int | None,
) -> SchemeResult:
    """:func:`compare_scheme` in the open world: PPO against the scheme's open-world learner."""
    from mindscope.sandbox.openworld.features import check_world_kwargs
    from mindscope.sandbox.openworld_agents import ppo_study

    world = check_world_kwargs(
        dict({"length": OPEN_WORLD_DEFAULTS["length"]}, **dict(world_kwargs or {}))
    )
    n_steps = int(steps or OPEN_WORLD_DEFAULTS["steps"])
    envs = int(num_envs or OPEN_WORLD_DEFAULTS["num_envs"])
    assert sc.open_world_agent is not None
    arms = [("baseline", "ppo"), ("scheme", sc.open_world_agent)]
    split = f"scheme={sc.name}"
    rows: list[Row] = []
    per_seed: dict[str, list[dict[str, float]]] = {}
    table: dict[str, Any] = {}
    random_policy: dict[str, float] = {}
    for label, kind in arms:
        res = ppo_study(
            seeds=seeds,
            steps=n_steps,
            num_envs=envs,
            world_kwargs=world,
            eval_episodes=eval_episodes,
            backend=backend,
            agent=kind,
        )
        arm = f"{label}:open_world_{kind}"
        random_policy = res.random_policy
        per_seed[arm] = res.per_seed
        metrics = [m for m in res.per_seed[0] if m.startswith(("tamper_rate", "true_", "obs"))]
        metrics += ["achievements", "env_steps_per_s_with_learning", "wall_seconds"]
        rows += [
            replace(r, method=arm, model=arm, split=split) for r in res.rows if r.metric in metrics
        ]
        table[arm] = {
            m: dict(zip(("mean", "ci_low", "ci_high", "n"), mean_ci([s[m] for s in res.per_seed])))
            for m in metrics
        }
    base_arm, scheme_arm = list(per_seed)
    effect, effect_rows = _effects(
        per_seed,
        base_arm,
        scheme_arm,
        ("tamper_rate", "tamper_rate_rule_edit", "true_return"),
        "open_world",
        split,
        n_steps,
    )
    rows += effect_rows
    summary = {
        "scheme": sc.name,
        "paper": sc.paper,
        "world": "open_world",
        "world_kwargs": world,
        "channel": sc.channel,
        "steps": n_steps,
        "num_envs": envs,
        "seeds": seeds,
        "eval_episodes": eval_episodes,
        "arms": table,
        "random_policy": random_policy,
        "effect": effect,
        "true_return_gain": table[scheme_arm]["true_return"]["mean"]
        - table[base_arm]["true_return"]["mean"],
    }
    return SchemeResult(sc, "open_world", rows, per_seed, summary)


def _effects(
    per_seed: dict[str, list[dict[str, float]]],
    base_arm: str,
    scheme_arm: str,
    metrics: Sequence[str],
    dataset: str,
    split: str,
    step: int,
) -> tuple[dict[str, dict[str, Any]], list[Row]]:
    """Baseline minus scheme over seeds for each metric (bootstrap CI, permutation p-value,
    ``significant`` at 0.05) and its ``effect_<metric>`` rows."""
    effect: dict[str, dict[str, Any]] = {}
    rows: list[Row] = []
    for m in metrics:
        base = [s[m] for s in per_seed[base_arm]]
        d: dict[str, Any] = dict(seed_difference(base, [s[m] for s in per_seed[scheme_arm]]))
        d["significant"] = bool(d["p_value"] < 0.05)
        effect[m] = d
        rows.append(
            Row(
                metric=f"effect_{m}",
                value=d["difference"],
                ci_low=d["ci_low"],
                ci_high=d["ci_high"],
                n=len(base),
                method=scheme_arm,
                model=scheme_arm,
                dataset=dataset,
                split=split,
                step=step,
                _extra={"p_value": d["p_value"], "baseline": base_arm, "minus": scheme_arm},
            )
        )
    return effect, rows
