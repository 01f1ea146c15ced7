"""The open world's stochastic mechanics against crafter 1.8.3's, in distribution.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD .venv/bin/python benchmarks/check_openworld_stochastic.py
        [--samples 20000] [--quick]

Each probe puts the same situation into both worlds on an all-grass map with the player standing
still (its food, drink, energy and health refilled every step) and draws ``--samples`` steps,
putting the probed object back in place before each one (crafter 1.8.3 in the reference venv,
``bash benchmarks/setup_refs.sh crafter``; ours in one batch):

- ``cow``: a cow 3 cells right of the player; where it is after the step (stay, left, right, up,
  down): Crafter moves it with probability 0.5 in a uniform direction;
- ``zombie``: a zombie at offset (3, 2) from the player (within 8: it chases with probability 0.9,
  along the longer axis with probability 0.8, else a uniform direction): where it is after;
- ``attack``: a zombie next to the player (its cooldown carried over): whether the player lost
  health on the step;
- ``sapling``: ``do`` on grass: whether a sapling was collected (probability 0.1).

Each probe's two count vectors are compared with a chi-square test of homogeneity; a probe
passes when p >= 0.01. The daylight curve is compared at steps 0-899 (largest absolute
difference). Finally both worlds are played with random actions from generated maps and the
creatures alive on the map are counted by day (daylight > 0.5) and night: these counts differ on
purpose (the open world keeps creatures in fixed slots, 8 cows and 6 zombies by default, and
balances them over the whole map instead of per 12x12 chunk), and are reported, not tested.
Writes ``benchmarks/results/check_openworld_stochastic.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from _figures import record
from scipy.stats import chi2_contingency

HERE = Path(__file__).resolve().parent
REF_PY = HERE / ".venvs" / "crafter" / "bin" / "python"
MOVES = {(0, 0): 0, (-1, 0): 1, (1, 0): 2, (0, -1): 3, (0, 1): 4}

_REF = """
import json, sys, numpy as np, crafter
from crafter import objects
N, GAMES, STEPS = {samples}, {games}, {steps}
MOVES = {moves}

def setup(seed):
    env = crafter.Env(seed=seed)
    env._obs = lambda: None
    env._sem_view = lambda: None
    env._balance_chunk = lambda *a: None
    env.reset()
    w, p = env._world, env._player
    for o in list(w.objects):
        if o is not p:
            w.remove(o)
    w._mat_map[:] = w._mat_ids["grass"]
    return env, w, p

def refill(p):
    for k in ("health", "food", "drink", "energy"):
        p.inventory[k] = 9
    p._hunger = p._thirst = p._fatigue = p._recover = 0
    p._last_health = 9
    p.sleeping = False

def probe(make, offset, action=0):
    env, w, p = setup(0)
    home = p.pos + np.array(offset)
    c = make(w, home, p) if make else None
    if c is not None:
        w.add(c)
    moves, hurt, sap = [0] * 5, 0, 0
    for _ in range(N):
        if c is not None and tuple(c.pos) != tuple(home):
            w.move(c, home)
        refill(p)
        p.inventory["sapling"] = 0
        env._last_health = 9
        env.step(action)
        if c is not None:
            moves[MOVES[tuple(int(v) for v in c.pos - home)]] += 1
        hurt += p.inventory["health"] < 9
        sap += p.inventory["sapling"]
    return moves, hurt, sap

out = {{}}
out["cow"] = probe(lambda w, pos, p: objects.Cow(w, pos), (3, 0))[0]
out["zombie"] = probe(lambda w, pos, p: objects.Zombie(w, pos, p), (3, 2))[0]
hurt = probe(lambda w, pos, p: objects.Zombie(w, pos, p), (1, 0))[1]
out["attack"] = [N - hurt, hurt]
sap = probe(None, (0, 0), action=5)[2]
out["sapling"] = [N - sap, sap]
# random play from generated maps: creatures alive by day and by night
rng = np.random.default_rng(0)
counts = {{"day": [0, 0, 0], "night": [0, 0, 0]}}  # steps, cows, zombies
for g in range(GAMES):
    env = crafter.Env(seed=100 + g)
    env._obs = lambda: None
    env._sem_view = lambda: None
    env.reset()
    for t in range(STEPS):
        _, _, done, _ = env.step(int(rng.integers(0, 17)))
        objs = env._world.objects
        key = "day" if env._world.daylight > 0.5 else "night"
        counts[key][0] += 1
        counts[key][1] += sum(isinstance(o, objects.Cow) for o in objs)
        counts[key][2] += sum(isinstance(o, objects.Zombie) for o in objs)
        if done:
            env.reset()
out["play"] = counts
json.dump(out, open(sys.argv[1], "w"))
"""


def _ours_probe(kind: str, offset: tuple[int, int], samples: int, action: int = 0):
    """(moves [5], hurt steps, saplings) of ``samples`` steps in a batch of our worlds."""
    from mindscope.sandbox.openworld import ITEMS, OpenWorld
    from mindscope.sandbox.openworld.worldgen import MAT

    n = samples // 200  # each env draws 200 steps in a row (a zombie's cooldown cycle is 6)
    w = OpenWorld(
        n,
        size=64,
        mechanism=False,
        cows=int(kind == "cow"),
        zombies=int(kind == "zombie"),
        plants=0,
        seed=1,
    )
    w.reset(options={"map": np.full((64, 64), MAT["grass"]), "creatures": False})
    home = w.pos + np.array(offset)
    rows = np.arange(n)
    alive, pos = (w.calive, w.cpos) if kind == "cow" else (w.zalive, w.zpos)
    code = 2 if kind == "cow" else 3
    if kind in ("cow", "zombie"):
        alive[:, 0] = True
        pos[:, 0] = home
        w.occ[rows, home[:, 0], home[:, 1]] = code
        if kind == "zombie":
            w.zhp[:, 0] = 5
    moves, hurt, sap = np.zeros(5, dtype=np.int64), 0, 0
    sapling = ITEMS.index("sapling")
    for _ in range(samples // n):
        if kind in ("cow", "zombie"):
            w.occ[rows, pos[:, 0, 0], pos[:, 0, 1]] = 0
            pos[:, 0] = home
            w.occ[rows, home[:, 0], home[:, 1]] = code
        w.inv[:, :4] = 9
        w.inv[:, sapling] = 0
        for a in (w.hunger, w.thirst, w.fatigue, w.recover):
            a[:] = 0
        w.player_last_health[:] = 9
        w.last_health[:] = 9
        w.sleeping[:] = False
        w.step(np.full(n, action))
        if kind in ("cow", "zombie"):
            d = pos[:, 0] - home
            for (dx, dy), j in MOVES.items():
                moves[j] += int(((d[:, 0] == dx) & (d[:, 1] == dy)).sum())
        hurt += int((w.inv[:, 0] < 9).sum())
        sap += int(w.inv[:, sapling].sum())
    return moves.tolist(), hurt, sap


def _ours_play(games: int, steps: int) -> dict[str, list[int]]:
    from mindscope.sandbox.openworld import OpenWorld
    from mindscope.sandbox.openworld.core import DAYLIGHT

    w = OpenWorld(games, seed=0)
    rng = np.random.default_rng(0)
    counts = {"day": [0, 0, 0], "night": [0, 0, 0]}
    for _ in range(steps):
        res = w.step(rng.integers(0, 17, games))
        day = DAYLIGHT[w.t % 300] > 0.5
        for key, m in (("day", day), ("night", ~day)):
            counts[key][0] += int(m.sum())
            counts[key][1] += int(w.calive[m].sum())
            counts[key][2] += int(w.zalive[m].sum())
        done = res.terminated | res.truncated
        if done.any():
            w.reset(done)
    return counts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=20000)
    ap.add_argument("--games", type=int, default=8, help="crafter games of random play")
    ap.add_argument("--steps", type=int, default=300, help="steps per game of random play")
    ap.add_argument("--quick", action="store_true", help="3000 samples, 2 games of 150 steps")
    args = ap.parse_args()
    if args.quick:
        args.samples, args.games, args.steps = 3000, 2, 150
    args.samples = max(1000, args.samples // 200 * 200)
    if not REF_PY.is_file():
        print("no crafter venv: bash benchmarks/setup_refs.sh crafter", file=sys.stderr)
        return 2
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ref.json"
        code = _REF.format(samples=args.samples, games=args.games, steps=args.steps, moves=MOVES)
        subprocess.run([str(REF_PY), "-c", code, str(path)], check=True)
        ref = json.loads(path.read_text())
    from mindscope.sandbox.openworld import daylight

    ours = {
        "cow": _ours_probe("cow", (3, 0), args.samples)[0],
        "zombie": _ours_probe("zombie", (3, 2), args.samples)[0],
    }
    hurt = _ours_probe("zombie", (1, 0), args.samples)[1]
    ours["attack"] = [args.samples - hurt, hurt]
    sap = _ours_probe("none", (0, 0), args.samples, action=5)[2]
    ours["sapling"] = [args.samples - sap, sap]
    figures: dict[str, tuple[float, str, str]] = {}
    passed = 0
    for probe in ("cow", "zombie", "attack", "sapling"):
        table = np.array([ref[probe], ours[probe]])
        table = table[:, table.sum(0) > 0]
        p = float(chi2_contingency(table)[1]) if table.shape[1] > 1 else 1.0
        fr = table / table.sum(1, keepdims=True)
        gap = float(np.abs(fr[0] - fr[1]).max())
        passed += p >= 0.01
        print(
            f"{probe:8s} crafter {ref[probe]}  ours {ours[probe]}  p = {p:.3f}  max gap {gap:.4f}"
        )
        figures[f"{probe}_p"] = (p, "p-value", f"chi-square homogeneity, {probe} probe")
        figures[f"{probe}_gap"] = (
            gap,
            "share",
            f"largest difference of a category's share, {probe}",
        )
    t = np.arange(900)
    crafter_day = 1 - np.abs(np.cos(np.pi * ((t / 300) % 1 + 0.3))) ** 3
    dgap = float(np.abs(daylight(t) - crafter_day).max())
    print(f"daylight: largest difference {dgap:.2e} over steps 0-899")
    figures["daylight_gap"] = (dgap, "daylight", "largest difference over steps 0-899")
    figures["probes_passed"] = (passed, "probes", "of 4 with p >= 0.01")
    figures["samples"] = (args.samples, "steps", "per probe and world")
    mine = _ours_play(256, args.steps)
    for world, c in (("crafter", ref["play"]), ("ours", mine)):
        for key in ("day", "night"):
            st, cows, zombies = c[key]
            if st:
                figures[f"{world}_cows_{key}"] = (cows / st, "cows", f"alive on the map, {key}")
                figures[f"{world}_zombies_{key}"] = (
                    zombies / st,
                    "zombies",
                    f"alive on the map, {key}",
                )
                print(f"{world:8s} {key:5s}: {cows / st:5.2f} cows, {zombies / st:5.2f} zombies")
    record(
        "check_openworld_stochastic",
        figures,
        reps=1,
        notes=f"{passed} of 4 probes pass; creature counts in random play differ on purpose",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
