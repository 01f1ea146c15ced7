"""Planted dictionaries: activations built from known sparse features, to score SAEs against.

In the spirit of SynthSAEBench (Chanin et al. 2026) and Sharkey et al. (2022): ``n_features``
true unit directions in ``d`` dimensions; each fires with a Zipfian probability; some features
are parents of mutually exclusive children (a child fires only with its parent, and at most one
child of a parent fires); firing is correlated within random groups (a Gaussian copula); the
directions' overlap (superposition) is set by ``n_features / d`` and by ``orthogonalize``
(steps pushing the directions apart). Magnitudes are positive, around 1 per feature.

Example::

    gen = PlantedDictionary(n_features=2048, d=128, seed=0)
    x, codes = gen.sample(4096, seed=1)       # x: [4096, 128], codes: [4096, 2048] (dense)
    for x in gen.stream(batch_size=1024, seed=2):   # an endless stream of [1024, 128] batches
        ...
    gen.features_                              # [n_features, d] the truth, unit rows
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from mindscope.errors import MindscopeError

__all__ = ["PlantedDictionary", "SETTINGS", "planted"]


@dataclass(frozen=True)
class _Hierarchy:
    parent: torch.Tensor  # [n_children] index of each child's parent
    child: torch.Tensor  # [n_children] index of each child feature


class PlantedDictionary:
    """A generator of activations ``x = sum_i c_i f_i + noise`` with known features ``f_i``.

    Args:
        n_features: number of true features ``N``.
        d: activation width.
        mean_active: expected number of features firing per sample (before the hierarchy gates
            children); the Zipfian probabilities are scaled to give it.
        zipf_exponent: firing probability of the i-th feature ~ ``(i + 1) ** -zipf_exponent``
            (0: all equal).
        max_prob: cap on any feature's firing probability.
        hierarchy: fraction of features that are children in the hierarchy (0: none).
        children_per_parent: children of each parent (mutually exclusive).
        correlation: firing correlation within a group (Gaussian copula coefficient, 0..1).
        n_groups: number of correlated groups (features assigned at random).
        orthogonalize: gradient steps lowering the directions' pairwise overlap (0: random
            directions; with ``n_features <= d`` any positive value gives orthonormal ones).
        magnitude_std: relative spread of a firing feature's magnitude (mean 1 per feature times
            a per-feature scale drawn in ``[0.5, 1.5]``).
        noise: standard deviation of isotropic Gaussian noise added to ``x``.
        seed: seed of the dictionary itself (directions, probabilities, hierarchy, groups).
    """

    def __init__(
        self,
        n_features: int = 2048,
        d: int = 128,
        *,
        mean_active: float = 8.0,
        zipf_exponent: float = 0.5,
        max_prob: float = 0.5,
        hierarchy: float = 0.0,
        children_per_parent: int = 4,
        correlation: float = 0.0,
        n_groups: int = 32,
        orthogonalize: int = 0,
        magnitude_std: float = 0.25,
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        if n_features < 1 or d < 1:
            raise MindscopeError(
                f"planted dictionary needs n_features >= 1 and d >= 1, got {n_features} and {d}"
            )
        if not 0 < mean_active <= n_features:
            raise MindscopeError(f"mean_active must be in (0, n_features], got {mean_active}")
        if not 0 <= hierarchy < 1 or not 0 <= correlation < 1:
            raise MindscopeError("hierarchy and correlation must be in [0, 1)")
        self.n_features = n_features
        self.d = d
        self.mean_active = mean_active
        self.zipf_exponent = zipf_exponent
        self.max_prob = max_prob
        self.hierarchy = hierarchy
        self.children_per_parent = children_per_parent
        self.correlation = correlation
        self.n_groups = n_groups
        self.orthogonalize = orthogonalize
        self.magnitude_std = magnitude_std
        self.noise = noise
        self.seed = seed
        g = torch.Generator().manual_seed(seed)
        self.features_ = _directions(n_features, d, orthogonalize, g)  # [N, d]
        perm = torch.randperm(n_features, generator=g)
        rank = torch.empty(n_features, dtype=torch.float64)
        rank[perm] = torch.arange(n_features, dtype=torch.float64)  # Zipf rank of each feature
        base = (rank + 1) ** -zipf_exponent
        self.hierarchy_ = _hierarchy(n_features, hierarchy, children_per_parent, g)
        self.probs_ = _scale_probs(base, mean_active, max_prob)  # [N] marginal-ish firing probs
        self.scale_ = 0.5 + torch.rand(n_features, generator=g, dtype=torch.float64)  # [N]
        self.group_ = torch.randint(0, max(1, n_groups), (n_features,), generator=g)  # [N]
        # children: probability of firing given the parent, among mutually exclusive siblings
        self._threshold = _normal_icdf(self.probs_)  # fire when the copula variable is below

    # ------------------------------------------------------------------ sampling
    @property
    def coherence_(self) -> float:
        """Largest absolute cosine between two distinct true features."""
        f = self.features_
        if len(f) < 2:
            return 0.0
        g = (f @ f.T).abs()
        g.fill_diagonal_(0)
        return float(g.max())

    def firing(self, n: int, g: torch.Generator) -> torch.Tensor:
        """``[n, N]`` boolean: which features fire in each of ``n`` samples."""
        e = torch.randn(n, self.n_features, generator=g, dtype=torch.float32)
        if self.correlation > 0:
            shared = torch.randn(n, max(1, self.n_groups), generator=g)  # [n, groups]
            c = self.correlation
            e = math.sqrt(1 - c) * e + math.sqrt(c) * shared[:, self.group_]
        fire = e < self._threshold.float()  # [n, N]
        h = self.hierarchy_
        if h is not None and len(h.child):
            # a child fires only with its parent; among a parent's children at most one fires
            kids = fire[:, h.child] & fire[:, h.parent]  # [n, n_children]
            r = torch.rand(n, len(h.child), generator=g).masked_fill(~kids, -1.0)
            m = self.children_per_parent
            r = r.view(n, -1, m)  # [n, parents, m] (children are stored parent by parent)
            keep = (r == r.max(dim=-1, keepdim=True).values) & (r >= 0)
            fire[:, h.child] = keep.view(n, -1)
        return fire

    def sample(
        self, n: int, seed: int = 0, *, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x [n, d], codes [n, N])``: activations and the true feature coefficients."""
        g = generator or torch.Generator().manual_seed(seed)
        fire = self.firing(n, g)
        rows, cols = fire.nonzero(as_tuple=True)  # [nnz] each
        mag = 1 + self.magnitude_std * torch.randn(len(rows), generator=g)
        vals = mag.clamp_min(0.05) * self.scale_.float()[cols]
        codes = torch.zeros(n, self.n_features)
        codes[rows, cols] = vals  # [n, N]
        x = torch.zeros(n, self.d).index_add_(0, rows, vals[:, None] * self.features_[cols])
        if self.noise > 0:
            x = x + self.noise * torch.randn(n, self.d, generator=g)
        return x, codes

    def stream(self, batch_size: int, seed: int = 0) -> Iterator[torch.Tensor]:
        """An endless, seeded stream of ``[batch_size, d]`` batches (memory: one batch)."""
        g = torch.Generator().manual_seed(seed)
        while True:
            yield self.sample(batch_size, generator=g)[0]

    def __repr__(self) -> str:
        return (
            f"PlantedDictionary(n_features={self.n_features}, d={self.d}, "
            f"mean_active={self.mean_active}, hierarchy={self.hierarchy}, "
            f"correlation={self.correlation}, seed={self.seed})"
        )


def _normal_icdf(p: torch.Tensor) -> torch.Tensor:
    return math.sqrt(2) * torch.erfinv(2 * p.clamp(1e-12, 1 - 1e-12) - 1)


def _scale_probs(base: torch.Tensor, mean_active: float, cap: float) -> torch.Tensor:
    """``base`` scaled so its sum is ``mean_active``, each entry at most ``cap``."""
    if mean_active > cap * len(base):
        raise MindscopeError(
            f"mean_active={mean_active} cannot be met with {len(base)} features firing at most "
            f"{cap} of the time"
        )
    lo, hi = 0.0, mean_active / float(base.min()) + 1
    for _ in range(100):  # bisection on the scale
        mid = (lo + hi) / 2
        if float((base * mid).clamp(max=cap).sum()) < mean_active:
            lo = mid
        else:
            hi = mid
    return (base * hi).clamp(max=cap)


def _directions(n: int, d: int, steps: int, g: torch.Generator) -> torch.Tensor:
    """``[n, d]`` unit rows: random, then ``steps`` of descent on their squared overlaps."""
    f = torch.randn(n, d, generator=g, dtype=torch.float64)
    f = f / f.norm(dim=1, keepdim=True)
    if steps <= 0:
        return f.float()
    if n <= d:
        q, _ = torch.linalg.qr(f.T)  # [d, n] orthonormal columns
        return q.T.contiguous().float()
    f.requires_grad_(True)
    opt = torch.optim.Adam([f], lr=0.01)
    for _ in range(steps):
        u = f / f.norm(dim=1, keepdim=True)
        gram = u @ u.T  # [n, n]
        loss = (gram - torch.eye(n, dtype=gram.dtype)).pow(2).sum() / n
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return (f / f.norm(dim=1, keepdim=True)).float()


def _hierarchy(n: int, frac: float, m: int, g: torch.Generator) -> _Hierarchy | None:
    """Parents with ``m`` mutually exclusive children each; children are ``frac`` of all."""
    n_parents = int(n * frac) // m
    if n_parents == 0:
        return None
    if n_parents * (m + 1) > n:
        raise MindscopeError(f"hierarchy={frac} with {m} children per parent needs more features")
    perm = torch.randperm(n, generator=g)
    parents = perm[:n_parents]
    children = perm[n_parents : n_parents * (m + 1)]  # parent by parent
    return _Hierarchy(parent=parents.repeat_interleave(m), child=children)


SETTINGS: dict[str, dict[str, float | int]] = {
    "easy": {
        "n_features": 256,
        "d": 128,
        "mean_active": 3,
        "zipf_exponent": 0.0,
        "orthogonalize": 300,
    },
    "small": {
        "n_features": 2048,
        "d": 128,
        "mean_active": 8,
        "zipf_exponent": 0.5,
        "hierarchy": 0.25,
        "correlation": 0.2,
        "noise": 0.0,
    },
    "synthsae": {
        "n_features": 16384,
        "d": 768,
        "mean_active": 34,
        "zipf_exponent": 0.5,
        "hierarchy": 0.25,
        "correlation": 0.2,
        "noise": 0.0,
    },
}
"""Named settings: ``easy`` (few features active, nearly orthogonal: MCC near 1 is expected),
``small`` (the architecture comparison that runs on two cores in minutes) and ``synthsae`` (the
size of SynthSAEBench: 16,384 features in 768 dimensions)."""


def planted(setting: str = "small", seed: int = 0, **overrides: float | int) -> PlantedDictionary:
    """The :class:`PlantedDictionary` of a named setting (:data:`SETTINGS`), with overrides."""
    if setting not in SETTINGS:
        raise MindscopeError(f"unknown planted setting {setting!r} (known: {', '.join(SETTINGS)})")
    kw = {**SETTINGS[setting], **overrides}
    n, d = int(kw.pop("n_features")), int(kw.pop("d"))
    return PlantedDictionary(n, d, seed=seed, **kw)  # type: ignore[arg-type]
