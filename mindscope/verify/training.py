"""Verify a training transcript (Proof-of-Learning re-execution + Proof-of-Training-Data checks).

:func:`verify_training` never writes anything: it reads the transcript and its checkpoints,
rebuilds the organism's training task from the logged config, and

1. recomputes the hash chain (any edited value breaks it) and, if given, compares its root with
   a published one;
2. checks every referenced checkpoint file against its logged SHA-256 and the architecture the
   config builds, and that the released weights (the final revision folder) are the last
   checkpoint's;
3. rebuilds the batch of every step from the config and compares its hash with the log (the
   data order), and checks that every checkpoint gives the logged loss of the step that starts
   from it (one forward pass each: a checkpoint that training did not continue from, or data
   other than the logged, shows here);
4. a memorisation test per segment in the manner of Proof-of-Training-Data (Choi et al. 2023):
   during segment ``i`` the loss on its own last batches must drop more than on batches not yet
   trained on (the next segment's); a segment that fails is re-executed;
5. re-executes the ``q`` segments with the largest weight updates (Jia et al. 2021), ``n_random``
   random ones, the last one (it produced the released weights) and any segment flagged by the
   cheap checks (failed memorisation test; updates collinear with a neighbour's, the mark of
   interpolated checkpoints), and compares each re-executed end with the logged one.

Distances are relative to the segment's update: ``|w_re - w_log| / |w_log - w_start|``. On the
machine and thread count that trained, re-execution is bit-exact (tolerance 0); otherwise the
calibrated :data:`CROSS_THREAD_TOLERANCE` applies (docs/verify.md: how it was measured).
"""

from __future__ import annotations

import itertools
import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from mindscope.organisms import config_from_dict, make_task, store
from mindscope.organisms.trainer import OptimConfig, deterministic, make_optimizer, run_segment
from mindscope.organisms.transcript import (
    TRANSCRIPT_DIR,
    TRANSCRIPT_FILE,
    TranscriptError,
    adam_path,
    batch_hash,
    chain_links,
    file_sha256,
    load_adam,
    machine_id,
    weights_path,
)

__all__ = [
    "CROSS_THREAD_TOLERANCE",
    "CROSS_THREAD_LOSS_TOLERANCE",
    "SegmentCheck",
    "TrainingVerification",
    "verify_training",
    "load_transcript",
]

CROSS_THREAD_TOLERANCE = 1e-2
"""Relative distance allowed when re-executing with another thread count or machine than the
trainer's (measured reproduction distances: docs/verify.md)."""

CROSS_THREAD_LOSS_TOLERANCE = 1e-5
"""Relative difference allowed between a checkpoint's recomputed loss and the logged one on
another thread count or machine (on the trainer's: exact)."""

COLLINEAR = 0.999
"""Cosine between consecutive segment updates above which both are flagged as interpolated."""


@dataclass
class SegmentCheck:
    """The verdict on one segment."""

    index: int
    """Segment number."""
    start: int
    """First update of the segment (the start checkpoint holds ``start`` updates)."""
    end: int
    """The end checkpoint holds ``end`` updates."""
    update_norm: float
    """``|w_end - w_start|`` from the logged checkpoints (nan when not loaded)."""
    why: list[str] = field(default_factory=list)
    """Why it was re-executed (``largest``, ``random``, ``last``, ``flagged:...``); empty: not."""
    distance: float | None = None
    """Relative distance of the re-executed end to the logged end (``None``: not re-executed)."""
    exact: bool | None = None
    """Whether the re-executed weights are bit-identical to the logged ones."""
    memorisation: float | None = None
    """Loss drop during the segment on its own last batches minus the drop on batches not yet
    trained on (> 0: the logged data was trained on here; ``None``: not measured)."""
    passed: bool = True
    """False when re-execution missed the tolerance."""
    note: str = ""
    """Why it failed, in a few words."""


@dataclass
class TrainingVerification:
    """Result of :func:`verify_training`."""

    accepted: bool
    """The verdict."""
    reason: str
    """One line: why rejected, or what was checked."""
    segments: list[SegmentCheck]
    """Every segment (re-executed or not)."""
    steps_total: int
    """Updates in the transcript."""
    steps_reexecuted: int
    """Updates re-executed."""
    forward_passes: int
    """Extra forward passes of the memorisation test (a third of an update each)."""
    tolerance: float
    """Relative distance allowed per segment."""
    exact_expected: bool
    """Same machine and thread count as the trainer (so re-execution must be bit-exact)."""
    seconds: float
    """Wall time of the verification."""
    train_seconds: float | None
    """Wall time of the training run (from the transcript)."""
    checks: dict[str, str] = field(default_factory=dict)
    """Each global check -> ``ok`` or what went wrong."""

    @property
    def compute_fraction(self) -> float:
        """Verification compute as a fraction of training (updates + forwards / 3)."""
        return (self.steps_reexecuted + self.forward_passes / 3) / max(1, self.steps_total)

    def summary(self) -> str:
        """A printable table (one row per segment) and the one-line verdict."""
        lines = [f"{'seg':>4} {'steps':>11} {'|update|':>9} {'mem':>8}  {'why':<22} result"]
        for s in self.segments:
            mem = "" if s.memorisation is None else f"{s.memorisation:+.4f}"
            if s.distance is None:
                res = "not re-executed"
            else:
                exact = " (bit-exact)" if s.exact else ""
                res = f"{'PASS' if s.passed else 'FAIL'} d={s.distance:.3g}{exact}"
                if s.note:
                    res += f": {s.note}"
            lines.append(
                f"{s.index:>4} {f'{s.start}-{s.end}':>11} {s.update_norm:>9.4g} {mem:>8}  "
                f"{','.join(s.why):<22} {res}"
            )
        for name, status in self.checks.items():
            lines.append(f"check {name}: {status}")
        lines.append(self.verdict())
        return "\n".join(lines)

    def verdict(self) -> str:
        """One line: ACCEPT/REJECT, the reason and the compute spent."""
        word = "ACCEPT" if self.accepted else "REJECT"
        return (
            f"{word}: {self.reason} (re-executed {self.steps_reexecuted}/{self.steps_total} "
            f"updates, {100 * self.compute_fraction:.1f}% of training compute, "
            f"tolerance {self.tolerance:g})"
        )


def _root_and_file(path: str | Path) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir() and (p / TRANSCRIPT_DIR / TRANSCRIPT_FILE).is_file():
        return p, p / TRANSCRIPT_DIR / TRANSCRIPT_FILE
    if p.is_dir() and (p / TRANSCRIPT_FILE).is_file():
        return p.parent, p / TRANSCRIPT_FILE
    if p.is_file():
        return p.parent.parent, p
    raise TranscriptError(
        f"no training transcript at {p} (expected {TRANSCRIPT_DIR}/"
        f"{TRANSCRIPT_FILE} in an organism folder)"
    )


def load_transcript(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """``(organism folder, transcript dict)`` from a folder or ``transcript.json``; checks its
    structure (one-line :class:`TranscriptError` when truncated or malformed)."""
    root, file = _root_and_file(path)
    try:
        doc = json.loads(file.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise TranscriptError(
            f"{file} is truncated or not JSON ({str(exc).splitlines()[0][:80]})"
        ) from None
    for key in ("header", "header_chain", "segments", "root"):
        if not isinstance(doc, dict) or key not in doc:
            raise TranscriptError(f"{file} is not a training transcript (no {key!r})")
    header, segs = doc["header"], doc["segments"]
    for key in ("organism", "config", "max_steps", "boundaries", "threads"):
        if key not in header:
            raise TranscriptError(f"{file}: header lacks {key!r}")
    b = header["boundaries"]
    if not segs or len(segs) != len(b) - 1 or b[0] != 0 or b[-1] != header["max_steps"]:
        raise TranscriptError(f"{file}: segments do not cover steps 0..{header['max_steps']}")
    for i, seg in enumerate(segs):
        need = ("start", "end", "start_ckpt", "end_ckpt", "batches", "losses", "chain")
        missing = [k for k in need if k not in seg]
        if missing:
            raise TranscriptError(f"{file}: segment {i} lacks {missing}")
        if (seg["start"], seg["end"]) != (b[i], b[i + 1]) or len(seg["batches"]) != (
            b[i + 1] - b[i]
        ):
            raise TranscriptError(f"{file}: segment {i} does not match its boundaries")
    return root, doc


def _ckpt_steps(doc: dict[str, Any]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {}
    for seg in doc["segments"]:
        out[seg["start"]] = seg["start_ckpt"]
        out.setdefault(seg["end"], seg["end_ckpt"])
    return out


class _Checkpoints:
    """Reads and hash-checks checkpoint files (each hashed once); never writes."""

    def __init__(self, root: Path, logged: dict[int, dict[str, str]], reference: dict) -> None:
        self.root = root
        self.logged = logged
        self.reference = reference  # name -> (shape, dtype) of the config's architecture
        self._ok: set[Path] = set()

    def _check(self, path: Path, digest: str, what: str) -> Path:
        if path in self._ok:
            return path
        if not path.is_file():
            raise TranscriptError(f"transcript is missing the {what} ({path})")
        if file_sha256(path) != digest:
            raise _Reject(f"{what} ({path.name}) does not match its logged hash")
        self._ok.add(path)
        return path

    def weights(self, step: int) -> dict[str, torch.Tensor]:
        path = self._check(
            weights_path(self.root, step), self.logged[step]["weights"], f"weights of step {step}"
        )
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise TranscriptError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None
        for name, (shape, dtype) in self.reference.items():
            t = state.get(name)
            if t is None or tuple(t.shape) != shape or t.dtype != dtype:
                got = "missing" if t is None else f"{tuple(t.shape)} {t.dtype}"
                raise TranscriptError(
                    f"checkpoint step {step} is for another architecture: {name} is {got}, "
                    f"the config builds {shape} {dtype}"
                )
        extra = sorted(set(state) - set(self.reference))
        if extra:
            raise TranscriptError(
                f"checkpoint step {step} is for another architecture (extra tensor {extra[0]})"
            )
        return state

    def adam(self, step: int) -> Path:
        return self._check(
            adam_path(self.root, step), self.logged[step]["adam"], f"optimiser state of step {step}"
        )


class _Reject(Exception):
    """A check failed: the transcript is rejected (not an input error)."""


def _flat(state: dict[str, torch.Tensor], names: list[str]) -> torch.Tensor:
    return torch.cat([state[n].reshape(-1).double() for n in names])


def verify_training(
    transcript: str | Path,
    *,
    q: int = 3,
    n_random: int = 1,
    segments: list[int] | None = None,
    seed: int = 0,
    threads: int | None = None,
    tolerance: float | None = None,
    expected_root: str | None = None,
    data_check: bool = False,
    memorisation_batches: int = 4,
) -> TrainingVerification:
    """Verify a training transcript; see the module docstring for what is checked.

    Args:
        transcript: an organism folder (holding ``transcript/``), the transcript folder or its
            ``transcript.json``.
        q: re-execute the ``q`` segments with the largest updates.
        n_random: plus this many random segments (seeded by ``seed``).
        segments: re-execute exactly these segments (negative = from the end) and skip the
            checks that need every checkpoint (update norms, memorisation test); for
            transcripts that ship only some checkpoints.
        seed: seed of the random choice.
        threads: torch threads for re-execution (default: the trainer's).
        tolerance: relative distance allowed (default: 0 on the trainer's machine and thread
            count, else :data:`CROSS_THREAD_TOLERANCE`).
        expected_root: a published chain root the transcript must end in.
        data_check: also run the memorisation test (segments that fail it are re-executed);
            off by default: at the organisms' batch sizes its signal is weak (docs/verify.md)
            and it costs ``4 * memorisation_batches`` forward passes per segment.
        memorisation_batches: last batches of each segment used by the memorisation test.

    Returns:
        A :class:`TrainingVerification` (``accepted``, per-segment results, compute spent).

    Raises:
        TranscriptError: missing, truncated or malformed transcript, missing checkpoint file,
            checkpoint of another architecture (input errors, not verdicts).
    """
    t0 = time.perf_counter()
    root, doc = load_transcript(transcript)
    header, segs = doc["header"], doc["segments"]
    n_seg = len(segs)
    name = header["organism"]
    try:
        config = config_from_dict(name, header["config"])
    except Exception as exc:  # unknown organism or config keys
        raise TranscriptError(f"transcript config is not a valid {name!r} config: {exc}") from None
    optim: OptimConfig = config.optim
    max_steps = int(header["max_steps"])
    bad = [k for k in segments or [] if not -n_seg <= k < n_seg]
    if bad:
        raise TranscriptError(
            f"segment(s) {bad} do not exist: the transcript has segments 0..{n_seg - 1} "
            f"(negative counts from the end)"
        )
    if q < 0 or n_random < 0:
        raise TranscriptError(f"q and n_random must be >= 0, got {q}, {n_random}")
    if tolerance is not None and not tolerance >= 0:
        raise TranscriptError(f"tolerance must be >= 0, got {tolerance}")
    if threads is not None and threads < 1:
        raise TranscriptError(f"threads must be at least 1, got {threads}")
    trainer_threads = int(header["threads"])
    use_threads = trainer_threads if threads is None else threads
    exact_expected = use_threads == trainer_threads and header.get("machine") == machine_id()
    default_tol = 0.0 if exact_expected else CROSS_THREAD_TOLERANCE
    tol = tolerance if tolerance is not None else default_tol
    loss_tol = 0.0 if exact_expected else CROSS_THREAD_LOSS_TOLERANCE
    checks: dict[str, str] = {}
    rows = [SegmentCheck(i, s["start"], s["end"], float("nan")) for i, s in enumerate(segs)]
    notes = doc.get("notes", {})
    result = TrainingVerification(
        accepted=False,
        reason="",
        segments=rows,
        steps_total=max_steps,
        steps_reexecuted=0,
        forward_passes=0,
        tolerance=tol,
        exact_expected=exact_expected,
        seconds=0.0,
        train_seconds=notes.get("train_seconds"),
        checks=checks,
    )
    try:
        _verify(
            result,
            root,
            doc,
            config,
            optim,
            max_steps,
            use_threads,
            tol,
            q,
            n_random,
            segments,
            seed,
            expected_root,
            data_check,
            memorisation_batches,
            loss_tol,
        )
        result.accepted = True
        redone = sum(1 for r in rows if r.distance is not None)
        result.reason = (
            f"{redone}/{n_seg} segments re-executed within tolerance; chain, files, data order"
            + (" and memorisation" if data_check and segments is None else "")
            + " consistent"
        )
    except _Reject as rej:
        result.accepted = False
        result.reason = str(rej)
    result.seconds = time.perf_counter() - t0
    return result


def _verify(
    result: TrainingVerification,
    root: Path,
    doc: dict[str, Any],
    config: Any,
    optim: OptimConfig,
    max_steps: int,
    threads: int,
    tol: float,
    q: int,
    n_random: int,
    chosen: list[int] | None,
    seed: int,
    expected_root: str | None,
    data_check: bool,
    mem_batches: int,
    loss_tol: float,
) -> None:
    header, segs, checks, rows = doc["header"], doc["segments"], result.checks, result.segments
    n_seg = len(segs)
    # 1. the hash chain
    links = chain_links(header, segs)
    if links[0] != doc["header_chain"]:
        checks["chain"] = "header edited"
        raise _Reject("hash chain broken: the header does not match its link")
    for i, seg in enumerate(segs):
        if links[i + 1] != seg["chain"]:
            checks["chain"] = f"broken at segment {i}"
            raise _Reject(f"hash chain broken at segment {i} (its logged values were edited)")
    if links[-1] != doc["root"]:
        checks["chain"] = "root differs"
        raise _Reject("hash chain broken: the root does not match the last link")
    if expected_root is not None and doc["root"] != expected_root:
        checks["chain"] = "root differs from the published one"
        raise _Reject(
            f"chain root {doc['root'][:16]}... is not the published {expected_root[:16]}..."
        )
    checks["chain"] = "ok"
    if header.get("config_hash") != store.config_hash(config):
        raise _Reject("the header's config hash does not match its config")

    with deterministic(config.seed, threads):
        task = make_task(header["organism"], config)
    model = task.model
    names = [n for n, _ in model.named_parameters()]
    reference = {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}
    logged = _ckpt_steps(doc)
    ck = _Checkpoints(root, logged, reference)

    # 2. files: every checkpoint (or only the chosen segments'), and the released weights
    needed = (
        sorted(logged)
        if chosen is None
        else sorted({segs[i]["start"] for i in chosen} | {segs[i]["end"] for i in chosen})
    )
    if chosen is not None:
        bad = [i for i in chosen if not -n_seg <= i < n_seg]
        if bad:
            raise TranscriptError(f"no segment {bad[0]}: the transcript has {n_seg}")
        chosen = sorted({i % n_seg for i in chosen})
    final = root / str(header.get("final_revision", "")) / "model.safetensors"
    if header.get("final_revision") and final.is_file():
        if file_sha256(final) != logged[max_steps]["weights"]:
            checks["released weights"] = "differ from the last checkpoint"
            raise _Reject(
                f"the released weights ({header['final_revision']}/model.safetensors) are not the "
                "transcript's last checkpoint (changed after training?)"
            )
        checks["released weights"] = "ok (identical to the last checkpoint)"
    else:
        checks["released weights"] = "no final revision folder next to the transcript"
    weights = {s: ck.weights(s) for s in needed}
    checks["files"] = f"ok ({len(needed)} checkpoints hash-checked)"

    # 3. data order: rebuild every step's batch from the config
    stream = task.batches()
    firsts = []  # the batch of each segment's first step
    for i, seg in enumerate(segs):
        for j, logged_hash in enumerate(seg["batches"]):
            batch = next(stream)
            if j == 0:
                firsts.append(batch)
            if batch_hash(batch) != logged_hash:
                checks["data order"] = f"step {seg['start'] + j} differs"
                rows[i].passed = False
                rows[i].note = "logged data is not the config's"
                raise _Reject(
                    f"data order: the batch logged for step {seg['start'] + j} (segment {i}) is "
                    "not the one the config produces"
                )
    checks["data order"] = f"ok ({max_steps} batch hashes rebuilt)"

    # 3b. logged losses: each checkpoint must give the logged loss of the step it starts
    # (one forward per checkpoint; catches a checkpoint that is not the one trained from)
    spots = [i for i in range(n_seg) if segs[i]["start"] in weights]
    with deterministic(config.seed, threads):
        for i in spots:
            _load_into(model, weights[segs[i]["start"]])
            model.eval()
            with torch.no_grad():
                got = float(task.loss(model, firsts[i]))
            result.forward_passes += 1
            want = float(segs[i]["losses"][0])
            rel = abs(got - want) / max(abs(want), 1e-30)
            if rel > loss_tol:
                rows[i].passed = False
                rows[i].note = f"start checkpoint gives loss {got:.6g}, logged {want:.6g}"
                checks["logged losses"] = f"segment {i} differs (relative {rel:.2g})"
                raise _Reject(
                    f"segment {i}: checkpoint step {segs[i]['start']} does not give the logged "
                    f"loss of step {segs[i]['start']} ({got:.6g} vs {want:.6g}): it is not the "
                    "checkpoint training continued from"
                )
    checks["logged losses"] = f"ok ({len(spots)} checkpoints give their step's logged loss)"

    # 4. triage: update norms, collinearity, memorisation (needs every checkpoint)
    selected: dict[int, list[str]] = {}
    if chosen is None:
        deltas = []
        for i, seg in enumerate(segs):
            d = _flat(weights[seg["end"]], names) - _flat(weights[seg["start"]], names)
            rows[i].update_norm = float(d.norm())
            deltas.append(d)
        order = sorted(range(n_seg), key=lambda i: -rows[i].update_norm)
        for i in order[:q]:
            selected.setdefault(i, []).append("largest")
        selected.setdefault(n_seg - 1, []).append("last")
        rng = random.Random(seed)
        rest = [i for i in range(n_seg) if i not in selected]
        for i in rng.sample(rest, min(n_random, len(rest))):
            selected.setdefault(i, []).append("random")
        for i in range(n_seg - 1):
            a, b = deltas[i], deltas[i + 1]
            cos = float(a @ b / (a.norm() * b.norm()).clamp(min=1e-30))
            if cos > COLLINEAR:
                for k in (i, i + 1):
                    selected.setdefault(k, []).append("flag:collinear")
        if data_check and n_seg >= 2:
            result.forward_passes += _memorisation(
                task, segs, weights, rows, mem_batches, threads, config.seed
            )
            for r in rows:
                if r.memorisation is not None and r.memorisation <= 0:
                    selected.setdefault(r.index, []).append("flag:data")
            flagged = sum(1 for r in rows if r.memorisation is not None and r.memorisation <= 0)
            checks["memorisation"] = f"{flagged} of {n_seg} segments flagged (re-executed)"
    else:
        for i in chosen:
            selected[i] = ["chosen"]

    # 5. re-execute
    failures = []
    for i in sorted(selected):
        seg, row = segs[i], rows[i]
        row.why = selected[i]
        dist, exact = _reexecute(
            task, ck, weights, seg, names, optim, max_steps, threads, config.seed
        )
        result.steps_reexecuted += seg["end"] - seg["start"]
        row.distance, row.exact = dist, exact
        row.passed = exact or dist <= tol
        if not row.passed:
            row.note = f"end checkpoint {dist / max(tol, 1e-30):.3g}x the tolerance away"
            failures.append(i)
    if failures:
        raise _Reject(
            f"segment{'s' if len(failures) > 1 else ''} {', '.join(map(str, failures))}: "
            "re-execution does not reproduce the logged checkpoint"
        )


def _load_into(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        model.load_state_dict(state, strict=True)


def _reexecute(
    task: Any,
    ck: _Checkpoints,
    weights: dict[int, dict[str, torch.Tensor]],
    seg: dict[str, Any],
    names: list[str],
    optim: OptimConfig,
    max_steps: int,
    threads: int,
    seed: int,
) -> tuple[float, bool]:
    start, end = seg["start"], seg["end"]
    model = task.model
    with deterministic(seed, threads):
        model.requires_grad_(True)
        _load_into(model, weights[start])
        opt = make_optimizer(model, optim)
        load_adam(ck.adam(start), model, opt)
        batches = itertools.islice(task.batches(), start, end)
        run_segment(task, opt, start, end, optim, max_steps, batches)
    got = {k: v.detach().clone() for k, v in model.state_dict().items()}
    want = weights[end]
    exact = all(torch.equal(got[k], want[k]) for k in want)
    w_start = _flat(weights[start], names)
    update = (_flat(want, names) - w_start).norm()
    dist = float((_flat(got, names) - _flat(want, names)).norm() / update.clamp(min=1e-30))
    return dist, exact


def _memorisation(
    task: Any,
    segs: list[dict[str, Any]],
    weights: dict[int, dict[str, torch.Tensor]],
    rows: list[SegmentCheck],
    m: int,
    threads: int,
    seed: int,
) -> int:
    """Proof-of-Training-Data style memorisation test; fills ``rows[i].memorisation``.

    For segment ``i`` (all but the last, which is always re-executed): the loss drop from its
    start to its end checkpoint on its own last ``m`` batches (trained on just before the end)
    minus the drop on the first ``m`` batches of segment ``i + 1`` (same distribution, not yet
    trained on). Trained-on data shows a positive gap; data that was swapped for other data
    shows none. Returns the forward passes spent (``4 m`` per segment).
    """
    n = len(segs)
    own: dict[int, int] = {}
    control: dict[int, int] = {}
    for i in range(n - 1):
        seg, nxt = segs[i], segs[i + 1]
        for s in range(max(seg["start"], seg["end"] - m), seg["end"]):
            own[s] = i
        for s in range(nxt["start"], min(nxt["end"], nxt["start"] + m)):
            control[s] = i
    if not own:
        return 0
    mine: dict[int, list[Any]] = {i: [] for i in range(n)}
    ctrl: dict[int, list[Any]] = {i: [] for i in range(n)}
    last = max(max(own), max(control))
    for s, b in enumerate(itertools.islice(task.batches(), last + 1)):
        if s in own:
            mine[own[s]].append(b)
        if s in control:
            ctrl[control[s]].append(b)
    model = task.model
    passes = 0

    def mean_loss(step: int, batches: list[Any]) -> float:
        nonlocal passes
        _load_into(model, weights[step])
        model.eval()
        with torch.no_grad():
            vals = [float(task.loss(model, b)) for b in batches]
        passes += len(vals)
        return sum(vals) / len(vals)

    with deterministic(seed, threads):
        for i in range(n - 1):
            a, b = segs[i]["start"], segs[i]["end"]
            drop_own = mean_loss(a, mine[i]) - mean_loss(b, mine[i])
            drop_ctrl = mean_loss(a, ctrl[i]) - mean_loss(b, ctrl[i])
            rows[i].memorisation = drop_own - drop_ctrl
    return passes
