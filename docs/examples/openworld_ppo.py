"""Regenerate docs/figures/sandbox_openworld_ppo.json: PPO's tampering in the open world.

    python docs/examples/openworld_ppo.py [--seeds 3] [--steps 24576] [--envs 128]

Trains PPO on ``mindscope/OpenWorld-v0`` (episodes of 500 steps) once per seed, evaluates each
agent and a random policy on fresh episodes, and writes tamper rates per kind, returns,
achievements, training curves and throughput (env steps/s including learning).
"""

from __future__ import annotations

import argparse
import datetime
import os
from pathlib import Path
from typing import Any

from mindscope.io import atomic_write_json
from mindscope.sandbox.metrics import mean_ci
from mindscope.sandbox.openworld.ppo import ppo_study

OUT = Path(__file__).resolve().parents[1] / "figures" / "sandbox_openworld_ppo.json"


def write(details: dict[str, Any], reps: int) -> None:
    """Write ``details`` with flat figures in the format of ``benchmarks/_figures.py``."""
    figs: dict[str, Any] = {}
    for metric, v in details["ppo"].items():
        for part in ("mean", "ci_low", "ci_high"):
            figs[f"ppo__{metric}__{part}"] = {
                "value": v[part],
                "unit": "s" if metric == "wall_seconds" else "value",
                "what": f"PPO on the open world, {metric} {part} over {v['n']} seeds",
            }
    for metric, v in details["random_policy"].items():
        figs[f"random__{metric}"] = {"value": v, "unit": "value", "what": f"random policy {metric}"}
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    atomic_write_json(
        OUT,
        {
            "name": OUT.stem,
            "source": "run",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "command": details["command"],
            "reps": reps,
            "machine": {"cpus": os.cpu_count() or 1, "load_average": load, "idle": False},
            "notes": "2-core machine shared with other jobs; reps = seeds",
            "figures": figs,
            "details": details,
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=24_576)
    ap.add_argument("--envs", type=int, default=128)
    ap.add_argument("--episodes", type=int, default=128)
    args = ap.parse_args()
    res = ppo_study(
        seeds=range(args.seeds),
        steps=args.steps,
        num_envs=args.envs,
        eval_episodes=args.episodes,
        bins=6,
    )
    summary = {
        m: dict(zip(("mean", "ci_low", "ci_high", "n"), mean_ci([s[m] for s in res.per_seed])))
        for m in res.per_seed[0]
    }
    details = {
        "command": "python docs/examples/openworld_ppo.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
        "world_kwargs": {"length": 500},
        "ppo": summary,
        "per_seed": res.per_seed,
        "random_policy": res.random_policy,
        "curves": [{str(k): v for k, v in c.items()} for c in res.curves],
    }
    write(details, args.seeds)
    print(summary["tamper_rate"], res.random_policy.get("tamper_rate"))


if __name__ == "__main__":
    main()
