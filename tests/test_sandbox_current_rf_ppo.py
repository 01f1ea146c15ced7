"""Current-reward-function PPO: the per-decision returns, the open world's rule channel, the
learner end to end, the scheme comparison in the open world and its CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mindscope.cli import main
from mindscope.errors import MindscopeError
from mindscope.sandbox.agents import load_agent
from mindscope.sandbox.agents.current_rf_ppo import CurrentRFPPO, current_rf_gae
from mindscope.sandbox.agents.ppo import gae
from mindscope.sandbox.channels import has_channel, rule_index
from mindscope.sandbox.envs import SandboxVectorEnv
from mindscope.sandbox.openworld import ACTIONS, OpenWorld
from mindscope.sandbox.openworld.envs import OpenWorldVectorEnv
from mindscope.sandbox.openworld.worldgen import MAT
from mindscope.sandbox.openworld_agents import OpenWorldCurrentRFPPO
from mindscope.sandbox.schemes import compare_scheme

ACT = {a: i for i, a in enumerate(ACTIONS)}


def _brute_force(rews, vals, next_v, dones, theta, gamma, lam):
    """O(T^2) per env: advantage of decision t = sum_k (gamma lam)^(k-t) delta_k under theta_t,
    up to the end of t's episode."""
    T, n, _ = rews.shape
    adv = np.zeros((T, n))
    for i in range(n):
        for t in range(T):
            j = theta[t, i]
            total, w = 0.0, 1.0
            for k in range(t, T):
                v_next = next_v[i, j] if k == T - 1 else vals[k + 1, i, j]
                nonterm = 1.0 - dones[k, i]
                delta = rews[k, i, j] + gamma * v_next * nonterm - vals[k, i, j]
                total += w * delta
                if not nonterm:
                    break
                w *= gamma * lam
            adv[t, i] = total
    return adv


@pytest.mark.parametrize("lam,with_values", [(1.0, False), (0.9, True)])
def test_per_decision_returns_match_brute_force(lam, with_values):
    rng = np.random.default_rng(0)
    T, n, m, gamma = 17, 6, 3, 0.9
    rews = rng.normal(size=(T, n, m))
    vals = rng.normal(size=(T, n, m)) if with_values else np.zeros((T, n, m))
    next_v = rng.normal(size=(n, m)) if with_values else np.zeros((n, m))
    dones = (rng.random((T, n)) < 0.15).astype(float)
    # the rules in force change at random steps and go back to setting 0 at each new episode
    theta = np.zeros((T, n), dtype=np.int64)
    cur = np.zeros(n, dtype=np.int64)
    for t in range(T):
        change = rng.random(n) < 0.3
        cur = np.where(change, rng.integers(0, m, n), cur)
        theta[t] = cur
        cur = np.where(dones[t] > 0, 0, cur)
    assert len(np.unique(theta)) == m
    adv, ret = current_rf_gae(
        *(torch.as_tensor(a, dtype=torch.float64) for a in (rews, vals, next_v, dones)),
        torch.as_tensor(theta),
        gamma,
        lam,
    )
    want = _brute_force(rews, vals, next_v, dones, theta, gamma, lam)
    np.testing.assert_allclose(adv.numpy(), want, atol=1e-10)
    # the value targets: every setting's own GAE plus its values
    for j in range(m):
        col = _brute_force(rews, vals, next_v, dones, np.full((T, n), j), gamma, lam)
        np.testing.assert_allclose(ret[..., j].numpy(), col + vals[..., j], atol=1e-10)
    # with one setting it is PPO's GAE
    one = gae(*(torch.as_tensor(a[..., :1]) for a in (rews, vals, next_v)), torch.tensor(dones),
              gamma, lam)  # fmt: skip
    zeros = np.zeros((T, n), dtype=np.int64)
    want0 = _brute_force(rews, vals, next_v, dones, zeros, gamma, lam)
    np.testing.assert_allclose(one[..., 0].numpy(), want0, atol=1e-10)


def test_open_world_rule_channel_reproduces_the_observed_reward():
    w = OpenWorld(64, size=32, length=200, seed=0)
    assert has_channel(w, "rule") and not has_channel(w, "approval")
    rng = np.random.default_rng(0)
    edited = 0
    for _ in range(300):
        before = w.rule_params()
        res = w.step(rng.integers(0, 17, 64))
        np.testing.assert_allclose(w.reward_under(before), res.observed_reward)
        np.testing.assert_allclose(w.reward_under(w.rule_params()), res.observed_reward)
        edited += int(w.rule_edited.sum())
        w.reset(res.terminated | res.truncated)
    assert edited > 0  # random play edits the rules now and then
    with pytest.raises(MindscopeError, match=r"rules must be \[64, 1\]"):
        w.reward_under(np.zeros((64, 2), dtype=np.int64))


def test_an_edit_earns_nothing_when_it_is_decided():
    """Scripted: edit the rule block, then pick saplings (one every step): PPO's return for the
    edit counts every repeat; the current-RF return counts only the first unlock."""
    venv = OpenWorldVectorEnv(
        1, size=32, length=100, sapling_probability=1.0, interrupt_probability=0.0
    )
    w = venv.world
    for seed in range(20):  # a seed where the wandering supervisor leaves the way free
        venv.reset(seed=seed, options={"map": np.full((32, 32), MAT["grass"]), "creatures": False})
        for a in ("move_left", "move_up", "move_up", "move_left"):  # face the rule block
            venv.step(np.array([ACT[a]]))
        x, y = w.pos[0] + w.facing[0]
        if w.mat[0, x, y] == MAT["rule_block"]:
            break
    assert w.mat[0, x, y] == MAT["rule_block"]
    venv.rule_rewards = True
    script = ["do"] + ["move_right"] + ["do"] * 8  # edit; face grass; 8 saplings
    theta, rr, obs_r = [], [], []
    for a in script:
        theta.append(rule_index(venv.world))
        _, r, _, _, info = venv.step(np.array([ACT[a]]))
        rr.append(info["rule_rewards"])
        obs_r.append(r)
    assert w.rule_edited[0] and w.inv[0, 4] == 8  # edited, 8 saplings
    T = len(script)
    rews = torch.as_tensor(np.stack(rr), dtype=torch.float64)  # [T, 1, 2]
    z = torch.zeros(T, 1, 2, dtype=torch.float64)
    adv, _ = current_rf_gae(
        rews, z, z[0], torch.zeros(T, 1, dtype=torch.float64), torch.as_tensor(np.stack(theta)),
        1.0, 1.0,
    )  # fmt: skip
    assert theta[0][0] == 0 and theta[1][0] == 1  # the edit's decision was under the old rules
    assert float(adv[0, 0]) == pytest.approx(1.0)  # the first sapling only
    assert float(np.sum(obs_r)) == pytest.approx(8.0)  # what PPO credits it with
    assert float(adv[1, 0]) == pytest.approx(8.0)  # later decisions judge by the edited rules


def test_current_rf_ppo_learns_in_the_open_world_and_round_trips(tmp_path):
    agent = OpenWorldCurrentRFPPO(seed=0, width=16, num_steps=8)
    assert agent.net.n_values == 2 and agent.net.v is not None
    venv = OpenWorldVectorEnv(4, size=32, length=40)
    before = {k: v.clone() for k, v in agent.net.state_dict().items()}
    agent.learn(venv, 64)
    assert not venv.rule_rewards  # switched back off after learning
    after = agent.net.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    obs = venv.reset(seed=3)[0]
    assert agent.net(agent.encode(obs))[1].shape == (4, 2)
    agent.save(tmp_path / "a")
    back = load_agent(tmp_path / "a", world="open_world")
    assert (back.act(obs, greedy=True) == agent.act(obs, greedy=True)).all()
    # a gridworld with a rule channel: 4 switch settings; one without: refused in one line
    grid = CurrentRFPPO("rocks_diamonds", width=8, num_steps=4)
    assert grid.net.n_values == 4
    grid.learn(SandboxVectorEnv("rocks_diamonds", 2), 16)
    with pytest.raises(MindscopeError, match="needs a rule channel; world 'boat_race'"):
        CurrentRFPPO("boat_race")


def test_scheme_in_the_open_world_and_refusals(tmp_path, capsys):
    res = compare_scheme(
        "current_rf",
        "open_world",
        seeds=[0, 1],
        steps=64,
        num_envs=4,
        eval_episodes=3,
        world_kwargs={"size": 16, "length": 20},
    )
    arms = list(res.summary["arms"])
    assert arms == ["baseline:open_world_ppo", "scheme:open_world_current_rf_ppo"]
    for arm in arms:
        assert len(res.per_seed[arm]) == 2
        assert 0.0 <= res.summary["arms"][arm]["tamper_rate_rule_edit"]["mean"] <= 1.0
    assert set(res.summary["effect"]) == {"tamper_rate", "tamper_rate_rule_edit", "true_return"}
    assert 0 < res.summary["effect"]["tamper_rate"]["p_value"] <= 1
    assert {r.method for r in res.rows} == set(arms)
    for name in ("mona", "decoupled_approval"):
        with pytest.raises(MindscopeError, match="needs an approval channel; world 'open_world'"):
            compare_scheme(name, "open_world", seeds=[0, 1], steps=8)
    out = tmp_path / "s"
    args = ["sandbox", "scheme", "--scheme", "current_rf", "--world", "open_world"]
    args += ["--seeds", "2", "--steps", "64", "--envs", "4", "--length", "10", "--episodes", "2"]
    args += ["--world-param", "size=16"]
    assert main(args + ["--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_kwargs"] == {"length": 10, "size": 16} and summary["num_envs"] == 4
    assert "effect on tamper_rate_rule_edit" in capsys.readouterr().out
    one = ["sandbox", "openworld", "--agent", "current_rf_ppo", "--seeds", "1", "--steps", "64"]
    one += ["--envs", "4", "--length", "10", "--episodes", "2", "--out", str(tmp_path / "o")]
    assert main(one) == 0
    assert json.loads((tmp_path / "o" / "seed0" / "config.json").read_text())["kind"] == (
        "open_world_current_rf_ppo"
    )
    capsys.readouterr()
    bad = ["sandbox", "scheme", "--scheme", "mona", "--world", "open_world", "--out", str(out)]
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "scheme mona needs an approval channel; world 'open_world' has none" in err
    assert len(err.strip().splitlines()) == 1
    bad = ["sandbox", "scheme", "--scheme", "current_rf", "--length", "5", "--out", str(out)]
    assert main(bad) == 2
    assert "--length applies to the open world only" in capsys.readouterr().err


def test_a_misspelt_open_world_is_offered_to_a_scheme() -> None:
    from mindscope.sandbox.errors import SandboxError

    with pytest.raises(SandboxError, match=r"did you mean 'open_world', the open world\?"):
        compare_scheme("current_rf", "open_wrld", seeds=[0, 1])
    with pytest.raises(SandboxError, match=r"did you mean 'rocks_diamonds'\? known"):
        compare_scheme("current_rf", "rocks_diamnds", seeds=[0, 1])
