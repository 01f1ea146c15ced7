"""The reporter contract shared by every probe.

A reporter maps activations to a credence that a statement is true. All reporters here are
linear in (normalised) features, so a fitted reporter is four tensors per layer::

    logit = sum_s ((f_s - mean_[s]) / scale_[s]) . coef_[s] + intercept_

where the features ``f`` are, for contrast pairs ``[n, 2, d]``, either the pair difference
``x[:, 1] - x[:, 0]`` (one "side", used by the supervised reporters and CRC) or both sides
(two "sides", used by CCS, which normalises each side with its own statistics); for single
texts ``[n, d]`` the feature is ``x`` itself.

Contract (scikit-learn's): hyper-parameters only in ``__init__``; ``fit(x, y=None)`` returns
``self``; learned tensors end in ``_``; ``predict_proba(x)`` returns ``[n]`` or ``[layers, n]``;
``score(x, y)`` returns the AUROC (float or ``[layers]``); ``save(dir)``/``load(dir)`` write
and read ``config.json`` + ``model.safetensors`` (never pickles).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._inputs import Layout, as_layered, pair_diff

__all__ = ["Reporter", "load_reporter", "reporter_config", "REGISTRY"]

FORMAT_VERSION = 1
REGISTRY: dict[str, type[Reporter]] = {}


class Reporter:
    """Base class: subclasses implement :meth:`_fit_layered` and list their hyper-parameters.

    Attributes set by ``fit``:
        mean_: ``[layers, sides, d]`` feature centre (training statistics).
        scale_: ``[layers, sides, d]`` feature scale (training statistics; ones if unused).
        coef_: ``[layers, sides, d]`` direction(s).
        intercept_: ``[layers]`` bias of the logit.
        n_layers_: number of layers fitted (1 for a single-layer input).
        layered_: whether ``fit`` saw a leading layer axis (predictions keep it).
        paired_: whether ``fit`` saw contrast pairs (predict then needs pairs too).
        d_in_: activation width ``d``.
        labels_used_: whether labels fixed the sign and scale (False: an unsupervised CCS/CRC
            fit whose sign is arbitrary; evaluate it with ``max(auroc, 1 - auroc)``).
    """

    #: Names of the ``__init__`` hyper-parameters (saved in config.json).
    _params: ClassVar[tuple[str, ...]] = ()
    #: "diff" (pair difference, one side) or "both" (each side separately; pairs only).
    _features: ClassVar[str] = "diff"
    #: Whether fit needs labels.
    supervised: ClassVar[bool] = True
    #: Short method name used in results tables.
    method: ClassVar[str] = ""

    mean_: Tensor
    scale_: Tensor
    coef_: Tensor
    intercept_: Tensor
    n_layers_: int
    layered_: bool
    paired_: bool
    d_in_: int
    labels_used_: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.method:
            REGISTRY[cls.__name__] = cls

    # ----------------------------------------------------------------- public API
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The hyper-parameters given to ``__init__`` (JSON-ready); ``deep`` is accepted for
        scikit-learn's ``clone`` (reporters hold no nested estimators)."""
        return {k: _json_ready(getattr(self, k)) for k in self._params}

    def set_params(self, **params: Any) -> Reporter:
        """Set hyper-parameters (scikit-learn's contract); unknown names are refused."""
        unknown = sorted(set(params) - set(self._params))
        if unknown:
            raise MindscopeError(
                f"{type(self).__name__} has no hyper-parameter(s) {unknown}; it has "
                f"{list(self._params)}"
            )
        merged = {**self.get_params(), **params}
        fresh = type(self)(**merged)  # validates like __init__ does
        for k in self._params:
            setattr(self, k, getattr(fresh, k))
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    @property
    def is_fitted(self) -> bool:
        """Whether :meth:`fit` (or :meth:`load`) has set the learned tensors."""
        return hasattr(self, "coef_")

    def fit(self, x: Any, y: Any = None) -> Reporter:
        """Fit on activations ``[n, 2, d]``, ``[layers, n, 2, d]``, ``[n, d]``, ``[layers, n, d]``.

        Args:
            x: activations (torch tensor or numpy array); never modified.
            y: ``[n]`` labels, 1 when the statement is true (side 1 correct for pairs), 0 when
                false; -1 or None means unknown (only unsupervised reporters accept that).

        Returns:
            ``self``.
        """
        xl, layout = as_layered(x)
        if self._features == "both" and not layout.paired:
            raise MindscopeError(
                f"{type(self).__name__} needs contrast pairs [n, 2, d] or [layers, n, 2, d], "
                f"got {tuple(torch.as_tensor(xl).shape[1:])} per layer"
            )
        if layout.paired and xl.shape[2] != 2:
            raise MindscopeError(f"contrast pairs must have 2 sides, got {xl.shape[2]}")
        yt = self._check_targets(y, xl.shape[1], xl.device)
        self._fit_layered(xl, yt, layout)
        self.labels_used_ = yt is not None
        self.n_layers_ = int(xl.shape[0])
        self.layered_ = layout.layered
        self.paired_ = layout.paired
        self.d_in_ = int(xl.shape[-1])
        return self

    def decision_function(self, x: Any) -> Tensor:
        """Logits ``[n]`` or ``[layers, n]`` (same layout as at fit time).

        Computed on ``x``'s device and differentiable in ``x`` (the reporter's tensors are
        copied to that device once and kept there).
        """
        self._check_fitted()
        xl, layout = as_layered(x, paired=self.paired_, keep_grad=True)
        self._check_compatible(xl, layout)
        mean, scale, coef, intercept = self._tensors_on(xl.device)
        feats = self._featurize(xl)  # [L, n, S, d]
        z = ((feats - mean[:, None].to(feats.dtype)) / scale[:, None] * coef[:, None]).sum(
            (-1, -2)
        ) + intercept[:, None]  # [L, n]
        return z if self.layered_ else z[0]

    def _tensors_on(self, device: torch.device) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``mean_, scale_, coef_, intercept_`` on ``device`` (cached per device)."""
        cache = self.__dict__.setdefault("_device_cache", {})
        key = (str(device), id(self.coef_))
        if key not in cache:
            cache.clear()
            cache[key] = tuple(
                t.to(device) for t in (self.mean_, self.scale_, self.coef_, self.intercept_)
            )
        return cache[key]

    def predict_proba(self, x: Any) -> Tensor:
        """Credence that each statement is true: ``[n]`` or ``[layers, n]`` in ``[0, 1]``."""
        return torch.sigmoid(self.decision_function(x))

    def predict(self, x: Any) -> Tensor:
        """Hard 0/1 predictions (credence > 0.5): ``[n]`` or ``[layers, n]``."""
        return (self.predict_proba(x) > 0.5).long()

    def score(self, x: Any, y: Any) -> float | Tensor:
        """AUROC of the credences against ``y``: a float, or ``[layers]`` when layered."""
        from mindscope.probes.metrics import roc_auc

        p = self.predict_proba(x).detach()
        yt = torch.as_tensor(y).double().to(p.device)
        auc = roc_auc(p.double(), yt.expand_as(p))
        return auc if self.layered_ else float(auc)

    def direction(self) -> Tensor:
        """Unit direction in raw activation space that raises the credence: ``[d]`` or
        ``[layers, d]``. For pair features it is the direction of ``x[:, 1] - x[:, 0]``."""
        self._check_fitted()
        eff = self.coef_ / self.scale_  # [L, S, d]
        v = eff[:, 0] if eff.shape[1] == 1 else (eff[:, 1] - eff[:, 0]) / 2  # [L, d]
        v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return v if self.layered_ else v[0]

    def save(self, path: str | Path, *, meta: dict[str, Any] | None = None) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into folder ``path``.

        Args:
            path: output folder (created).
            meta: optional JSON-ready facts checked again by :meth:`load` (e.g. the model).
        """
        self._check_fitted()
        out = Path(path)
        out.mkdir(parents=True, exist_ok=True)
        config = {
            "format_version": FORMAT_VERSION,
            "class": type(self).__name__,
            "params": self.get_params(),
            "d_in": self.d_in_,
            "n_layers": self.n_layers_,
            "layered": self.layered_,
            "paired": self.paired_,
            "labels_used": self.labels_used_,
            "meta": meta or {},
        }
        tensors = {
            k: getattr(self, k).detach().cpu().contiguous().float()
            for k in (*self._tensor_names(), *self._learned_extras())
            if hasattr(self, k)
        }
        from mindscope.io import atomic_path, atomic_write_text

        with atomic_path(out / "model.safetensors") as tmp:
            save_file(tensors, str(tmp))
        atomic_write_text(out / "config.json", json.dumps(config, indent=2, sort_keys=True))
        return out

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        d_in: int | None = None,
        expect_meta: dict[str, Any] | None = None,
    ) -> Reporter:
        """Read a reporter written by :meth:`save`.

        Args:
            path: the folder holding ``config.json`` and ``model.safetensors``.
            d_in: if given, refuse a reporter fitted on another activation width.
            expect_meta: if given, refuse a reporter whose saved meta differs on these keys.
        """
        return load_reporter(path, d_in=d_in, expect_meta=expect_meta, expect_class=cls)

    # ----------------------------------------------------------------- internals
    def _tensor_names(self) -> tuple[str, ...]:
        return ("mean_", "scale_", "coef_", "intercept_")

    def _check_targets(self, y: Any, n: int, device: torch.device) -> Tensor | None:
        """Validated targets ``[n]`` float64 on ``device`` (0/1 labels for classifiers)."""
        from mindscope.probes._inputs import check_labels

        return check_labels(y, n, required=self.supervised, who=type(self).__name__, device=device)

    def _learned_extras(self) -> tuple[str, ...]:
        """Learned per-layer tensors beyond the linear map kept by save/load (e.g. ``C_``)."""
        return ("C_", "shrinkage_", "loss_")

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        raise NotImplementedError

    def _featurize(self, x: Tensor) -> Tensor:
        """Features ``[L, n, S, d]`` of layered activations (see module docstring)."""
        if x.ndim == 4:
            if self._features == "both":
                return x  # [L, n, 2, d]
            return pair_diff(x).unsqueeze(2)  # [L, n, 1, d]
        return x.unsqueeze(2)  # [L, n, 1, d]

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise MindscopeError(f"{type(self).__name__} is not fitted; call fit(x, y) first")

    def _check_compatible(self, x: Tensor, layout: Layout) -> None:
        if x.shape[-1] != self.d_in_:
            raise MindscopeError(
                f"{type(self).__name__} was fitted on activations of width {self.d_in_}, "
                f"got width {x.shape[-1]}"
            )
        if layout.paired != self.paired_:
            want = "contrast pairs [.., n, 2, d]" if self.paired_ else "single texts [.., n, d]"
            raise MindscopeError(f"{type(self).__name__} was fitted on {want}")
        if layout.layered != self.layered_ or x.shape[0] != self.n_layers_:
            if self.layered_:
                raise MindscopeError(
                    f"{type(self).__name__} was fitted on {self.n_layers_} layers; pass "
                    f"activations with a leading axis of {self.n_layers_} layers, got "
                    f"{x.shape[0] if layout.layered else 'no layer axis'}"
                )
            raise MindscopeError(
                f"{type(self).__name__} was fitted on a single layer; pass one layer's "
                "activations (no leading layer axis)"
            )

    def _set_linear(self, mean: Tensor, scale: Tensor, coef: Tensor, intercept: Tensor) -> None:
        self.mean_ = mean.float()
        self.scale_ = scale.float()
        self.coef_ = coef.float()
        self.intercept_ = intercept.float()


def _json_ready(v: Any) -> Any:
    return list(v) if isinstance(v, tuple) else v


def reporter_config(path: str | Path) -> dict[str, Any]:
    """The ``config.json`` of a reporter saved with :meth:`Reporter.save` (class, ``layered``,
    ``paired``, ``d_in``, ``n_layers``, ``meta``...), without loading its tensors; one-line
    :class:`MindscopeError` when the folder holds no reporter."""
    folder = Path(path)
    cfg_path = folder / "config.json"
    if not cfg_path.is_file() or not (folder / "model.safetensors").is_file():
        raise MindscopeError(f"no saved reporter at {folder} (need config.json + safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise MindscopeError(f"{cfg_path} is not valid JSON: {exc}") from None
    if not isinstance(cfg, dict) or cfg.get("format_version") != FORMAT_VERSION:
        raise MindscopeError(f"{cfg_path} is not a reporter config of format {FORMAT_VERSION}")
    return cfg


def load_reporter(
    path: str | Path,
    *,
    d_in: int | None = None,
    expect_meta: dict[str, Any] | None = None,
    expect_class: type[Reporter] | None = None,
) -> Reporter:
    """Read any reporter saved with :meth:`Reporter.save` (the class comes from config.json)."""
    folder = Path(path)
    cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
    if not cfg_path.is_file() or not w_path.is_file():
        raise FileNotFoundError(f"no saved reporter at {folder} (need config.json + safetensors)")
    try:
        cfg = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise MindscopeError(f"{cfg_path} is not valid JSON: {exc}") from None
    if cfg.get("format_version") != FORMAT_VERSION:
        raise MindscopeError(f"{cfg_path}: unsupported format_version {cfg.get('format_version')}")
    klass = REGISTRY.get(cfg.get("class", ""))
    if klass is None:
        raise MindscopeError(f"{cfg_path}: unknown reporter class {cfg.get('class')!r}")
    if expect_class is not None and expect_class is not Reporter and klass is not expect_class:
        raise MindscopeError(f"{folder} holds a {klass.__name__}, not a {expect_class.__name__}")
    if d_in is not None and int(cfg["d_in"]) != int(d_in):
        raise MindscopeError(
            f"reporter at {folder} was fitted on activations of width {cfg['d_in']}, not {d_in}"
        )
    saved_meta = cfg.get("meta", {})
    for key, want in (expect_meta or {}).items():
        if saved_meta.get(key) != want:
            raise MindscopeError(
                f"reporter at {folder} was saved for {key}={saved_meta.get(key)!r}, not {want!r}"
            )
    rep = klass(**cfg["params"])
    tensors = load_file(str(w_path))
    for name in rep._tensor_names():
        if name not in tensors:
            raise MindscopeError(f"{w_path} lacks tensor {name!r}")
        setattr(rep, name, tensors[name])
    for name in rep._learned_extras():
        if name in tensors:
            setattr(rep, name, tensors[name])
    rep.n_layers_ = int(cfg["n_layers"])
    rep.layered_ = bool(cfg["layered"])
    rep.paired_ = bool(cfg["paired"])
    rep.d_in_ = int(cfg["d_in"])
    rep.labels_used_ = bool(cfg.get("labels_used", True))
    if rep.coef_.shape[-1] != rep.d_in_ or rep.coef_.shape[0] != rep.n_layers_:
        raise MindscopeError(f"{w_path}: tensor shapes do not match config.json")
    return rep
