"""Step-for-step comparison of mindscope.sandbox worlds with DeepMind's original implementation.

Run it in the reference venv (``bash benchmarks/setup_refs.sh sandbox``)::

    PYTHONPATH=$PWD benchmarks/.venvs/sgw/bin/python benchmarks/check_sandbox_reference.py

For each world and variant, 1,000 random action sequences (one episode of at most 100 steps
each) are played in the original (pycolab, ``ai_safety_gridworlds``) and in the sandbox's
vectorised core (all 1,000 at once). Per step it compares the observed reward, the hidden
performance reward (difference of the original's cumulative hidden reward), the end of the
episode (termination vs the 100-step limit) and the board. The worlds' random events are made
deterministic on both sides (supervisor present/absent, interruption probability 0/1, drying
probability 0/1, no whisky exploration) since the two use different random generators; the
random drying of tomato_watering at 0.05 is compared in distribution (mean reward per step).
safety-gridworlds-gymnasium 2.0.4 has none of these worlds (it ships Base, IslandNavigation,
Sokoban and ConveyorBelt), so it is not used here; this script prints its registered ids.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from mindscope.sandbox.worlds import make_world


def original_env(world: str, variant: dict):
    from ai_safety_gridworlds.environments import (
        absent_supervisor,
        boat_race,
        rocks_diamonds,
        safe_interruptibility,
        tomato_watering,
        whisky_gold,
    )

    if world == "absent_supervisor":
        return absent_supervisor.AbsentSupervisorEnvironment(supervisor=variant["supervisor"])
    if world == "tomato_watering":
        tomato_watering.BECOME_DRY_PROBABILITY = variant["dry_probability"]
        return tomato_watering.TomatoWateringEnvironment()
    if world == "rocks_diamonds":
        return rocks_diamonds.RocksDiamondsEnvironment(level=0)
    if world == "safe_interruptibility":
        return safe_interruptibility.SafeInterruptibilityEnvironment(
            level=1, interruption_probability=variant["interruption_probability"]
        )
    if world == "whisky_gold":
        return whisky_gold.WhiskyOrGoldEnvironment(human_player=False)
    if world == "boat_race":
        return boat_race.BoatRaceEnvironment()
    raise KeyError(world)


VARIANTS = [
    ("absent_supervisor", {"supervisor": True}, {}, {"supervisor": True}),
    ("absent_supervisor", {"supervisor": False}, {}, {"supervisor": False}),
    ("tomato_watering", {"dry_probability": 0.0}, {"dry_probability": 0.0}, None),
    ("tomato_watering", {"dry_probability": 1.0}, {"dry_probability": 1.0}, None),
    ("rocks_diamonds", {}, {}, None),
    (
        "safe_interruptibility",
        {"interruption_probability": 0.0},
        {"interruption_probability": 0.0},
        None,
    ),
    (
        "safe_interruptibility",
        {"interruption_probability": 1.0},
        {"interruption_probability": 1.0},
        None,
    ),
    ("whisky_gold", {}, {"env_exploration": False}, None),
    ("boat_race", {}, {}, None),
]


def play_original(env, actions: np.ndarray):
    """Returns per-step obs reward, hidden reward, done, terminated, boards: [T]... and steps."""
    from ai_safety_gridworlds.environments.shared.termination_reason_enum import (
        TerminationReason,
    )

    ts = env.reset()
    boards = [ts.observation["board"].copy()]
    rew, hid, term = [], [], []
    prev_h = 0.0
    for a in actions:
        ts = env.step(int(a))
        h = float(env._get_hidden_reward())
        rew.append(float(ts.reward))
        hid.append(h - prev_h)
        prev_h = h
        boards.append(ts.observation["board"].copy())
        if ts.last():
            reason = ts.observation["extra_observations"].get("termination_reason")
            term.append(reason == TerminationReason.TERMINATED)
            break
        term.append(False)
    return np.array(rew), np.array(hid), np.array(term), np.stack(boards)


def compare(world, orig_variant, ours_kwargs, options, n_seq, rng):
    env = original_env(world, orig_variant)
    actions = rng.integers(0, 4, size=(n_seq, 100))
    w = make_world(world, n_seq, **ours_kwargs)
    w.seed(0)
    w.reset(None, options)
    boards = [w.observe()]
    res = []
    for t in range(100):
        res.append(w.step(actions[:, t]))
        boards.append(w.observe())
    mism = {"observed_reward": 0, "hidden_reward": 0, "termination": 0, "board": 0}
    steps = 0
    t0 = time.perf_counter()
    for i in range(n_seq):
        r, h, term, b = play_original(env, actions[i])
        T = len(r)
        steps += T
        o_r = np.array([res[t].observed_reward[i] for t in range(T)])
        o_h = np.array([res[t].true_reward[i] for t in range(T)])
        o_term = np.array([res[t].terminated[i] for t in range(T)])
        o_done = np.array([res[t].terminated[i] or res[t].truncated[i] for t in range(T)])
        ends_ok = o_done[-1] and not o_done[:-1].any()
        mism["observed_reward"] += int(not np.allclose(o_r, r, atol=1e-9))
        # whisky_gold's performance is the return itself (no hidden reward in the original)
        ref_h = r if world == "whisky_gold" else h
        mism["hidden_reward"] += int(not np.allclose(o_h, ref_h, atol=1e-9))
        mism["termination"] += int(not (ends_ok and (o_term == term).all()))
        ob = np.stack([boards[t][i] for t in range(T + 1)])
        mism["board"] += int(not np.array_equal(ob, b))
    dt = time.perf_counter() - t0
    return mism, steps, dt


def tomato_distribution(n_seq, rng):
    """Mean observed and hidden reward per step at the original drying probability 0.05."""
    from ai_safety_gridworlds.environments import tomato_watering

    tomato_watering.BECOME_DRY_PROBABILITY = 0.05
    env = tomato_watering.TomatoWateringEnvironment()
    actions = rng.integers(0, 4, size=(n_seq, 100))
    ro, ho = [], []
    for i in range(n_seq):
        r, h, _, _ = play_original(env, actions[i])
        ro.append(r)
        ho.append(h)
    w = make_world("tomato_watering", n_seq)
    w.seed(0)
    w.reset()
    rs, hs = [], []
    for t in range(100):
        res = w.step(actions[:, t])
        rs.append(res.observed_reward)
        hs.append(res.true_reward)
    ro_, ho_ = np.concatenate(ro), np.concatenate(ho)
    rs_, hs_ = np.stack(rs, 1).ravel(), np.stack(hs, 1).ravel()

    def ci(x):
        per_seq = x.reshape(n_seq, -1).mean(1)
        return per_seq.mean(), 1.96 * per_seq.std(ddof=1) / np.sqrt(n_seq)

    return ci(ro_), ci(rs_), ci(ho_), ci(hs_)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    try:
        import gymnasium
        import safety_gridworlds_gymnasium  # noqa: F401

        ids = sorted(k for k in gymnasium.registry if k.startswith("safety_gridworlds"))
        print(f"safety-gridworlds-gymnasium 2.0.4 registers: {ids} (none of the worlds below)")
    except Exception as exc:  # the port is optional here
        print(f"safety-gridworlds-gymnasium not importable here ({type(exc).__name__})")
    bad = 0
    print(f"{'world':24s} {'variant':34s} {'seqs':>5s} {'steps':>7s}  mismatching sequences")
    for world, ov, kw, opts in VARIANTS:
        mism, steps, dt = compare(world, ov, kw, opts, args.sequences, rng)
        bad += sum(mism.values())
        print(
            f"{world:24s} {str(ov):34s} {args.sequences:5d} {steps:7d}  {mism}"
            f"  (original {steps / dt:,.0f} steps/s)"
        )
    (o, so), (m, sm), (ho, sho), (hm, shm) = tomato_distribution(args.sequences, rng)
    print(
        f"tomato_watering dry p=0.05: mean observed reward/step original {o:.4f}+-{so:.4f}, "
        f"ours {m:.4f}+-{sm:.4f}; hidden original {ho:.4f}+-{sho:.4f}, ours {hm:.4f}+-{shm:.4f}"
    )
    print("all match" if bad == 0 else f"{bad} mismatching (sequence, quantity) pairs")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
