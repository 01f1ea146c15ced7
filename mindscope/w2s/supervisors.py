"""Weak supervisors: who labels the student's training split, with errors we control.

Every supervisor follows one protocol (:class:`Supervisor`): ``fit(pairs, truth)`` (a no-op
unless it learns) and ``label(pairs, truth, *, split, seed) -> [n]`` credences in ``[0, 1]``.
Rule-based supervisors read the truth to place their errors; the student only ever sees the
labels. Nothing here knows a dataset's format: pairs are :class:`~mindscope.data.ContrastPair`,
the truth a 0/1 array, and slices or spurious features are predicates on a pair
(:func:`predicate`: ``"meta.KEY=VALUE"``, ``"label=1"``, ``"prompt~REGEX"``).

* :class:`WeakModelSupervisor`: a smaller model's reporter fitted on the truth of a held-out
  split (Burns et al.'s weak model fine-tuned on ground truth), or its own answers.
* :class:`FieldSupervisor`: labels a dataset already carries (``label``: the quirky persona's
  answer, with Bob's systematic leading-digit error; ``meta.bob_label``, ...).
* :class:`RuleSupervisor`: the truth with an exact share of errors, placed at random
  (``random``), on a slice (``slice``) or where the truth disagrees with a salient spurious
  feature (``spurious``: the wrong labels then equal the feature).
* :class:`ArraySupervisor`, :class:`FunctionSupervisor`: any labels you have.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from mindscope.data.pairs import ContrastPair
from mindscope.errors import MindscopeError

__all__ = [
    "Supervisor",
    "predicate",
    "truth_of",
    "check_labels",
    "harden",
    "TruthSupervisor",
    "FieldSupervisor",
    "RuleSupervisor",
    "ArraySupervisor",
    "FunctionSupervisor",
    "WeakModelSupervisor",
    "RULE_ERRORS",
]

RULE_ERRORS = ("random", "slice", "spurious")
"""Where a :class:`RuleSupervisor` puts its errors."""


@runtime_checkable
class Supervisor(Protocol):
    """Labels contrast pairs for a student; ``kind`` names the family in results rows."""

    kind: str

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> Supervisor:
        """Learn from ``pairs`` with 0/1 ``truth`` ``[n]`` (held out from the student); returns
        self."""
        ...

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        """Credences ``[n]`` in ``[0, 1]`` that each pair is true (hard labels are 0/1)."""
        ...


def truth_of(pairs: Sequence[ContrastPair], field: str | None = None) -> np.ndarray:
    """The 0/1 truth ``[n]`` of ``pairs``: ``meta[field]`` (``field="label"``: the pair's
    label); ``None``: ``meta["truth"]`` when every pair has it, else the labels."""
    pairs = list(pairs)
    if field is None:
        field = "truth" if pairs and all("truth" in p.meta for p in pairs) else "label"
    if field == "label":
        y = [p.label for p in pairs]
    else:
        missing = [i for i, p in enumerate(pairs) if field not in p.meta]
        if missing:
            raise MindscopeError(f"pair {missing[0]} has no meta.{field} (the truth field)")
        y = [int(p.meta[field]) for p in pairs]
    out = np.asarray(y, dtype=np.float64)
    if not np.isin(out, (0.0, 1.0)).all():
        raise MindscopeError(f"the truth ({field}) must be 0/1 for every pair (-1: unknown)")
    return out


def check_labels(labels: Any, n: int, what: str = "weak labels") -> np.ndarray:
    """``labels`` as a float ``[n]`` array in [0, 1], or a one-line error (length, range,
    a single class)."""
    a = np.asarray(labels, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] != n:
        raise MindscopeError(f"{what} have shape {a.shape}, expected [{n}] (one per pair)")
    if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
        raise MindscopeError(f"{what} must be credences in [0, 1]")
    if np.ptp(a) == 0:
        raise MindscopeError(f"{what} hold a single class (all {a[0]:g}); nothing to learn")
    return a


def harden(labels: np.ndarray) -> np.ndarray:
    """0/1 labels ``[n]`` from credences ``[n]`` at the supervisor's own base rate: the top
    ``round(mean * n)`` credences are 1 (hard 0/1 labels come back unchanged; a weak model
    whose credences all sit below 0.5 still marks its most confident share as positive)."""
    a = np.asarray(labels, dtype=np.float64)
    if np.isin(a, (0.0, 1.0)).all():
        return a.astype(np.int64)
    k = min(max(int(round(a.mean() * len(a))), 1), len(a) - 1)
    hard = np.zeros(len(a), dtype=np.int64)
    hard[np.argsort(-a, kind="stable")[:k]] = 1
    return hard


def predicate(spec: str) -> Callable[[ContrastPair], bool]:
    """A predicate on a pair: ``"meta.KEY=VALUE"`` (or ``"KEY=VALUE"``: a meta key; values
    compared as text), ``"label=1"``, ``"prompt~REGEX"`` (a regular-expression search)."""
    if "~" in spec and (spec.startswith("prompt~")):
        try:
            rx = re.compile(spec.partition("~")[2])
        except re.error as exc:
            raise MindscopeError(f"predicate {spec!r}: bad regular expression ({exc})") from None
        return lambda p: bool(rx.search(p.prompt))
    key, eq, value = spec.partition("=")
    if not eq or not key.strip():
        raise MindscopeError(
            f"predicate {spec!r}: expected 'meta.KEY=VALUE', 'label=0|1' or 'prompt~REGEX'"
        )
    key = key.strip().removeprefix("meta.")
    if key == "label":
        return lambda p: str(p.label) == value

    def fn(p: ContrastPair) -> bool:
        if key not in p.meta:
            raise MindscopeError(f"predicate {spec!r}: a pair has no meta.{key}")
        return str(p.meta[key]) == value

    return fn


def _rng(seed: int, split: str, name: str) -> np.random.Generator:
    digest = hashlib.sha256(f"{name}:{split}:{seed}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


class TruthSupervisor:
    """The truth itself (a perfect supervisor: PGR is then undefined)."""

    kind = "truth"

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> TruthSupervisor:
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        return np.asarray(truth, dtype=np.float64).copy()


class FieldSupervisor:
    """Labels the pairs carry: ``field="label"`` (each pair's own label: on quirky data the
    persona's answer) or a meta key (``"bob_label"``)."""

    kind = "field"

    def __init__(self, field: str = "label") -> None:
        self.field = field

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> FieldSupervisor:
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        return truth_of(pairs, self.field)


class RuleSupervisor:
    """The truth with exactly ``round((1 - accuracy) * n)`` labels flipped.

    Args:
        accuracy: share of right labels, in (0, 1].
        errors: ``random`` (flips drawn uniformly: noise a student can average away),
            ``slice`` (flips drawn inside the slice ``where``: systematic on a subgroup the
            student can see) or ``spurious`` (flips drawn where the truth differs from the 0/1
            feature ``where``, so wrong labels equal the feature: a salient shortcut).
        where: predicate spec (:func:`predicate`) of the slice or the spurious feature.
    """

    kind = "rule"

    def __init__(
        self,
        accuracy: float = 0.75,
        errors: Literal["random", "slice", "spurious"] = "random",
        where: str | None = None,
    ) -> None:
        if not 0 < accuracy <= 1:
            raise MindscopeError(f"accuracy must be in (0, 1], got {accuracy}")
        if errors not in RULE_ERRORS:
            raise MindscopeError(f"unknown error kind {errors!r} (known: {', '.join(RULE_ERRORS)})")
        if errors != "random" and not where:
            raise MindscopeError(
                f"{errors} errors need 'where' (a predicate such as meta.KEY=VALUE)"
            )
        self.accuracy = float(accuracy)
        self.errors = errors
        self.where = where
        self.kind = errors

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> RuleSupervisor:
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        y = np.asarray(truth, dtype=np.float64)
        n = y.shape[0]
        n_err = int(round((1 - self.accuracy) * n))
        if self.errors == "random":
            pool = np.arange(n)
        else:
            assert self.where is not None
            fn = predicate(self.where)
            feat = np.array([fn(p) for p in pairs], dtype=np.float64)
            pool = np.nonzero(feat == 1 if self.errors == "slice" else feat != y)[0]
        if n_err > len(pool):
            raise MindscopeError(
                f"{self.errors} errors on {split}: accuracy {self.accuracy} needs {n_err} wrong "
                f"labels but only {len(pool)} pairs qualify ({self.where})"
            )
        flip = _rng(seed, split, f"rule:{self.errors}:{self.where}").choice(
            pool, n_err, replace=False
        )
        out = y.copy()
        out[flip] = 1 - out[flip]
        return out


class ArraySupervisor:
    """Labels given as arrays, one per split (``{"train": [n], "test": [m]}``)."""

    kind = "array"

    def __init__(self, labels: Mapping[str, Any]) -> None:
        self.labels = {k: np.asarray(v, dtype=np.float64) for k, v in labels.items()}

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> ArraySupervisor:
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        if split not in self.labels:
            raise MindscopeError(f"the array supervisor has no labels for split {split!r}")
        a = self.labels[split]
        if a.ndim != 1 or a.shape[0] != len(pairs):
            raise MindscopeError(
                f"weak labels for {split} have length {a.shape[0] if a.ndim else 0}, but the "
                f"{split} split has {len(pairs)} pairs"
            )
        return a.copy()


class FunctionSupervisor:
    """Labels from any function ``fn(pairs) -> [n]`` credences (it never sees the truth)."""

    kind = "function"

    def __init__(self, fn: Callable[[Sequence[ContrastPair]], Any]) -> None:
        self.fn = fn

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> FunctionSupervisor:
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        return np.asarray(self.fn(list(pairs)), dtype=np.float64)


class WeakModelSupervisor:
    """A (smaller) model as the supervisor: a logistic reporter on its activations at the
    prompt's last token, fitted on the truth of a split held out from the student
    (``read="reporter"``), or the model's own answer (``read="answer"``: the log-odds of the
    pair's two completions, for a model trained to answer).

    Args:
        model: a :class:`mindscope.models.ModelHandle`.
        layer: layer read (``-1``: the last; ``k``: after ``k`` blocks).
        read: ``reporter`` or ``answer``.
        batch_size: prompts per forward pass.
        store: activation store root (default ``$MINDSCOPE_HOME/activations``).
    """

    kind = "weak-model"

    def __init__(
        self,
        model: Any,
        layer: int = -1,
        read: Literal["reporter", "answer"] = "reporter",
        batch_size: int = 64,
        store: str | None = None,
    ) -> None:
        if read not in ("reporter", "answer"):
            raise MindscopeError(f"read must be 'reporter' or 'answer', got {read!r}")
        self.model = model
        self.layer = layer
        self.read = read
        self.batch_size = batch_size
        self.store = store

    def _x(self, pairs: Sequence[ContrastPair]) -> Any:
        from mindscope.activations import extract

        layer = self.model.n_layers if self.layer < 0 else self.layer
        acts = extract(
            self.model,
            [p.prompt for p in pairs],
            layers=[layer],
            position="last",
            batch_size=self.batch_size,
            store=self.store,
            progress=False,
        )
        return acts[layer]  # [n, d]

    def fit(self, pairs: Sequence[ContrastPair], truth: np.ndarray) -> WeakModelSupervisor:
        if self.read == "answer":
            return self
        import torch

        from mindscope.probes import LogisticReporter

        y = check_labels(truth, len(pairs), "the weak model's training truth")
        self.reporter_ = LogisticReporter().fit(self._x(pairs), torch.as_tensor(y).long())
        return self

    def label(
        self, pairs: Sequence[ContrastPair], truth: np.ndarray, *, split: str, seed: int
    ) -> np.ndarray:
        if self.read == "answer":
            from mindscope.activations import lm_logodds

            lo = lm_logodds(self.model, list(pairs), batch_size=self.batch_size)
            return (1 / (1 + np.exp(-lo.numpy()))).astype(np.float64)
        if not hasattr(self, "reporter_"):
            raise MindscopeError("fit the weak model supervisor before it labels")
        return self.reporter_.predict_proba(self._x(pairs)).double().numpy()
