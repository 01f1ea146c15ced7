"""The detector contract shared by every anomaly detector, and activation fingerprints.

A *detector* is fitted on trusted activations only and scores how anomalous other activations
are (higher = more anomalous). Contract (scikit-learn's): hyper-parameters in ``__init__``,
``fit(x) -> self`` on ``[n, d]`` (one layer) or ``[layers, n, d]`` (every layer at once),
learned attributes end in ``_``; ``score(x)`` gives ``[n]`` or ``[layers, n]`` (the layout of
``fit``), and ``score_aggregate(x)`` one score per input over all layers: the mean over layers
of each layer's score standardised by that layer's scores on the trusted set.

Activations may come as tensors/arrays or as :class:`mindscope.Activations` (then every
layer is stacked). Those carry their source (model weights hash, revision, position rule,
layers): a detector fitted on them stores the source's *fingerprint* and refuses activations
from another model, revision, position or set of layers. For bare tensors pass
``source=fingerprint(...)`` (or any string) to get the same check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

from mindscope import io
from mindscope.errors import MindscopeError

__all__ = ["Detector", "fingerprint", "as_activations", "REGISTRY"]

REGISTRY: dict[str, type[Detector]] = {}


def fingerprint(
    model: str, layers: Sequence[int] | int, position: str = "last", revision: str = ""
) -> str:
    """A short hash naming where activations come from (model weights hash or name, revision,
    position rule and layers)."""
    layer_list = [int(layers)] if isinstance(layers, int) else [int(k) for k in layers]
    return io.config_hash([model, revision, position, layer_list])


def as_activations(x: Any, source: str | None = None) -> tuple[Tensor, bool, str | None]:
    """``x`` as float64 ``[L, n, d]``, whether it had a layer axis, and its fingerprint.

    ``x`` is a tensor / array ``[n, d]`` or ``[L, n, d]``, or a :class:`mindscope.Activations`
    of single texts (its layers are stacked; its fingerprint comes from its manifest).
    """
    if hasattr(x, "stack") and hasattr(x, "manifest") and hasattr(x, "layers"):
        key = x.manifest.get("key", {})
        if x.kind != "text":
            raise MindscopeError("detectors read single-text activations [n, d], not pairs")
        auto = fingerprint(
            str(key.get("weights_hash", "")),
            x.layers,
            str(key.get("position", "")),
            str(key.get("revision", "")),
        )
        if source is not None and source != auto:
            raise MindscopeError("source= disagrees with the Activations' own fingerprint")
        t = x.stack()
        return t.double(), len(x.layers) > 1, auto
    t = torch.as_tensor(x)
    if t.ndim == 2:
        return t.double().unsqueeze(0), False, source
    if t.ndim == 3:
        return t.double(), True, source
    raise MindscopeError(
        f"detectors need activations [n, d] or [layers, n, d], got shape {tuple(t.shape)}"
    )


def _check_finite(x: Tensor, what: str) -> None:
    finite = torch.isfinite(x)
    if not finite.all():
        rows = int((~finite).any(-1).any(0).sum())
        raise MindscopeError(f"{what} activations contain NaN or inf in {rows} rows")


class Detector:
    """Base class: subclasses implement :meth:`_fit_layered` and :meth:`_score_layered`.

    Attributes set by ``fit``:
        n_layers_: layers fitted (1 for one layer).
        layered_: whether ``fit`` saw a leading layer axis (scores keep it).
        d_in_: activation width.
        n_trusted_: number of trusted examples.
        fingerprint_: the trusted activations' source fingerprint, or None.
        train_loc_, train_scale_: ``[layers]`` mean and standard deviation of each layer's
            scores on the trusted set (used to aggregate layers).
    """

    _params: ClassVar[tuple[str, ...]] = ()
    #: Short method name used in results tables.
    method: ClassVar[str] = ""
    #: Whether scores of a batch depend on the other inputs of the batch (QUE).
    transductive: ClassVar[bool] = False

    n_layers_: int
    layered_: bool
    d_in_: int
    n_trusted_: int
    fingerprint_: str | None
    train_loc_: Tensor
    train_scale_: Tensor

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            REGISTRY[cls.method] = cls

    def get_params(self) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__``."""
        return {k: getattr(self, k) for k in self._params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` has run."""
        return hasattr(self, "d_in_")

    # ------------------------------------------------------------------ public API
    def fit(self, x: Any, *, source: str | None = None) -> Detector:
        """Fit on trusted activations ``[n, d]`` / ``[layers, n, d]`` / ``Activations``.

        Args:
            x: trusted activations (never modified).
            source: fingerprint of where they come from (see :func:`fingerprint`); taken from
                ``x`` when it is an ``Activations``.

        Returns:
            ``self``.
        """
        xl, layered, fp = as_activations(x, source)
        if xl.shape[1] == 0:
            raise MindscopeError(f"{type(self).__name__}: the trusted set is empty")
        _check_finite(xl, "trusted")
        self._check_enough(int(xl.shape[1]), int(xl.shape[2]))
        self._fit_layered(xl)
        self.n_layers_, self.layered_ = int(xl.shape[0]), layered
        self.d_in_, self.n_trusted_ = int(xl.shape[2]), int(xl.shape[1])
        self.fingerprint_ = fp
        self._set_train_stats(self._score_layered(xl))
        return self

    def score(self, x: Any, *, source: str | None = None) -> Tensor:
        """Anomaly scores (higher = more anomalous): ``[n]`` or ``[layers, n]`` float64."""
        s = self._score_checked(x, source)
        return s if self.layered_ else s[0]

    def score_aggregate(self, x: Any, *, source: str | None = None) -> Tensor:
        """One score per input ``[n]``: the mean over layers of each layer's score
        standardised by its trusted-set mean and standard deviation."""
        s = self._score_checked(x, source)
        return self.standardise(s).mean(0)

    def check_source(self, fp: str | None) -> None:
        """Refuse activations whose fingerprint differs from the trusted ones'."""
        if self.fingerprint_ is not None and fp is not None and fp != self.fingerprint_:
            raise MindscopeError(
                f"{type(self).__name__} was fitted on activations with fingerprint "
                f"{self.fingerprint_}, got {fp} (another model, revision, position or layers)"
            )

    def standardise(self, s: Tensor) -> Tensor:
        """Per-layer scores ``[layers, n]`` in units of the trusted scores' spread."""
        return (s - self.train_loc_[:, None]) / self.train_scale_[:, None]

    # ------------------------------------------------------------------ internals
    def _score_checked(self, x: Any, source: str | None) -> Tensor:
        if not self.is_fitted:
            raise MindscopeError(f"{type(self).__name__} is not fitted; call fit(trusted) first")
        xl, _, fp = as_activations(x, source)
        self.check_source(fp)
        if xl.shape[2] != self.d_in_:
            raise MindscopeError(
                f"{type(self).__name__} was fitted on width {self.d_in_}, got width {xl.shape[2]}"
            )
        if xl.shape[0] != self.n_layers_:
            raise MindscopeError(
                f"{type(self).__name__} was fitted on {self.n_layers_} layer(s), got {xl.shape[0]}"
            )
        if xl.shape[1] == 0:
            raise MindscopeError("no activations to score")
        _check_finite(xl, "untrusted")
        return self._score_layered(xl)

    def _set_train_stats(self, s: Tensor) -> None:
        self.train_loc_ = s.mean(1)
        scale = s.std(1) if s.shape[1] > 1 else torch.ones_like(self.train_loc_)
        self.train_scale_ = torch.where(scale > 0, scale, torch.ones_like(scale))

    def _check_enough(self, n: int, d: int) -> None:
        if n < 2:
            raise MindscopeError(
                f"{type(self).__name__} needs at least 2 trusted examples, got {n}"
            )

    def _fit_layered(self, x: Tensor) -> None:
        raise NotImplementedError

    def _score_layered(self, x: Tensor) -> Tensor:
        raise NotImplementedError
