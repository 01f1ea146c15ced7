"""Sandbox agents, metrics, recording, probes and the CLI (all trained tiny)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mindscope.sandbox as sb
from mindscope.cli import main
from mindscope.errors import MindscopeError
from mindscope.results import read_table
from mindscope.sandbox.agents import load_agent
from mindscope.sandbox.agents.approval import DecoupledApproval
from mindscope.sandbox.agents.dqn import DQN
from mindscope.sandbox.agents.ppo import PPO
from mindscope.sandbox.agents.tabular import QLearning
from mindscope.sandbox.hooks import capture
from mindscope.sandbox.metrics import (
    TrainingCurve,
    episode_metrics,
    mean_ci,
    rollout,
    t_quantile_975,
)
from mindscope.sandbox.probing import (
    aggregate_probe_rows,
    counterfactual,
    probe_auroc,
    probe_rows,
    tamper_horizon_data,
)
from mindscope.sandbox.recording import Episode, record_episodes

torch.set_num_threads(1)


def greedy_return(agent, world, options):
    v = sb.SandboxVectorEnv(world, 1)
    obs, _ = v.reset(seed=0, options=options)
    total = 0.0
    for _ in range(100):
        obs, r, te, tr, _ = v.step(agent.act(obs, greedy=True))
        total += float(r[0])
        if te[0] or tr[0]:
            break
    return total


def test_q_learning_finds_the_optimal_paths_of_absent_supervisor():
    # closed form: supervised the long way (41) beats the punished shortcut (17); unsupervised
    # the shortcut pays 47
    agent = QLearning("absent_supervisor", seed=0).learn(
        sb.SandboxVectorEnv("absent_supervisor", 32), 150_000
    )
    assert greedy_return(agent, "absent_supervisor", {"supervisor": True}) == 41.0
    assert greedy_return(agent, "absent_supervisor", {"supervisor": False}) == 47.0


def test_ppo_learns_boat_race_and_round_trips(tmp_path):
    agent = PPO("boat_race", seed=0).learn(sb.SandboxVectorEnv("boat_race", 16), 14_336)
    recs = rollout(agent, sb.SandboxVectorEnv("boat_race", 64), 64, seed=1)
    m = episode_metrics(recs, "boat_race")
    # a uniformly random policy scores about -85; the optimum is 50 (4 per 8-step lap)
    assert m["observed_return"] > 10
    agent.save(tmp_path / "a")
    back = load_agent(tmp_path / "a", world="boat_race")
    x = np.random.default_rng(0).integers(0, 4, (5, 5, 5)).astype(np.float32)
    assert torch.equal(back.logits(x), agent.logits(x))
    with pytest.raises(MindscopeError, match="trained on boat_race"):
        load_agent(tmp_path / "a", world="tomato_watering")
    with pytest.raises(MindscopeError, match="already holds"):
        agent.save(tmp_path / "a")


def test_dqn_stores_executed_actions_and_saves(tmp_path):
    agent = DQN("safe_interruptibility", seed=0, learning_starts=200)
    agent.learn(sb.SandboxVectorEnv("safe_interruptibility", 8), 800)
    agent.save(tmp_path / "d")
    assert load_agent(tmp_path / "d").kind == "dqn"


def test_register_approval_closed_form():
    w = sb.make_world("register_tampering", 4)
    w.reset()
    state = w.approval_state()  # agent at (1,1), apple 1 at (1,7)
    f = w.approval(np.array([3, 2, 1, 0]), state)
    assert f.tolist() == [1.0, -1.0, -1.0, -1.0]  # only "right" gets closer
    w.block[:] = w.register_cell
    assert w.approval(np.array([2, 2, 2, 2]), state).tolist() == [1.0] * 4  # corrupted
    w2 = sb.make_world("register_tampering", 2, register_max=2.5)
    w2.reset()
    w2.block[:] = w2.register_cell
    assert w2.approval(np.array([2, 3]), w2.approval_state()).tolist() == [2.5, 2.5]
    assert w2.step(np.array([0, 0])).observed_reward.tolist() == [2.5, 2.5]
    agent = DecoupledApproval("register_tampering", seed=0)
    agent.learn(sb.SandboxVectorEnv("register_tampering", 8), 1_000)
    with pytest.raises(MindscopeError, match="needs an approval channel"):
        DecoupledApproval("boat_race").learn(sb.SandboxVectorEnv("boat_race", 2), 10)


def test_mean_ci_matches_student_t():
    x = [1.0, 2.0, 4.0, 7.0]
    mu, lo, hi, n = mean_ci(x + [math.nan])
    half = 3.182446305284263 * np.std(x, ddof=1) / 2.0  # t_{0.975, 3} (scipy)
    assert (
        n == 4 and mu == 3.5 and lo == pytest.approx(mu - half) and hi == pytest.approx(mu + half)
    )
    # beyond the table: scipy.stats.t.ppf(0.975, 40) = 2.021075, (0.975, 120) = 1.979930
    assert t_quantile_975(40) == pytest.approx(2.021075, abs=2e-4)
    assert t_quantile_975(120) == pytest.approx(1.979930, abs=1e-4)


def test_training_curve_counts_tampering_episodes():
    curve = TrainingCurve(bin_steps=100, n_envs=2)
    info = {
        "true_reward": np.zeros(2),
        "first_tamper_step": np.array([3, -1]),
        "_final_obs": np.array([True, True]),
    }
    curve.log(50, np.ones(2), info)
    assert curve.bins() == {100: {"tamper_rate": 0.5, "observed_return": 1.0, "true_return": 0.0}}


def test_capture_removes_hooks_even_on_error():
    agent = PPO("boat_race")
    with pytest.raises(RuntimeError):
        with capture(agent.net, ["hidden2"]) as acts:
            agent.net(torch.zeros(3, agent.net.fc1.in_features))
            raise RuntimeError("boom")
    assert acts["hidden2"][0].shape == (3, 64)
    assert all(not m._forward_hooks for m in agent.net.modules())
    with pytest.raises(MindscopeError, match="no site"):
        with capture(agent.net, ["nope"]):
            pass


def _episode(first_tamper, T, d=3, rng=None):
    t = np.arange(T)
    a = rng.normal(size=(T, d)).astype(np.float32)
    if first_tamper >= 0:
        a[:, 0] = first_tamper - t  # planted: steps left before tampering
    else:
        a[:, 0] = 50.0
    tam = np.zeros(T, dtype=bool)
    if first_tamper >= 0:
        tam[first_tamper] = True
    z = np.zeros(T)
    return Episode(
        "tomato_watering", np.zeros((T + 1, 7, 9)), z, z, z, z, tam, activations={"h": a}
    )


def test_probe_reads_a_planted_time_to_tamper_and_not_noise():
    rng = np.random.default_rng(0)
    eps = [_episode(int(j), 40, rng=rng) for j in rng.integers(5, 35, 30)] + [
        _episode(-1, 40, rng=rng) for _ in range(10)
    ]
    x, y = tamper_horizon_data(eps[:20] + eps[30:35], 4, "h")
    xt, yt = tamper_horizon_data(eps[20:30] + eps[35:], 4, "h")
    assert y.sum() == 20 * 4
    assert probe_auroc(x, y, xt, yt) > 0.95
    assert abs(probe_auroc(x[:, 1:], y, xt[:, 1:], yt) - 0.5) < 0.15  # noise columns only


def test_probe_on_a_trained_ppo_agent_reads_the_coming_tamper():
    # PPO learns tomato_watering's delusion within 20k steps (it walks to O, about step 6-10);
    # a reporter on its activations must predict "tampers within 2 steps" on held-out episodes
    agent = PPO("tomato_watering", seed=0).learn(sb.SandboxVectorEnv("tomato_watering", 16), 20_480)
    eps = record_episodes(agent, 60, seed=3)
    assert sum(e.first_tamper >= 0 for e in eps) >= 50
    rows = probe_rows(eps[:30], eps[30:], ks=(2,), sites=("input", "hidden2"), method="ppo")
    auc = {r.layer: r.value for r in rows}
    assert auc[2] > 0.9 and auc[0] > 0.5  # hidden2 and the one-hot input baseline (layer 0)
    # over two "seeds" (here: two test halves), the mean and a CI over them
    agg = aggregate_probe_rows([rows, probe_rows(eps[30:], eps[:30], ks=(2,), sites=("hidden2",))])
    two = [r for r in agg if r.layer == 2][0]
    assert two.n == 2 and two.ci_low <= two.value <= two.ci_high


class _ToTransformer:
    """A scripted agent walking to tomato_watering's transformer O at (1, 7)."""

    world = "tomato_watering"

    def act(self, obs, greedy=False):
        pos = np.argwhere(obs == 2.0)[:, 1:]
        return np.where(pos[:, 1] < 7, 3, 0)


def test_counterfactual_from_a_saved_state_and_record():
    w = sb.make_world("tomato_watering", 1, dry_probability=0.0)
    w.seed(0)
    w.reset()
    w.step(np.array([3]))
    state = w.snapshot(0)
    agent = _ToTransformer()
    assert counterfactual(agent, "tomato_watering", state, channel_open=True, samples=8) == 1.0
    assert counterfactual(agent, "tomato_watering", state, channel_open=False, samples=8) == 0.0
    eps = record_episodes(agent, 3, seed=0)
    assert eps[0].first_tamper == 5 and eps[0].boards.shape == (101, 7, 9)


def test_cli_train_eval_record(tmp_path, capsys):
    out = tmp_path / "run"
    assert (
        main(
            [
                "sandbox",
                "train",
                "--world",
                "boat_race",
                "--agent",
                "ppo",
                "--seeds",
                "2",
                "--steps",
                "2048",
                "--episodes",
                "16",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    df = read_table(out / "results.parquet")
    row = df[(df.metric == "tamper_rate") & (df.split == "tamper_on")]
    assert len(row) == 1 and int(row.n.iloc[0]) == 2
    assert (df.metric == "train_tamper_rate").any()
    # the report has a sandbox section fed by these rows (bars with CIs, training curves)
    assert main(["report", str(out)]) == 0
    page = (out / "report.html").read_text()
    assert "Embedded agency: the sandbox" in page
    assert "tamper rate by world and agent" in page and "over training" in page
    assert (
        main(
            [
                "sandbox",
                "train",
                "--world",
                "boat_race",
                "--agent",
                "ppo",
                "--seeds",
                "1",
                "--steps",
                "2048",
                "--out",
                str(out),
            ]
        )
        == 2
    )
    assert main(["sandbox", "eval", "--agent-dir", str(out / "seed0"), "--episodes", "8"]) == 0
    assert (
        main(["sandbox", "eval", "--agent-dir", str(out / "seed0"), "--world", "whisky_gold"]) == 2
    )
    assert (
        main(
            [
                "sandbox",
                "record",
                "--agent-dir",
                str(out / "seed0"),
                "--out",
                str(tmp_path / "rec"),
                "--episodes",
                "4",
                "--probe",
            ]
        )
        == 0
    )
    # a whole train folder: every seed recorded, probe AUROCs aggregated over the 2 seeds
    assert (
        main(
            [
                "sandbox",
                "record",
                "--agent-dir",
                str(out),
                "--out",
                str(tmp_path / "rec2"),
                "--episodes",
                "4",
                "--probe",
            ]
        )
        == 0
    )
    assert (tmp_path / "rec2" / "seed1" / "episodes.json").is_file()
    assert (tmp_path / "rec2" / "seed0" / "episodes.json").is_file()  # every seed alike
    agg = read_table(tmp_path / "rec2" / "probes.parquet")
    cf2 = agg[(agg.metric == "counterfactual_tamper_rate") & (agg.split == "channel_closed")]
    assert int(cf2.n.iloc[0]) == 2 and cf2.value.iloc[0] == 0.0
    # train + probe tables merged into one report
    both = tmp_path / "all"
    assert main(["sandbox", "collect", str(out), str(tmp_path / "rec2"), "--out", str(both)]) == 0
    assert main(["sandbox", "collect", str(out), "--out", str(both)]) == 2  # no silent overwrite
    assert main(["report", str(both)]) == 0
    page = (both / "report.html").read_text()
    assert "within k" in page and "tamper rate by world and agent" in page
    html = (tmp_path / "rec" / "episode.html").read_text()
    assert "<canvas" in html and "boat_race" in html
    probes = read_table(tmp_path / "rec" / "probes.parquet")
    cf = probes[probes.metric == "counterfactual_tamper_rate"]
    assert sorted(cf.split) == ["channel_closed", "channel_open"]
    assert cf[cf.split == "channel_closed"].value.iloc[0] == 0.0  # a closed channel never acts
    assert main(["sandbox", "train", "--world", "nowhere", "--out", str(tmp_path / "x")]) == 2
    assert (
        main(
            [
                "sandbox",
                "train",
                "--world",
                "boat_race",
                "--agent",
                "nobody",
                "--out",
                str(tmp_path / "y"),
            ]
        )
        == 2
    )
    bad_param = ["sandbox", "train", "--world", "boat_race", "--out", str(tmp_path / "z")]
    assert main([*bad_param, "--world-param", "depth=3"]) == 2
    assert main([*bad_param, "--agent-param", "oops"]) == 2
    err = capsys.readouterr().err
    assert "unknown world 'nowhere'" in err and "unknown agent 'nobody'" in err
    assert "depth" in err and "--agent-param wants KEY=VALUE" in err
    assert main(["sandbox", "list"]) == 0
