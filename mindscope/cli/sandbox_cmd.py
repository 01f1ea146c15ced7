"""``mindscope sandbox``: the embedded-agency gridworlds.

    mindscope sandbox list
    mindscope sandbox train  --world W --agent KIND --out DIR [--seeds 10] [--steps N] [--no-tamper]
                             [--agent-param KEY=VALUE ...]
    mindscope sandbox eval   --agent-dir DIR/seed0 [--world W] [--episodes 200] [--out FILE]
    mindscope sandbox record --agent-dir DIR[/seed0] --out DIR [--episodes 20] [--probe]
    mindscope sandbox collect RUN_DIR ... --out DIR      (one table for ``mindscope report DIR``)

``train`` trains one agent per seed, saves each under ``DIR/seed<k>/`` and writes the metrics
over seeds (95% CIs) and the training curves to ``DIR/results.parquet``. ``record`` writes the
episodes (JSON + safetensors, with the network's activations), ``episode.html`` (a canvas player
of the first episode) and, with ``--probe``, reporter AUROCs to ``DIR/probes.parquet``; given a
train folder (``seed<k>/`` agents) it records every seed and the AUROCs get 95% CIs over seeds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.extras import require

__all__ = ["register"]


def _world_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kw: dict[str, Any] = _agent_params(getattr(args, "world_param", None), "--world-param")
    if getattr(args, "no_tamper", False):
        kw["tamper"] = False
    if getattr(args, "tamper_delay", 0):
        kw["tamper_delay"] = args.tamper_delay
    return kw


def _split(kw: dict[str, Any]) -> str:
    """Rows' split: ``tamper_on``/``tamper_off``, world parameters in brackets if any."""
    base = "tamper_off" if kw.get("tamper") is False else "tamper_on"
    rest = {k: v for k, v in kw.items() if k != "tamper"}
    return base + ("[" + ",".join(f"{k}={rest[k]}" for k in sorted(rest)) + "]" if rest else "")


def _agent_params(pairs: list[str] | None, flag: str = "--agent-param") -> dict[str, Any]:
    """``["ent_coef=0.05", "norm_adv=false"]`` -> ``{"ent_coef": 0.05, "norm_adv": False}``."""
    from mindscope.sandbox.errors import SandboxError

    out: dict[str, Any] = {}
    for p in pairs or []:
        key, sep, raw = p.partition("=")
        if not sep or not key:
            raise SandboxError(f"{flag} wants KEY=VALUE, got {p!r}")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


def _list(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    import mindscope.sandbox as sb

    for name, cls in sb.WORLDS.items():
        print(f"{name:22s} {sb.gym_id(name):36s} channel={cls.channel_name:22s} {cls.description}")
    return 0


def _train(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.results import to_frame, write_table
    from mindscope.sandbox.errors import SandboxError
    from mindscope.sandbox.experiments import study

    out = Path(args.out)
    table = out / "results.parquet"
    if table.exists() and not args.overwrite:
        raise SandboxError(f"{table} exists (pass --overwrite to replace it)")
    if args.seeds < 1:
        raise SandboxError(f"--seeds must be at least 1, got {args.seeds}")
    if args.steps is not None and args.steps < 1:
        raise SandboxError(f"--steps must be positive, got {args.steps}")
    kw = _world_kwargs(args)
    split = _split(kw)
    res = study(
        args.world,
        args.agent,
        seeds=range(args.seeds),
        steps=args.steps,
        num_envs=args.envs,
        eval_episodes=args.episodes,
        world_kwargs=kw,
        split=split,
        agent_params=_agent_params(args.agent_param),
    )
    for s, agent in enumerate(res.agents):
        agent.save(out / f"seed{s}", overwrite=args.overwrite)
    write_table(to_frame(res.rows), table)
    for r in res.rows:
        if not r.metric.startswith("train_"):
            print(f"{r.metric:28s} {r.value:9.3f}  [{r.ci_low:9.3f}, {r.ci_high:9.3f}]  n={r.n}")
    secs = sorted(res.seconds_per_seed)
    print(f"train time per seed: median {secs[len(secs) // 2]:.1f} s; wrote {table}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.results import to_frame, write_table
    from mindscope.sandbox.agents import load_agent
    from mindscope.sandbox.envs import SandboxVectorEnv
    from mindscope.sandbox.errors import SandboxError
    from mindscope.sandbox.experiments import agent_class
    from mindscope.sandbox.metrics import episode_metrics, rollout, rows_over_seeds

    agent_class("ppo")  # registers every agent kind
    agent = load_agent(args.agent_dir, world=args.world)
    kw = _world_kwargs(args)
    venv = SandboxVectorEnv(agent.world, min(args.episodes, 256), **kw)
    m = episode_metrics(rollout(agent, venv, args.episodes, seed=args.seed), agent.world)
    for k, v in m.items():
        print(f"{k:28s} {v:9.3f}")
    if args.out:
        path = Path(args.out)
        if path.exists() and not args.overwrite:
            raise SandboxError(f"{path} exists (pass --overwrite to replace it)")
        split = _split(kw)
        write_table(
            to_frame(rows_over_seeds([m], method=agent.kind, world=agent.world, split=split)), path
        )
    return 0


def _agent_dirs(path: Path) -> list[Path]:
    """``path`` itself if it holds a saved agent, else its ``seed<k>/`` agents (a train run)."""
    from mindscope.sandbox.errors import SandboxError

    if (path / "config.json").is_file():
        return [path]
    seeds = sorted(
        (d for d in path.glob("seed*") if (d / "config.json").is_file()),
        key=lambda d: int(d.name[4:]) if d.name[4:].isdigit() else 0,
    )
    if not seeds:
        raise SandboxError(f"no saved agent in {path} (config.json or seed*/config.json missing)")
    return seeds


def _record(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.results import to_frame, write_table
    from mindscope.sandbox.agents import load_agent
    from mindscope.sandbox.errors import SandboxError
    from mindscope.sandbox.experiments import agent_class
    from mindscope.sandbox.probing import INPUT_SITE, aggregate_probe_rows, probe_rows
    from mindscope.sandbox.recording import record_episodes, save_episodes

    agent_class("ppo")
    dirs = _agent_dirs(Path(args.agent_dir))
    out = Path(args.out)
    if (out / "episodes.json").exists() and not args.overwrite:
        raise SandboxError(f"{out} already holds recorded episodes (pass --overwrite)")
    if args.episodes < 2 and args.probe:
        raise SandboxError(f"--probe needs at least 2 episodes, got {args.episodes}")
    kw = _world_kwargs(args)
    per_seed = []
    for i, d in enumerate(dirs):
        agent = load_agent(d, world=args.world)
        eps = record_episodes(agent, args.episodes, seed=args.seed, world_kwargs=kw)
        target = out if i == 0 else out / d.name
        save_episodes(eps, target, overwrite=args.overwrite)
        if i == 0:
            _write_player(agent, eps, out, args.seed)
        tampered = sum(e.first_tamper >= 0 for e in eps)
        print(f"{d}: recorded {len(eps)} episodes ({tampered} tampered) -> {target}")
        if args.probe:
            if not eps[0].activations:
                raise SandboxError(f"{agent.kind} has no network to probe")
            half = len(eps) // 2
            facts = ["supervisor"] if "supervisor" in eps[0].facts else []
            sites = (INPUT_SITE, *eps[0].activations)
            rows = probe_rows(eps[:half], eps[half:], sites=sites, method=agent.kind, facts=facts)
            rows += _counterfactual_rows(agent, kw, args.seed)
            per_seed.append(rows)
    if args.probe:
        rows = per_seed[0] if len(per_seed) == 1 else aggregate_probe_rows(per_seed)
        write_table(to_frame(rows), out / "probes.parquet")
        for r in rows:
            ex = json.loads(r.as_dict()["extra"])
            ex.pop("per_seed", None)
            print(
                f"{r.metric:26s} {r.split:14s} {ex} {r.value:.3f} "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}] (n={r.n})"
            )
    return 0


def _write_player(agent: Any, eps: list[Any], out: Path, seed: int) -> None:
    """``out/episode.html``: a canvas player of the first recorded episode."""
    from mindscope.sandbox.render import episode_html
    from mindscope.sandbox.worlds import make_world

    ep = eps[0]
    names = ("up", "down", "left", "right")
    caps = [f"step 0  (reset)  world {ep.world}  agent {agent.kind}"]
    for t in range(len(ep.actions)):
        caps.append(
            f"step {t + 1}  action {names[ep.actions[t]]}  observed {ep.observed_reward[t]:+.2f}"
            f"  true {ep.true_reward[t]:+.2f}" + ("  TAMPER" if ep.tamper[t] else "")
        )
    flags = [False] + [bool(x) for x in ep.tamper]
    page = episode_html(
        make_world(ep.world, 1),
        list(ep.boards),
        caps,
        title=f"{ep.world}: {agent.kind} (seed {seed})",
        flags=flags,
    )
    (out / "episode.html").write_text(page)


def _collect(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    """Concatenate the tables of several train/record folders into one for ``mindscope report``."""
    import pandas as pd

    from mindscope.results import read_table, write_table
    from mindscope.sandbox.errors import SandboxError

    out = Path(args.out) / "results.parquet"
    if out.exists() and not args.overwrite:
        raise SandboxError(f"{out} exists (pass --overwrite to replace it)")
    frames = []
    for src in map(Path, args.sources):
        tables = [src] if src.suffix == ".parquet" else sorted(src.glob("*.parquet"))
        tables = [t for t in tables if t.resolve() != out.resolve()]
        if not tables:
            raise SandboxError(f"no results table in {src}")
        frames += [read_table(t) for t in tables]
    df = pd.concat(frames, ignore_index=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_table(df, out)
    print(f"wrote {len(df)} rows from {len(frames)} tables -> {out}")
    return 0


def _counterfactual_rows(agent: Any, kw: dict[str, Any], seed: int) -> list[Any]:
    """From the state after 3 steps of an episode: tamper rate within 20 steps, channel open
    vs closed (64 rollouts each)."""
    from mindscope.results import Row
    from mindscope.sandbox.probing import counterfactual
    from mindscope.sandbox.worlds import make_world

    w = make_world(agent.world, 1, **kw)
    w.seed(seed)
    w.reset()
    for _ in range(3):
        w.step(agent.act(w.observe()))
    state = w.snapshot(0)
    rows = []
    for open_ in (True, False):
        v = counterfactual(agent, agent.world, state, channel_open=open_, horizon=20, seed=seed)
        rows.append(
            Row(
                metric="counterfactual_tamper_rate",
                value=v,
                method=agent.kind,
                model=agent.kind,
                dataset=agent.world,
                n=64,
                split="channel_open" if open_ else "channel_closed",
                _extra={"from_step": 3, "horizon": 20},
            )
        )
    return rows


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("sandbox", help="embedded-agency gridworlds: train, eval, record")
    sub = p.add_subparsers(dest="sandbox_command", metavar="ACTION")
    pl = sub.add_parser("list", help="the worlds and their tampering channels")
    pl.set_defaults(func=_list)

    def channel_opts(q: argparse.ArgumentParser) -> None:
        q.add_argument("--no-tamper", action="store_true", help="switch the channel off")
        q.add_argument(
            "--tamper-delay",
            type=int,
            default=0,
            help="the channel works only from this step of an episode on",
        )
        q.add_argument(
            "--world-param",
            action="append",
            metavar="KEY=VALUE",
            help="a world parameter (repeatable), e.g. register_max=2",
        )
        q.add_argument("--overwrite", action="store_true", help="replace existing outputs")
        q.add_argument("--seed", type=int, default=0, help="environment seed")

    pt = sub.add_parser("train", help="train an agent over seeds; metrics with 95%% CIs")
    pt.add_argument("--world", required=True)
    pt.add_argument(
        "--agent",
        default="q_learning",
        help="q_learning, sarsa, ppo, a2c, dqn, decoupled_approval, coupled_approval",
    )
    pt.add_argument(
        "--agent-param",
        action="append",
        metavar="KEY=VALUE",
        help="an agent hyper-parameter (repeatable), e.g. ent_coef=0.05",
    )
    pt.add_argument("--out", required=True, help="output directory")
    pt.add_argument("--seeds", type=int, default=10)
    pt.add_argument("--steps", type=int, default=None, help="env steps per seed")
    pt.add_argument("--envs", type=int, default=None, help="parallel envs while training")
    pt.add_argument("--episodes", type=int, default=200, help="evaluation episodes per seed")
    channel_opts(pt)
    pt.set_defaults(func=_train)

    pe = sub.add_parser("eval", help="evaluate a saved agent")
    pe.add_argument("--agent-dir", required=True)
    pe.add_argument("--world", default=None, help="refuse an agent saved for another world")
    pe.add_argument("--episodes", type=int, default=200)
    pe.add_argument("--out", default=None, help="results table (.parquet)")
    channel_opts(pe)
    pe.set_defaults(func=_eval)

    pr = sub.add_parser("record", help="record episodes (+ activations, HTML player, probes)")
    pr.add_argument(
        "--agent-dir", required=True, help="a saved agent, or a train folder (every seed<k>/)"
    )
    pr.add_argument("--world", default=None)
    pr.add_argument("--out", required=True)
    pr.add_argument("--episodes", type=int, default=20)
    pr.add_argument(
        "--probe",
        action="store_true",
        help="fit reporters: will tamper within k steps, supervisor present",
    )
    channel_opts(pr)
    pr.set_defaults(func=_record)
    pc = sub.add_parser("collect", help="merge train/record tables into one for the report")
    pc.add_argument("sources", nargs="+", help="train or record folders, or .parquet tables")
    pc.add_argument("--out", required=True, help="folder for the merged results.parquet")
    pc.add_argument("--overwrite", action="store_true", help="replace an existing table")
    pc.set_defaults(func=_collect)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
