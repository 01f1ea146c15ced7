"""Regenerate docs/figures/sandbox_openworld_current_rf.json: PPO against current-RF PPO in the
open world.

    OMP_NUM_THREADS=1 python docs/examples/openworld_current_rf.py [--seeds 10] [--steps 98304]
        [--envs 128] [--length 500] [--episodes 64] [--backend ray]
    python docs/examples/openworld_current_rf.py --quick      # 2 seeds, short: a smoke run
    python docs/examples/openworld_current_rf.py --steps 196608 \
        --out docs/figures/sandbox_openworld_current_rf_196k.json   # twice the budget

Calls ``mindscope.sandbox.schemes.compare_scheme("current_rf", "open_world")``: both learners
(the same PPO, network, inputs and hyper-parameters; the scheme's returns read every later
reward under the rules in force at the decision, through the open world's rule channel) on the
same seeds, each agent evaluated on one episode in each of ``--episodes`` fresh environments;
tamper rate (any kind, and each kind) and true / observed return with Student-t 95% CIs over
seeds, and the effect (PPO minus current-RF PPO) with a bootstrap 95% CI and a two-sided
permutation p-value over seeds. The file follows the figures format of ``benchmarks/_figures.py``
(flat ``figures`` that docs/sandbox.md quotes, the full summary under ``details``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import time
from pathlib import Path
from typing import Any

from mindscope.io import atomic_write_json
from mindscope.sandbox.schemes import compare_scheme

OUT = Path(__file__).resolve().parents[1] / "figures" / "sandbox_openworld_current_rf.json"
METRICS = (
    "tamper_rate",
    "tamper_rate_rule_edit",
    "tamper_rate_sensor_feed",
    "tamper_rate_sensor_cover",
    "tamper_rate_off_switch",
    "tamper_rate_unwatched_violation",
    "true_return",
    "observed_return",
    "achievements",
    "env_steps_per_s_with_learning",
)


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Flat ``{key: {value, unit, what}}``: each arm's means and CIs, the random policy, the
    effects."""
    out: dict[str, Any] = {}
    n = len(summary["seeds"])
    for arm, m in summary["arms"].items():
        label = arm.split(":")[0]
        for metric in METRICS:
            for part in ("mean", "ci_low", "ci_high"):
                out[f"{label}__{metric}__{part}"] = {
                    "value": m[metric][part],
                    "unit": "share of episodes" if metric.startswith("tamper") else "value",
                    "what": f"{arm} in the open world, {metric} {part} over {n} seeds",
                }
    for metric, v in summary["random_policy"].items():
        out[f"random__{metric}"] = {"value": v, "unit": "value", "what": f"random policy {metric}"}
    for metric, e in summary["effect"].items():
        for part in ("difference", "ci_low", "ci_high", "p_value"):
            out[f"effect__{metric}__{part}"] = {
                "value": e[part],
                "unit": "p" if part == "p_value" else "PPO - current-RF PPO",
                "what": f"{metric} of PPO minus current-RF PPO, {part}",
            }
    out["wall_seconds"] = {"value": summary["wall_seconds"], "unit": "s", "what": "whole run"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--steps", type=int, default=98_304)
    ap.add_argument("--envs", type=int, default=128)
    ap.add_argument("--length", type=int, default=500)
    ap.add_argument("--episodes", type=int, default=64)
    ap.add_argument("--backend", default="inprocess")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 8,192 steps, 32 envs")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps, args.envs, args.episodes = 2, 8192, 32, 16
    t0 = time.perf_counter()
    res = compare_scheme(
        "current_rf",
        "open_world",
        seeds=range(args.seeds),
        steps=args.steps,
        eval_episodes=args.episodes,
        world_kwargs={"length": args.length},
        num_envs=args.envs,
        backend=args.backend,
    )
    summary = dict(res.summary, wall_seconds=time.perf_counter() - t0)
    for arm, m in summary["arms"].items():
        print(
            f"{arm:38s} tamper {m['tamper_rate']['mean']:.2f} "
            f"[{m['tamper_rate']['ci_low']:.2f}, {m['tamper_rate']['ci_high']:.2f}]  rule edit "
            f"{m['tamper_rate_rule_edit']['mean']:.2f}  true {m['true_return']['mean']:.2f}  "
            f"observed {m['observed_return']['mean']:.2f}"
        )
    for metric, e in summary["effect"].items():
        print(
            f"effect on {metric} (PPO - current-RF): {e['difference']:.3f} "
            f"[{e['ci_low']:.3f}, {e['ci_high']:.3f}] p={e['p_value']:.4f}"
        )
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    command = (
        "python docs/examples/openworld_current_rf.py"
        + (
            " --quick"
            if args.quick
            else f" --seeds {args.seeds} --steps {args.steps} --envs {args.envs} "
            f"--length {args.length} --episodes {args.episodes}"
        )
        + ("" if args.out == OUT else f" --out {args.out}")
    )
    atomic_write_json(
        args.out,
        {
            "name": args.out.stem,
            "source": "run",
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
            "command": command,
            "reps": args.seeds,
            "machine": {"cpus": os.cpu_count() or 1, "load_average": load, "idle": False},
            "notes": "2-core machine shared with other jobs; reps = seeds per arm",
            "figures": figures(summary),
            "details": summary,
        },
    )
    print(f"wrote {args.out} in {summary['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
