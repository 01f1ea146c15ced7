"""Step-for-step parity of the open world's deterministic mechanics with crafter 1.8.3.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/check_openworld_parity.py [--sequences 1000]
                                                                          [--steps 100]
                                                                          [--reference F]

In the reference venv (``bash benchmarks/setup_refs.sh crafter``), for each sequence ``i``:
``crafter.Env(seed=i)`` generates its own map; every creature is removed, chunk balancing is
switched off and grass yields no sapling (the stochastic mechanics), then ``--steps`` random
actions are played (seeded), recording after each step the player's position, facing,
inventory, achievements, sleeping, reward and end, and the final material map. Here the same
maps are loaded into one batch of ``OpenWorld`` (``mechanism=False``, no creatures,
``sapling_probability=0``) and the same actions stepped for all sequences at once; every
recorded quantity is compared at every step. Writes ``benchmarks/results/
check_openworld_parity.json`` (sequences, steps compared, mismatching sequences, the first
mismatch).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _figures import record

HERE = Path(__file__).resolve().parent
REF_PY = HERE / ".venvs" / "crafter" / "bin" / "python"

_REF = """
import json, sys, numpy as np, crafter
from crafter import constants
constants.collect["grass"]["probability"] = 0.0
ITEMS = list(constants.items)
ACH = list(constants.achievements)
out = []
for i in range({n}):
    env = crafter.Env(seed=i)
    env._balance_chunk = lambda chunk, objs: None
    env._obs = lambda: None
    env._sem_view = lambda: None
    env.reset()
    w = env._world
    for obj in list(w.objects):
        if obj is not env._player:
            w.remove(obj)
    mat = w._mat_map.copy()
    acts = np.random.default_rng(1000 + i).integers(0, 17, {steps})
    traj = []
    for a in acts:
        _, r, done, info = env.step(int(a))
        p = env._player
        traj.append([int(p.pos[0]), int(p.pos[1]), int(p.facing[0]), int(p.facing[1]),
                     [int(p.inventory[k]) for k in ITEMS], [int(p.achievements[k]) for k in ACH],
                     round(float(r), 6), bool(done), bool(p.sleeping)])
        if done:
            break
    out.append({{"map": mat.tolist(), "actions": acts.tolist(), "traj": traj,
                "final_map": w._mat_map.tolist(), "items": ITEMS, "ach": ACH}})
json.dump(out, open(sys.argv[1], "w"))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument(
        "--reference",
        default=None,
        help="JSON file of crafter's trajectories: read if it exists, else written there",
    )
    args = ap.parse_args()
    if not REF_PY.is_file() and not (args.reference and Path(args.reference).is_file()):
        print("no crafter venv: bash benchmarks/setup_refs.sh crafter", file=sys.stderr)
        return 2
    if args.reference and Path(args.reference).is_file():
        ref = json.loads(Path(args.reference).read_text())
        if len(ref) != args.sequences or len(ref[0]["actions"]) != args.steps:
            print(f"{args.reference} holds another run's sequences", file=sys.stderr)
            return 2
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(args.reference) if args.reference else Path(tmp) / "ref.json"
            code = _REF.format(n=args.sequences, steps=args.steps)
            subprocess.run([str(REF_PY), "-c", code, str(path)], check=True)
            ref = json.loads(path.read_text())
    from mindscope.sandbox.openworld import ACHIEVEMENTS, ITEMS, OpenWorld

    assert ref[0]["items"] == list(ITEMS) and ref[0]["ach"] == list(ACHIEVEMENTS)
    n = len(ref)
    w = OpenWorld(
        n,
        size=64,
        mechanism=False,
        cows=0,
        zombies=0,
        sapling_probability=0.0,
        cow_penalty=0.0,
        interrupt_probability=0.0,
        seed=0,
    )
    w.reset(options={"map": np.array([r["map"] for r in ref]), "creatures": False})
    acts = np.array([r["actions"] for r in ref])  # [n, steps]
    alive = np.ones(n, dtype=bool)
    bad: dict[int, str] = {}
    compared = 0
    for t in range(args.steps):
        res = w.step(acts[:, t])
        for i in np.flatnonzero(alive).tolist():
            if i in bad or t >= len(ref[i]["traj"]):
                continue
            x, y, fx, fy, inv, ach, r, done, sl = ref[i]["traj"][t]
            mine = [
                int(w.pos[i, 0]),
                int(w.pos[i, 1]),
                int(w.facing[i, 0]),
                int(w.facing[i, 1]),
                w.inv[i].tolist(),
                w.ach[i].tolist(),
                round(float(res.observed_reward[i]), 6),
                bool(res.terminated[i]),
                bool(w.sleeping[i]),
            ]
            theirs = [x, y, fx, fy, inv, ach, r, done, sl]
            compared += 1
            if mine != theirs:
                names = [
                    "x",
                    "y",
                    "fx",
                    "fy",
                    "inventory",
                    "achievements",
                    "reward",
                    "done",
                    "sleeping",
                ]
                diff = [nm for nm, a, b in zip(names, mine, theirs, strict=True) if a != b]
                bad[i] = (
                    f"sequence {i} step {t + 1} action {acts[i, t]}: {diff} "
                    f"ours {[mine[names.index(d)] for d in diff]} "
                    f"crafter {[theirs[names.index(d)] for d in diff]}"
                )
        alive &= ~res.terminated
    for i, r in enumerate(ref):
        if i not in bad and not np.array_equal(w.mat[i], np.array(r["final_map"])):
            bad[i] = f"sequence {i}: final material maps differ"
    print(f"{n} sequences, {compared} steps compared, {len(bad)} mismatching sequences")
    for msg in list(bad.values())[:5]:
        print(" ", msg)
    record(
        "check_openworld_parity",
        {
            "sequences": (n, "sequences", "crafter maps with random action sequences"),
            "steps_compared": (compared, "steps", "steps compared (until each sequence ends)"),
            "mismatching_sequences": (len(bad), "sequences", "sequences with any difference"),
        },
        reps=1,
        notes="; ".join(list(bad.values())[:3]),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
