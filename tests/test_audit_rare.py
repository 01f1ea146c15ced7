"""Rare-event estimation against exact enumeration on a tiny random-weight model."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import mindscope as ms
from mindscope.audit.rare import (
    METHODS,
    MIN_BUDGET,
    BadOutput,
    InputDistribution,
    Scorer,
    bad_output,
    estimate_rare,
    exact_probability,
    exact_table,
)
from mindscope.errors import MindscopeError
from mindscope.testing import save_tiny_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ms.ModelHandle:
    torch.manual_seed(0)
    d = save_tiny_model("gpt_neox", tmp_path_factory.mktemp("rare") / "neox")
    return ms.load_model(str(d), device="cpu")


@pytest.fixture(scope="module")
def setting(tiny: ms.ModelHandle) -> tuple[InputDistribution, torch.Tensor]:
    """3 positions over 24 tokens with Zipf weights (13,824 inputs of probabilities 4e-7 to
    0.03) and the exact arg-max mass of every token."""
    table = {7 + r: 1.0 / (r + 1) for r in range(24)}
    dist = InputDistribution.unigram(table, 3, tiny.vocab_size, prefix=[2])
    return dist, exact_table(tiny, dist, thresholds=[0.2]).argmax_mass


@pytest.mark.parametrize("suffix", [(), (5, 9)])
def test_shared_prefix_grid_equals_the_plain_forward(
    tiny: ms.ModelHandle, suffix: tuple[int, ...]
) -> None:
    """The key/value-cache path of exact enumeration gives the plain forward's logits."""
    from mindscope.audit.rare.engine import next_logits, next_logits_grid

    gen = torch.Generator().manual_seed(3)
    pre = torch.randint(0, tiny.vocab_size, (5, 4), generator=gen)
    conts = torch.cat(
        [
            torch.randint(0, tiny.vocab_size, (7, 1), generator=gen),
            torch.tensor(suffix, dtype=torch.long).expand(7, -1),
        ],
        dim=1,
    )
    grid = next_logits_grid(tiny, pre, conts)  # [5, 7, vocab]
    full = torch.cat([pre.repeat_interleave(7, 0), conts.repeat(5, 1)], dim=1)
    ref = next_logits(tiny, full).view(5, 7, -1)
    assert grid.shape == ref.shape
    assert torch.allclose(grid, ref, atol=1e-5), float((grid - ref).abs().max())


def test_distribution_sampling_log_prob_and_enumeration() -> None:
    table = {3: 1.0, 5: 3.0}
    d = InputDistribution.per_position([[1, 2, 4], table], 8, prefix=[0], suffix=[7])
    assert d.size == 6 and d.seq_len == 4 and d.offset == 1
    x = d.sample(40_000, generator=torch.Generator().manual_seed(1))
    assert set(x[:, 0].tolist()) == {1, 2, 4}
    assert abs(float((x[:, 1] == 5).double().mean()) - 0.75) < 0.01
    lp = d.log_prob(torch.tensor([[2, 5]]))
    assert math.isclose(float(lp.exp()), (1 / 3) * 0.75, rel_tol=1e-12)
    rows = [(xb, lpb) for xb, lpb in d.enumerate(batch_size=4)]
    xs = torch.cat([r[0] for r in rows])
    assert len({tuple(r) for r in xs.tolist()}) == 6
    assert math.isclose(float(torch.cat([r[1] for r in rows]).exp().sum()), 1.0, rel_tol=1e-12)
    assert d.full(torch.tensor([[1, 3]])).tolist() == [[0, 1, 3, 7]]
    u = InputDistribution.unigram([0.0, 1.0, 1.0, 2.0], 2, 4)
    assert torch.allclose(u.probs[1], torch.tensor([0, 0.25, 0.25, 0.5], dtype=torch.float64))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: InputDistribution.uniform([], 2, 10), "empty support"),
        (lambda: InputDistribution.unigram({1: 1.0, 2: -0.5}, 2, 10), "negative weights"),
        (lambda: InputDistribution.uniform([3, 12], 2, 10), "outside the vocabulary"),
        (lambda: InputDistribution.uniform([3], 2, 10, prefix=[99]), "prefix has token ids"),
        (lambda: InputDistribution.uniform([3], 0, 10), "n_positions"),
        (lambda: BadOutput(()), "at least one token"),
        (lambda: BadOutput((1,), threshold=1.5), "threshold"),
    ],
)
def test_bad_distributions_and_outputs_are_refused(make, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MindscopeError, match=message) as exc:
        make()
    assert "\n" not in str(exc.value)


def test_bad_model_inputs_are_refused(tiny: ms.ModelHandle) -> None:
    dist = InputDistribution.uniform(range(7, 11), 2, tiny.vocab_size)
    with pytest.raises(MindscopeError, match="not in the vocabulary"):
        estimate_rare(tiny, dist, BadOutput((tiny.vocab_size + 3,)), budget=1024)
    with pytest.raises(MindscopeError, match="is 2 tokens, not one"):
        bad_output(tiny, "cat dog")
    with pytest.raises(MindscopeError, match="too small for itgis: the minimum is 256"):
        estimate_rare(tiny, dist, BadOutput((9,)), method="itgis", budget=100)
    with pytest.raises(MindscopeError, match="unknown method"):
        estimate_rare(tiny, dist, BadOutput((9,)), method="magic")
    long = InputDistribution.uniform(range(7, 11), 200, tiny.vocab_size)
    with pytest.raises(MindscopeError, match="at most 128"):
        estimate_rare(tiny, long, BadOutput((9,)), method="naive", budget=10)
    other = InputDistribution.uniform(range(7, 11), 2, tiny.vocab_size + 1)
    with pytest.raises(MindscopeError, match="the model has"):
        estimate_rare(tiny, other, BadOutput((9,)), method="naive", budget=10)
    assert MIN_BUDGET["mhis"] > MIN_BUDGET["itgis"] > MIN_BUDGET["naive"]


def test_exact_table_matches_direct_enumeration_and_caches(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    dist, mass = setting
    assert math.isclose(float(mass.sum()), 1.0, rel_tol=1e-9)
    for tok in mass.argsort(descending=True)[[9]].tolist():
        bad = BadOutput((tok,))
        assert math.isclose(exact_probability(tiny, dist, bad), float(mass[tok]), rel_tol=1e-9)
    cached = exact_table(tiny, dist, thresholds=[0.2])
    assert cached.seconds == 0.0 and torch.equal(cached.argmax_mass, mass)
    above = BadOutput((int(mass.argmax()),), threshold=0.2)
    assert math.isclose(
        cached.probability(above), exact_probability(tiny, dist, above), rel_tol=1e-9
    )
    # brute force on a few inputs: the arg-max of the model's own forward
    x = dist.sample(64, generator=torch.Generator().manual_seed(0))
    logits = tiny.model(input_ids=dist.full(x)).logits[:, -1]
    hit, _ = Scorer(tiny, dist, BadOutput((int(mass.argmax()),))).evaluate(x)
    assert torch.equal(hit, logits.argmax(-1) == int(mass.argmax()))


def test_one_hot_gradient_is_the_directional_derivative(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    dist, mass = setting
    scorer = Scorer(tiny, dist, BadOutput((int(mass.argsort()[-3]),)))
    x = dist.sample(4, generator=torch.Generator().manual_seed(3))
    _, s0, grad = scorer.gradient(x)
    emb = tiny.model.get_input_embeddings().weight.detach()
    i, v, eps = 1, 20, 1e-3
    base = emb[dist.full(x)]  # [4, seq, d]
    moved = base.clone()
    moved[:, dist.offset + i] += eps * (emb[v] - emb[x[:, i]])
    with torch.no_grad():
        s1 = scorer.bad.score(tiny.model(inputs_embeds=moved).logits[:, -1]).double()
        s00 = scorer.bad.score(tiny.model(inputs_embeds=base).logits[:, -1]).double()
    fd = (s1 - s00) / eps
    pred = grad[:, i, v] - grad[torch.arange(4), i, x[:, i]]
    assert torch.allclose(s00, s0, atol=1e-5)
    assert torch.allclose(fd, pred, rtol=0.05, atol=1e-3)
    assert scorer.calls == 4


def _targets(mass: torch.Tensor, lo: float, hi: float, k: int) -> list[int]:
    ok = ((mass > lo) & (mass < hi)).nonzero().squeeze(-1).tolist()
    assert len(ok) >= k, f"no {k} tokens with exact mass in ({lo}, {hi})"
    return ok[:k]


@pytest.mark.parametrize("method", ["itgis", "mhis"])
def test_importance_samplers_are_consistent_with_the_exact_probability(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor], method: str
) -> None:
    """The weighting is right: on targets of exact mass 5e-3 .. 3e-2 (10-60 events expected at
    budget 2048) the estimates land near the truth. (On this random-weight model the samplers
    do not beat naive sampling on rarer targets; see docs/audit_rare.md.)"""
    dist, mass = setting
    errors, covered, total = [], 0, 0
    for tok in _targets(mass, 5e-3, 3e-2, 2):
        truth = float(mass[tok])
        for seed in range(2):
            r = estimate_rare(tiny, dist, BadOutput((tok,)), method=method, budget=2048, seed=seed)
            assert r.n_calls <= 2048
            errors.append(abs(math.log(max(r.estimate, 1e-12) / truth)))
            covered += r.ci_low <= truth <= r.ci_high
            total += 1
    errors.sort()
    # median within 1.5x of the truth (4x for MHIS: its self-normalised ratio is much noisier
    # here; over 8 seeds on these two targets it was within 2x in 8 of 16 estimates)
    assert errors[len(errors) // 2] < math.log(1.5 if method == "itgis" else 4.0), errors
    assert covered >= total // 2, (covered, total)


def test_naive_is_unbiased_and_its_interval_covers(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    dist, mass = setting
    tok = _targets(mass, 0.01, 0.05, 1)[0]
    r = estimate_rare(tiny, dist, BadOutput((tok,)), method="naive", budget=8192, seed=0)
    assert r.ci_low <= float(mass[tok]) <= r.ci_high
    assert r.n_calls == 8192 and r.ess == r.n_hits


def test_estimate_rows_follow_the_results_schema(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor], tmp_path: Path
) -> None:
    from mindscope.results import read_table, to_frame, write_table

    dist, mass = setting
    r = estimate_rare(tiny, dist, BadOutput((int(mass.argmax()),)), method="itgis", budget=512)
    rows = r.rows(model="tiny", dataset="uniform", extra={"truth": float(mass.max())})
    df = read_table(write_table(to_frame(rows), tmp_path / "r.parquet"))
    assert set(df.metric) == {"rare_probability", "rare_ess", "rare_hits", "rare_trusted"}
    assert (df.method == "itgis").all() and (df.n == r.n_calls).all()
    assert ms.audit.estimate_rare is estimate_rare


def test_margin_is_non_negative_exactly_on_bad_outputs() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(500, 9, generator=gen)
    for bad in (BadOutput((2,)), BadOutput((2, 5)), BadOutput((4,), threshold=0.15)):
        assert torch.equal(bad.margin(logits) >= 0, bad.hit(logits))


def test_cross_entropy_sampler_is_within_2x_on_rare_targets(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    """CE on targets of exact mass 5e-5 .. 1e-3 at budget 4096 (naive expects 0.2-4 events):
    estimates within 2x of the truth, never below the exact mass of the bad inputs it saw
    while adapting (a hard lower bound), and intervals that cover or are flagged."""
    dist, mass = setting
    within, covered, total = 0, 0, 0
    for tok in _targets(mass, 5e-5, 1e-3, 3):
        truth = float(mass[tok])
        for seed in range(2):
            r = estimate_rare(tiny, dist, BadOutput((tok,)), method="ce", budget=4096, seed=seed)
            assert r.n_calls <= 4096 and r.method == "ce"
            within += 0.5 <= r.estimate / truth <= 2.0
            assert r.ci_low <= r.estimate < r.ci_high
            trust = r.extra["trust"]
            assert trust["known_mass"] <= truth * (1 + 1e-9) and trust["known_mass"] <= r.ci_low
            assert len(trust["restart_estimates"]) == 4 and r.trusted == (not trust["reasons"])
            covered += (r.ci_low <= truth <= r.ci_high) or not r.trusted
            total += 1
    assert within >= total - 1, (within, total)
    assert covered >= total - 1, (covered, total)


def test_search_finds_only_bad_inputs_and_seeds_the_sampler(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    from mindscope.audit.rare.estimate import search_inputs

    dist, mass = setting
    tok = _targets(mass, 1e-6, 1e-4, 1)[0]
    bad = BadOutput((tok,))
    scorer = Scorer(tiny, dist, bad)
    found = search_inputs(scorer, 1500, gen=torch.Generator().manual_seed(0))
    assert scorer.calls <= 1500
    assert found.shape[0] >= 1
    hit, _ = Scorer(tiny, dist, bad).evaluate(found)
    assert hit.all()
    r = estimate_rare(tiny, dist, bad, method="ce", budget=8192, search=0.2)
    assert r.extra["search_found"] >= 1 and r.n_calls <= 8192 and r.n_hits > 0
    with pytest.raises(MindscopeError, match="seeds must be"):
        estimate_rare(tiny, dist, bad, method="ce", budget=4096, seeds=torch.zeros(3))
    with pytest.raises(MindscopeError, match="minimum is 1024"):
        estimate_rare(tiny, dist, bad, method="ce", budget=512)
    with pytest.raises(MindscopeError, match=r"restarts must be in \[1, 8\]"):
        estimate_rare(tiny, dist, bad, method="ce", budget=1024, restarts=9)


def test_neighbour_expansion_finds_the_bad_cluster_and_restarts_search_on_their_own(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    """``expand_neighbours`` returns exactly the bad inputs reachable from the seeds by single
    substitutions through bad inputs (brute force over every neighbourhood), within its calls;
    ``ce+search`` (a search per restart, then expansion) keeps the known mass below the truth and
    its calls within the budget."""
    from mindscope.audit.rare.estimate import expand_neighbours, search_inputs
    from mindscope.audit.rare.validate import method_options

    dist, mass = setting
    tok = _targets(mass, 1e-5, 1e-3, 1)[0]
    bad = BadOutput((tok,))
    seeds = search_inputs(Scorer(tiny, dist, bad), 1500, gen=torch.Generator().manual_seed(0))
    assert len(seeds) >= 1
    sup = dist.supports()
    ref = Scorer(tiny, dist, bad)
    closure = {tuple(r) for r in seeds.tolist()}
    frontier = list(closure)
    while frontier:
        x = frontier.pop()
        nb = []
        for i in range(dist.n_positions):
            for t in sup[i].tolist():
                if t != x[i]:
                    nb.append(x[:i] + (t,) + x[i + 1 :])
        hit, _ = ref.evaluate(torch.tensor(nb))
        for y, h in zip(nb, hit.tolist(), strict=True):
            if h and y not in closure:
                closure.add(y)
                frontier.append(y)
    scorer = Scorer(tiny, dist, bad)
    more = expand_neighbours(scorer, seeds, 10**6)
    got = {tuple(r) for r in more.tolist()}
    assert got == closure - {tuple(r) for r in seeds.tolist()}
    small = Scorer(tiny, dist, bad)
    expand_neighbours(small, seeds, 100)
    assert small.calls <= 100
    base, opts = method_options("ce+search")
    assert base == "ce" and opts["per_restart_search"] and opts["expand"] > 0
    truth = float(mass[tok])
    r = estimate_rare(tiny, dist, bad, method="ce", budget=8192, seed=0, **opts)
    assert r.n_calls <= 8192 and r.extra["search_found"] >= 1
    assert r.extra["trust"]["known_mass"] <= truth * (1 + 1e-9) <= r.ci_high / (1 - 1e-9)
    with pytest.raises(MindscopeError, match=r"expand must be in \[0, 0.25\]"):
        estimate_rare(tiny, dist, bad, method="ce", budget=4096, expand=0.4)


def test_default_method_is_ce_with_searches_and_refuses_too_small_budgets(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    """``estimate_rare`` without a method is ``ce+search``: the same numbers as ``ce`` with
    :data:`SEARCHED_OPTIONS` for a seed, its calls within the budget at the minimum budget, and
    a budget below the minimum refused in one line; the ``rare`` stage takes the same default."""
    from mindscope.analyses import run_stage
    from mindscope.audit.rare.estimate import DEFAULT_METHOD, SEARCHED, SEARCHED_OPTIONS

    dist, mass = setting
    assert DEFAULT_METHOD == SEARCHED == "ce+search" and SEARCHED in METHODS
    bad = BadOutput((_targets(mass, 1e-5, 1e-3, 1)[0],))
    r = estimate_rare(tiny, dist, bad, budget=4096, seed=1)
    ref = estimate_rare(tiny, dist, bad, method="ce", budget=4096, seed=1, **SEARCHED_OPTIONS)
    assert r.method == "ce+search" and ref.method == "ce"
    assert (r.estimate, r.ci_low, r.ci_high, r.n_calls) == (
        ref.estimate,
        ref.ci_low,
        ref.ci_high,
        ref.n_calls,
    )
    assert r.extra["search_found"] >= 1 and r.rows()[0].method == "ce+search"
    low = MIN_BUDGET[SEARCHED]
    small = estimate_rare(tiny, dist, bad, budget=low, seed=0)
    assert small.n_calls <= low and small.ci_low <= small.estimate <= small.ci_high
    no_search = estimate_rare(tiny, dist, bad, budget=4096, seed=1, search=0.0)
    assert no_search.extra["search_found"] == 0  # options override the defaults
    with pytest.raises(
        MindscopeError, match=f"too small for ce\\+search: the minimum is {low}"
    ) as e:
        estimate_rare(tiny, dist, bad, budget=low - 1)
    assert "\n" not in str(e.value)
    out = run_stage(  # the ``rare`` stage takes the same default
        "rare", tiny, {"bad": str(bad.tokens[0]), "tokens": "7-30", "positions": 2, "budget": low}
    )
    assert out.info["method"] == "ce+search" and out.info["n_calls"] <= low


def test_validate_rows_summarise_the_repeats(
    tiny: ms.ModelHandle, setting: tuple[InputDistribution, torch.Tensor]
) -> None:
    from mindscope.audit.rare.validate import itakura_saito, validate
    from mindscope.results import extra_values, to_frame

    dist, mass = setting
    tok = int(mass.argmax())
    truth = float(mass[tok])
    lines: list[str] = []
    rows = validate(
        tiny,
        dist,
        [(tok, truth)],
        methods=("naive",),
        budget=256,
        repeats=3,
        dataset="zipf",
        progress=lines.append,
    )
    df = to_frame(rows)
    reps = df[df.split.str.startswith("repeat")]
    assert list(reps.split) == ["repeat0", "repeat1", "repeat2"]
    # each repeat is the estimate seeded by its index
    for k, value in enumerate(reps.value):
        r = estimate_rare(tiny, dist, BadOutput((tok,)), method="naive", budget=256, seed=k)
        assert value == r.estimate
    assert list(extra_values(reps, "truth")) == [truth] * 3
    summ = df[df.split == "summary"].set_index("metric").value
    ests = list(reps.value)
    assert (
        summ["rare_coverage"]
        == sum(lo <= truth <= hi for lo, hi in zip(reps.ci_low, reps.ci_high, strict=True)) / 3
    )
    assert summ["rare_is_loss"] == pytest.approx(sum(itakura_saito(truth, e) for e in ests) / 3)
    assert len(lines) == 1 and lines[0].startswith(f"token {tok} ")
    with pytest.raises(MindscopeError, match="repeats must be at least 1"):
        validate(tiny, dist, [(tok, truth)], methods=("naive",), repeats=0)


def test_token_set_specs() -> None:
    from mindscope.audit.rare.distributions import token_set

    assert token_set("all", 5) == [0, 1, 2, 3, 4]
    assert token_set("3-6", 10) == [3, 4, 5, 6] and token_set("7,2", 10) == [7, 2]
    drawn = token_set("random:4", 50, seed=1)
    assert drawn == sorted(set(drawn)) and len(drawn) == 4 and max(drawn) < 50
    assert token_set("random:4", 50, seed=1) == drawn != token_set("random:4", 50, seed=2)
    with pytest.raises(MindscopeError, match=r"--tokens 'random:0': K must be in \[1, 50\]"):
        token_set("random:0", 50, what="--tokens")
    with pytest.raises(MindscopeError, match="cannot read tokens 'a-b'"):
        token_set("a-b", 50)
