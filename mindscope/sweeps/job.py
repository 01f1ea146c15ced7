"""``ms.sweep(config)``: checkpoints x stages -> one results table, resumable.

1. List the series and select checkpoints (``all``, N log-spaced, a list); check they share
   one architecture; hash each checkpoint's weight files (nothing is loaded yet).
2. Checkpoints whose hash equals an earlier one's are duplicates: never loaded, their rows are
   the original's with their own ``revision``/``step`` and ``extra.duplicate_of``.
3. For every (checkpoint, stage) not finished in ``<out>/manifest.json``, run a task (in this
   process or on Ray); each finished stage is recorded at once, so a killed sweep restarted
   recomputes nothing it finished. A tuned lens starts from the previous checkpoint's.
4. Optionally refine (add checkpoints where the metric moved most) and run the controls
   (random-init model of the same config; shuffled-label reporters inside the elicit stage).
5. Gather every row into ``<out>/results.parquet``.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mindscope.analyses import get_stage
from mindscope.errors import ConfigError
from mindscope.results import with_extra
from mindscope.sweeps.config import SweepConfig, load_config, parse_config, sweep_stages
from mindscope.sweeps.manifest import Manifest, config_hash
from mindscope.sweeps.runner import RANDOM_INIT
from mindscope.sweeps.series import (
    Checkpoint,
    check_architectures,
    hash_checkpoints,
    list_checkpoints,
    select,
)

__all__ = ["sweep", "SweepResult", "refine_candidate"]


@dataclass
class SweepResult:
    """What a sweep did.

    Attributes:
        table: the results table (every checkpoint, stage and control).
        out: the sweep folder.
        computed: ``(revision, stage)`` pairs computed by this call.
        reused: ``(revision, stage)`` pairs read back from the manifest.
        duplicates: ``{revision: revision with identical weights}``.
        loads: models loaded by this call; forwards: base-model forward passes.
        checkpoints: the revisions in the table (refined ones included), in step order.
        tasks: per computed revision, its task's stats (``pid``, wall-clock ``started`` /
            ``finished``, ``load_seconds``, ``seconds`` per stage): where a backend's time went.
    """

    table: pd.DataFrame
    out: Path
    computed: list[tuple[str, str]] = field(default_factory=list)
    reused: list[tuple[str, str]] = field(default_factory=list)
    duplicates: dict[str, str] = field(default_factory=dict)
    loads: int = 0
    forwards: int = 0
    seconds: float = 0.0
    checkpoints: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)


def _coerce(config: SweepConfig | Mapping[str, Any] | str | os.PathLike[str]) -> SweepConfig:
    if isinstance(config, SweepConfig):
        return config
    if isinstance(config, Mapping):
        return parse_config(dict(config))
    return load_config(config)


class _Sweeper:
    def __init__(self, cfg: SweepConfig) -> None:
        self.cfg = cfg
        self.stages = sweep_stages(cfg)
        hashes = {n: config_hash(sc.model_dump(mode="json")) for n, sc in self.stages}
        self.man = Manifest(Path(cfg.out), hashes, cfg.seed)
        self.res = SweepResult(table=pd.DataFrame(), out=Path(cfg.out))
        self.backend: Any = None
        self.known: dict[str, Checkpoint] = {}  # revision -> planned checkpoint (hashed)
        self.original: dict[str, str] = {}  # weights hash -> first revision with it
        self._init_from: dict[str, str | None] = {}  # revision -> checkpoint it warm-starts from

    def _backend(self) -> Any:
        if self.backend is None:
            from mindscope.sweeps.backends import make_backend

            self.backend = make_backend(
                self.cfg.backend,
                self.cfg.address,
                self.cfg.num_cpus,
                seed=self.cfg.seed,
                threads=self.cfg.threads,
                device=self.cfg.device,
                store=self.cfg.store,
            )
        return self.backend

    # ------------------------------------------------------------ planning
    def plan(self, ckpts: list[Checkpoint]) -> None:
        for c in sorted(ckpts, key=lambda c: c.step):
            if c.revision in self.known:
                continue
            self.known[c.revision] = c
        # originals = lowest step per hash, over everything known
        self.original = {}
        for c in sorted(self.known.values(), key=lambda c: (c.step, c.revision)):
            self.original.setdefault(c.weights_hash, c.revision)
        for c in self.known.values():
            dup = self.original[c.weights_hash]
            self.man.note_checkpoint(
                c.revision, c.step, c.weights_hash, None if dup == c.revision else dup
            )
        self.res.duplicates = {
            c.revision: self.original[c.weights_hash]
            for c in self.known.values()
            if self.original[c.weights_hash] != c.revision
        }
        self.man.save()

    def _prev_revision(self, c: Checkpoint) -> str | None:
        """The nearest earlier known checkpoint (its original, if a duplicate)."""
        earlier = [k for k in self.known.values() if k.step < c.step and k.step >= 0]
        if not earlier:
            return None
        prev = max(earlier, key=lambda k: k.step)
        return self.original[prev.weights_hash]

    def run(self, revisions: list[str]) -> None:
        """Compute every unfinished (revision, stage) among ``revisions`` (originals only)."""
        todo = sorted(
            {self.original[self.known[r].weights_hash] for r in revisions},
            key=lambda r: self.known[r].step,
        )
        tasks: list[Any] = []
        index: dict[str, int] = {}
        from mindscope.sweeps.backends import Task

        for rev in todo:
            c = self.known[rev]
            stages = []
            for name, sc in self.stages:
                if self.man.is_done(rev, name):
                    self.res.reused.append((rev, name))
                else:
                    stages.append((name, sc.model_dump(mode="json")))
            if not stages:
                continue
            prev_rev = None if c.step < 0 else self._prev_revision(c)
            prev_states: dict[str, Any] = {}
            prev_task = None
            chained = any(get_stage(n).chained(getattr(self.cfg.stages, n)) for n, _ in stages)
            if chained and prev_rev is not None:
                running = (
                    {n for n, _ in tasks[index[prev_rev]].stages} if prev_rev in index else set()
                )
                for name, _ in stages:
                    if not get_stage(name).chained(getattr(self.cfg.stages, name)):
                        continue
                    if name in running:  # computed by the previous task of this batch
                        prev_task = index[prev_rev]
                    else:  # finished earlier: its state is in the sweep folder
                        st = self.man.state(prev_rev, name)
                        if st is not None:
                            prev_states[name] = st
            ckpt = c.to_dict()
            if c.revision == RANDOM_INIT:
                first = min((k for k in self.known.values() if k.step >= 0), key=lambda k: k.step)
                ckpt["config_from"] = first.to_dict()
            index[rev] = len(tasks)
            tasks.append(Task(ckpt, stages, prev_states, prev_task))
            self._init_from[rev] = prev_rev if chained else None
        if not tasks:
            return
        recorded: set[tuple[str, str]] = set()

        def on_stage(t: Any, name: str, df: Any, st: Any, info: dict[str, Any]) -> None:
            rev = t.ckpt["revision"]
            self.man.record(rev, name, df, st, {**info, "init_from": self._init_from.get(rev)})
            recorded.add((rev, name))
            self.res.computed.append((rev, name))

        def on_done(t: Any, result: Any) -> None:
            rows, states, stats = result
            rev = t.ckpt["revision"]
            self.res.loads += int(stats["loads"])
            self.res.forwards += int(stats["forwards"])
            self.res.tasks[rev] = dict(stats)
            for name in rows:
                if (rev, name) not in recorded:
                    info = {
                        "seconds": stats["seconds"].get(name, math.nan),
                        "forwards": stats["forwards"],
                        "init_from": self._init_from.get(rev),
                    }
                    self.man.record(rev, name, rows[name], states[name], info)
                    self.res.computed.append((rev, name))
            if self.cfg.progress:
                print(f"sweep: {rev} done ({', '.join(rows)})", flush=True)

        self._backend().run(tasks, on_done, on_stage)

    # ------------------------------------------------------------ gathering
    def gather(self, revisions: list[str]) -> pd.DataFrame:
        frames = []
        for rev in sorted(revisions, key=lambda r: (self.known[r].step, r)):
            c = self.known[rev]
            orig = self.original[c.weights_hash]
            for name, _ in self.stages:
                if not self.man.is_done(orig, name):
                    continue
                df = self.man.rows(orig, name)
                if orig != rev:
                    df = df.copy()
                    df["revision"] = pd.Series([rev] * len(df), index=df.index, dtype="string")
                    df["step"] = pd.Series([c.step] * len(df), index=df.index, dtype="int64")
                    df = with_extra(df, duplicate_of=orig)
                frames.append(df)
        if not frames:
            from mindscope.results import to_frame

            return to_frame([])
        return pd.concat(frames, ignore_index=True)


def _metric_by_step(table: pd.DataFrame, r: Any) -> dict[int, float]:
    sel = (table["metric"] == r.metric) & (table["method"] == r.method) & (table["step"] >= 0)
    if r.split is not None:
        sel &= table["split"] == r.split
    sel &= (table["layer"] == r.layer) if r.layer is not None else (table["layer"] >= 0)
    sub = table[sel]
    return {int(s): float(g["value"].mean()) for s, g in sub.groupby("step")}


def refine_candidate(
    values: Mapping[int, float], chosen: list[int], available: list[int]
) -> int | None:
    """The checkpoint to add: between the adjacent chosen steps whose metric differs most (and
    that have an available step between them), the one nearest their midpoint in log(1+step)."""
    pts = sorted(s for s in chosen if s in values)
    best: tuple[float, int] | None = None
    for a, b in zip(pts, pts[1:]):
        between = [s for s in available if a < s < b and s not in chosen]
        if not between:
            continue
        delta = abs(values[b] - values[a])
        mid = (math.log1p(a) + math.log1p(b)) / 2
        pick = min(between, key=lambda s: (abs(math.log1p(s) - mid), s))
        if best is None or delta > best[0]:
            best = (delta, pick)
    return None if best is None else best[1]


def sweep(
    config: SweepConfig | Mapping[str, Any] | str | os.PathLike[str],
    *,
    backend: str | None = None,
    address: str | None = None,
    refine: int | None = None,
) -> SweepResult:
    """Run a checkpoint sweep (see the module docstring); resumes a finished or killed one.

    Args:
        config: a :class:`SweepConfig`, a dict, or a YAML/JSON file.
        backend: override ``config.backend`` (``"inprocess"`` or ``"ray"``).
        address: override ``config.address`` (join an existing Ray cluster).
        refine: override ``config.refine.budget``.

    Returns:
        a :class:`SweepResult`; the table is also written to ``<out>/results.parquet``.
    """
    cfg = _coerce(config)
    updates: dict[str, Any] = {}
    if backend is not None:
        updates["backend"] = backend
    if address is not None:
        updates["address"] = address
        updates["backend"] = "ray"
    if refine is not None:
        updates["refine"] = cfg.refine.model_copy(update={"budget": int(refine)})
    if updates:
        cfg = SweepConfig.model_validate(
            {
                **cfg.model_dump(),
                **{
                    k: (v.model_dump() if hasattr(v, "model_dump") else v)
                    for k, v in updates.items()
                },
            }
        )
    t0 = time.perf_counter()
    all_ckpts = list_checkpoints(cfg.series.source, cfg.series.name, cfg.series.seed)
    chosen = select(all_ckpts, cfg.series.select)
    check_architectures(all_ckpts if cfg.series.source != "hub" else chosen)
    chosen = hash_checkpoints(chosen)
    sw = _Sweeper(cfg)
    try:
        sw.plan(chosen)
        revisions = [c.revision for c in chosen]
        if cfg.random_init:  # the control runs with the first batch (it chains on nothing)
            ref = min(chosen, key=lambda c: c.step)
            seed_tag = f"random-init-{cfg.seed}"
            sw.plan([Checkpoint(RANDOM_INIT, -1, None, ref.repo, weights_hash=seed_tag)])
            revisions.append(RANDOM_INIT)
        sw.run(revisions)
        if cfg.refine.budget:
            by_step = {c.step: c for c in all_ckpts}
            for _ in range(cfg.refine.budget):
                values = _metric_by_step(sw.gather(revisions), cfg.refine)
                if not values:
                    raise ConfigError(
                        f"refine: no rows with metric {cfg.refine.metric!r} and method "
                        f"{cfg.refine.method!r} to follow"
                    )
                steps = [sw.known[r].step for r in revisions if r != RANDOM_INIT]
                nxt = refine_candidate(values, steps, sorted(by_step))
                if nxt is None:
                    break
                new = hash_checkpoints([by_step[nxt]])
                sw.plan(new)
                revisions.append(new[0].revision)
                sw.run([new[0].revision])
        table = sw.gather(revisions)
    finally:
        if sw.backend is not None:
            sw.backend.close()
    from mindscope.results import write_table

    write_table(table, Path(cfg.out) / "results.parquet")
    sw.res.table = table
    sw.res.seconds = time.perf_counter() - t0
    sw.res.checkpoints = sorted(revisions, key=lambda r: sw.known[r].step)
    return sw.res
