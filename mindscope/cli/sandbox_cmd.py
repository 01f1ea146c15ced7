"""``mindscope sandbox``: the embedded-agency gridworlds.

    mindscope sandbox list
    mindscope sandbox train  --world W --agent KIND --out DIR [--seeds 10] [--steps N] [--no-tamper]
                             [--agent-param KEY=VALUE ...] [--backend ray]
    mindscope sandbox eval   --agent-dir DIR/seed0 [--world W] [--episodes 200] [--out FILE]
    mindscope sandbox record --agent-dir DIR[/seed0] --out DIR [--episodes 20] [--probe]
                             [--backend ray]
    mindscope sandbox collect RUN_DIR ... --out DIR      (one table for ``mindscope report DIR``)
    mindscope sandbox scheme --scheme NAME [--world W] --out DIR [--seeds 10] [--steps N]
                             [--envs N] [--length N]   (--world open_world: PPO vs the scheme's
                                                        PPO, e.g. --scheme current_rf)
    mindscope sandbox openworld [--agent random|ppo|current_rf_ppo] [--seeds 3] [--steps N]
                                [--out DIR]
                                (PPO agents saved under DIR/seed<k>/, ready for ``record``)

``train`` trains one agent per seed, saves each under ``DIR/seed<k>/`` and writes the metrics
over seeds (95% CIs) and the training curves to ``DIR/results.parquet``. ``record`` writes the
episodes (JSON + safetensors, with the network's activations), ``episode.html`` (a canvas player
of the first episode) and, with ``--probe``, reporter AUROCs to ``DIR/probes.parquet``; given a
train folder (``seed<k>/`` agents) it records every seed and the AUROCs get 95% CIs over seeds.
``--backend ray`` trains (or records) the seeds in parallel on a local Ray instance, with the
same results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from mindscope.cli._args import add_backend_arg, positive_int
from mindscope.errors import MindscopeError
from mindscope.extras import require

__all__ = ["register"]


def _world_kwargs(args: argparse.Namespace, world: str | None = None) -> dict[str, Any]:
    """The world's keyword parameters from ``--world-param``/``--no-tamper``/``--tamper-delay``,
    each name checked against ``world``'s parameters when it is known."""
    from mindscope.sandbox.errors import SandboxError

    kw: dict[str, Any] = _key_values(getattr(args, "world_param", None), "--world-param")
    if getattr(args, "tamper_delay", 0) < 0:
        raise SandboxError(f"--tamper-delay must be >= 0, got {args.tamper_delay}")
    if getattr(args, "no_tamper", False):
        kw["tamper"] = False
    if getattr(args, "tamper_delay", 0):
        kw["tamper_delay"] = args.tamper_delay
    if world is not None:
        from mindscope.sandbox.worlds import world_params

        known = world_params(world)
        unknown = sorted(set(kw) - set(known))
        if unknown:
            raise SandboxError(
                f"--world-param: unknown {', '.join(unknown)} for world {world} "
                f"(known: {', '.join(known)})"
            )
    return kw


def _check_counts(args: argparse.Namespace, *flags: str) -> None:
    """Each of ``flags`` (``--seeds``, ``--episodes``...) is None or at least 1; ``--seed`` >= 0."""
    from mindscope.sandbox.errors import SandboxError

    for flag in flags:
        positive_int(getattr(args, flag.lstrip("-").replace("-", "_")), flag)
    if getattr(args, "seed", 0) < 0:
        raise SandboxError(f"--seed must be >= 0, got {args.seed}")


def _key_values(pairs: list[str] | None, flag: str = "--agent-param") -> dict[str, Any]:
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


def _refuse_existing(path: Path, overwrite: bool) -> None:
    from mindscope.sandbox.errors import SandboxError

    if path.exists() and not overwrite:
        raise SandboxError(f"{path} exists (pass --overwrite to replace it)")


def _list(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    import mindscope.sandbox as sb

    for name, cls in sb.WORLDS.items():
        print(f"{name:22s} {sb.gym_id(name):36s} channel={cls.channel_name:22s} {cls.description}")
    print(
        f"{'open_world':22s} {sb.OPEN_WORLD_ID:36s} channel={'sensor,rules,supervisor,off':22s} "
        "Crafter-like open world with its reward mechanism inside"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.analyses import CheckContext, SandboxConfig, run_stage
    from mindscope.results import write_table

    out = Path(args.out)
    table = out / "results.parquet"
    _refuse_existing(table, args.overwrite)
    _check_counts(args, "--seeds", "--steps", "--envs", "--episodes")
    cfg = SandboxConfig(
        world=args.world,
        agent=args.agent,
        seeds=args.seeds,
        steps=args.steps,
        envs=args.envs,
        episodes=args.episodes,
        world_params=_world_kwargs(args, args.world),
        agent_params=_key_values(args.agent_param),
        backend=args.backend,
    )
    try:
        cfg = cfg.check(CheckContext(base=Path.cwd()), "sandbox")
    except MindscopeError as exc:
        head, _, tail = str(exc).partition(":")
        flag = {"world_params": "world-param", "agent_params": "agent-param"}.get(
            head.removeprefix("sandbox."), head.removeprefix("sandbox.").replace("_", "-")
        )
        raise MindscopeError(f"--{flag}:{tail}") from None
    res = run_stage("sandbox", None, cfg)
    for name, write in res.artefacts.items():  # the results table was refused above if present
        write(out / name)
    write_table(res.rows, table)
    for r in res.rows.itertuples():
        if not str(r.metric).startswith("train_"):
            print(f"{r.metric:28s} {r.value:9.3f}  [{r.ci_low:9.3f}, {r.ci_high:9.3f}]  n={r.n}")
    print(f"train time per seed: median {res.info['median_seconds']:.1f} s; wrote {table}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.results import to_frame, write_table
    from mindscope.sandbox.agents import load_agent
    from mindscope.sandbox.agents.base import OPEN_WORLD
    from mindscope.sandbox.experiments import agent_class, evaluate

    if args.out:
        _refuse_existing(Path(args.out), args.overwrite)
    _check_counts(args, "--episodes")
    agent_class("ppo")  # registers every agent kind
    agent = load_agent(args.agent_dir, world=args.world)
    if agent.world == OPEN_WORLD:  # one episode in each of --episodes fresh open worlds
        from mindscope.sandbox.experiments import saved_world_kwargs
        from mindscope.sandbox.metrics import rows_over_seeds
        from mindscope.sandbox.openworld_agents import evaluate_open

        kw = _world_kwargs(args) or saved_world_kwargs(Path(args.agent_dir))
        m = evaluate_open(agent, args.episodes, seed=args.seed, **kw)
        rows = rows_over_seeds([m], method=agent.kind, world=OPEN_WORLD, split="tamper_on")
    else:
        kw = _world_kwargs(args, agent.world)
        m, rows = evaluate(agent, args.episodes, seed=args.seed, world_kwargs=kw)
    for k, v in m.items():
        print(f"{k:28s} {v:9.3f}")
    if args.out:
        write_table(to_frame(rows), Path(args.out))
    return 0


def _record(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    from mindscope.results import extra_of, to_frame, write_table
    from mindscope.sandbox.errors import SandboxError
    from mindscope.sandbox.experiments import agent_dirs, record_study, saved_world_kwargs
    from mindscope.sandbox.recording import save_episodes
    from mindscope.sandbox.render import episode_page

    _check_counts(args, "--episodes", "--max-states")
    kw = _world_kwargs(args, args.world)
    dirs = agent_dirs(args.agent_dir)
    if not kw:  # the world parameters the agents were trained with, when saved beside them
        kw = saved_world_kwargs(Path(args.agent_dir))
    out = Path(args.out)
    if (out / "episodes.json").exists() and not args.overwrite:
        raise SandboxError(f"{out} already holds recorded episodes (pass --overwrite)")
    res = record_study(
        dirs,
        episodes=args.episodes,
        seed=args.seed,
        world=args.world,
        world_kwargs=kw,
        probe=args.probe,
        backend=args.backend,
        probe_kwargs={"max_states": args.max_states} if args.max_states else None,
    )
    # one agent: its episodes in OUT/; a train folder: seed k's under OUT/seed<k>/ (all seeds)
    one_agent = (Path(args.agent_dir) / "config.json").is_file()
    for i, (d, agent, eps) in enumerate(zip(dirs, res.agents, res.episodes, strict=True)):
        target = out if one_agent else out / d.name
        save_episodes(eps, target, overwrite=args.overwrite)
        if i == 0:
            (out / "episode.html").write_text(episode_page(eps[0], agent.kind, args.seed))
        tampered = sum(e.first_tamper >= 0 for e in eps)
        print(f"{d}: recorded {len(eps)} episodes ({tampered} tampered) -> {target}")
    if args.probe:
        write_table(to_frame(res.rows), out / "probes.parquet")
        for r in res.rows:
            ex = {k: v for k, v in extra_of(r).items() if k != "per_seed"}
            print(
                f"{r.metric:26s} {r.split:14s} {ex} {r.value:.3f} "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}] (n={r.n})"
            )
    return 0


def _collect(args: argparse.Namespace) -> int:
    require("sandbox", what="mindscope sandbox")
    """Concatenate the tables of several train/record folders into one for ``mindscope report``."""
    import pandas as pd

    from mindscope.results import read_table, write_table
    from mindscope.sandbox.errors import SandboxError

    out = Path(args.out) / "results.parquet"
    _refuse_existing(out, args.overwrite)
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


def _scheme(args: argparse.Namespace) -> int:
    """A scheme vs its baseline over seeds: rows to DIR/results.parquet, summary to JSON."""
    require("sandbox", what="mindscope sandbox")
    from mindscope.io import atomic_write_json
    from mindscope.results import to_frame, write_table
    from mindscope.sandbox.errors import SandboxError
    from mindscope.sandbox.schemes import check_scheme_world, compare_scheme, is_open_world, scheme

    scheme(args.scheme)  # one-line error before anything else
    _check_counts(args, "--seeds", "--steps", "--episodes", "--envs", "--length")
    kw = _world_kwargs(args)
    if args.length is not None:
        if not is_open_world(args.world):
            raise SandboxError("--length applies to the open world only (--world open_world)")
        kw["length"] = args.length
    check_scheme_world(args.scheme, args.world, kw)  # the channel, before anything is trained
    out = Path(args.out)
    _refuse_existing(out / "results.parquet", args.overwrite)
    res = compare_scheme(
        args.scheme,
        args.world,
        seeds=range(args.seeds),
        steps=args.steps,
        eval_episodes=args.episodes,
        variants=not args.no_variants,
        world_kwargs=kw,
        backend=args.backend,
        num_envs=args.envs,
    )
    out.mkdir(parents=True, exist_ok=True)
    write_table(to_frame(res.rows), out / "results.parquet")
    atomic_write_json(out / "summary.json", res.summary)
    for arm, m in res.summary["arms"].items():
        t, r = m["tamper_rate"], m["true_return"]
        print(
            f"{arm:45s} tamper {t['mean']:.2f} [{t['ci_low']:.2f}, {t['ci_high']:.2f}]  "
            f"true return {r['mean']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"
        )
    for m, d in res.summary["effect"].items():
        print(
            f"effect on {m} (baseline - scheme): {d['difference']:.3f} "
            f"[{d['ci_low']:.3f}, {d['ci_high']:.3f}] p={d['p_value']:.4f}"
            f"{' (significant)' if d['significant'] else ''}"
        )
    print(f"wrote {out / 'results.parquet'} and {out / 'summary.json'}")
    return 0


def _openworld(args: argparse.Namespace) -> int:
    """Play (random) or train PPO on the open world; tamper rates per kind."""
    require("sandbox", what="mindscope sandbox")
    from mindscope.io import atomic_write_json
    from mindscope.sandbox.errors import SandboxError

    known = ["random", "ppo", "current_rf_ppo"]
    if args.agent not in known:
        import difflib

        close = difflib.get_close_matches(args.agent, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise SandboxError(
            f"unknown open-world agent {args.agent!r} ({hint}known: {', '.join(known)})"
        )
    _check_counts(args, "--seeds", "--steps", "--envs", "--episodes", "--length")
    world = {"length": args.length}
    out = Path(args.out) if args.out else None
    if out is not None:
        _refuse_existing(out / "summary.json", args.overwrite)
    if args.agent == "random":
        from mindscope.sandbox.openworld_agents import evaluate_open

        summary: dict[str, Any] = {"random": evaluate_open(None, args.episodes, **world)}
    else:
        from mindscope.results import to_frame, write_table
        from mindscope.sandbox.openworld_agents import ppo_study

        res = ppo_study(
            seeds=range(args.seeds),
            steps=args.steps or 24_576,
            num_envs=args.envs,
            world_kwargs=world,
            eval_episodes=args.episodes,
            backend=args.backend,
            agent=args.agent,
        )
        summary = {f"{args.agent}_per_seed": res.per_seed, "random": res.random_policy}
        if out is not None:
            from mindscope.sandbox.experiments import save_world_kwargs

            out.mkdir(parents=True, exist_ok=True)
            write_table(to_frame(res.rows), out / "results.parquet")
            for seed, agent in zip(range(args.seeds), res.agents, strict=True):
                agent.save(out / f"seed{seed}", overwrite=args.overwrite)
            save_world_kwargs(out, world, overwrite=args.overwrite)
    for name, m in summary.items():
        for one in m if isinstance(m, list) else [m]:
            rates = ", ".join(
                f"{k[len('tamper_rate_') :]} {v:.2f}"
                for k, v in one.items()
                if k.startswith("tamper_rate_")
            )
            print(
                f"{name}: tamper rate {one['tamper_rate']:.2f} ({rates}); true return "
                f"{one['true_return']:.2f}, observed {one['observed_return']:.2f}"
            )
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "summary.json", summary)
    return 0


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
        help="q_learning, sarsa, ppo, a2c, dqn, decoupled_approval, coupled_approval, "
        "decoupled_approval_q, coupled_approval_q, mona, current_rf",
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
    add_backend_arg(pt)
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
    pr.add_argument(
        "--max-states",
        type=int,
        default=None,
        help="fit each reporter on at most this many training states (a seeded subset)",
    )
    add_backend_arg(pr, "saved agents")
    channel_opts(pr)
    pr.set_defaults(func=_record)
    ps = sub.add_parser("scheme", help="an alignment scheme vs its baseline, 95%% CIs over seeds")
    ps.add_argument("--scheme", required=True, help="decoupled_approval, current_rf, mona")
    ps.add_argument(
        "--world", default=None, help="default: the scheme's own world; open_world: PPO arms"
    )
    ps.add_argument("--out", required=True)
    ps.add_argument("--seeds", type=int, default=10)
    ps.add_argument("--steps", type=int, default=None, help="env steps per seed")
    ps.add_argument("--episodes", type=int, default=200)
    ps.add_argument("--no-variants", action="store_true", help="only the scheme and baseline")
    ps.add_argument("--envs", type=int, default=None, help="parallel envs while training")
    ps.add_argument(
        "--length", type=int, default=None, help="open world: episode length (default 500)"
    )
    add_backend_arg(ps)
    channel_opts(ps)
    ps.set_defaults(func=_scheme)
    po = sub.add_parser("openworld", help="the Crafter-like open world: random play or PPO")
    po.add_argument(
        "--agent",
        default="random",
        help="random, ppo or current_rf_ppo (PPO with current-RF returns)",
    )
    po.add_argument("--seeds", type=int, default=3)
    po.add_argument("--steps", type=int, default=None, help="PPO env steps per seed")
    po.add_argument("--envs", type=int, default=128, help="parallel envs while training")
    po.add_argument("--episodes", type=int, default=128, help="evaluation episodes")
    po.add_argument("--length", type=int, default=500, help="episode length")
    po.add_argument("--out", default=None, help="folder for summary.json (+ results.parquet)")
    po.add_argument("--overwrite", action="store_true")
    add_backend_arg(po)
    po.set_defaults(func=_openworld)
    pc = sub.add_parser("collect", help="merge train/record tables into one for the report")
    pc.add_argument("sources", nargs="+", help="train or record folders, or .parquet tables")
    pc.add_argument("--out", required=True, help="folder for the merged results.parquet")
    pc.add_argument("--overwrite", action="store_true", help="replace an existing table")
    pc.set_defaults(func=_collect)
    p.set_defaults(func=lambda a: (p.print_help(), 0)[1])
