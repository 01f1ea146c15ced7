"""L2 logistic-regression reporter, strength chosen by cross-validation, batched over layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._inputs import Layout
from mindscope.probes._solvers import logistic_newton
from mindscope.probes.base import Reporter

__all__ = ["LogisticReporter", "DEFAULT_CS"]

DEFAULT_CS: tuple[float, ...] = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)
_MEMORY_BUDGET = 256 * 2**20  # bytes of float64 Hessians held at once during CV


def _stratified_folds(y: Tensor, k: int, seed: int) -> Tensor:
    """Fold index ``[n]`` in ``0..k-1``, each class spread evenly over the folds."""
    gen = torch.Generator().manual_seed(seed)
    fold = torch.empty(y.shape[0], dtype=torch.long)
    for cls in (0, 1):
        idx = torch.nonzero(y.cpu() == cls).squeeze(1)
        idx = idx[torch.randperm(idx.numel(), generator=gen)]
        fold[idx] = torch.arange(idx.numel()) % k
    return fold.to(y.device)


class LogisticReporter(Reporter):
    """Logistic regression with an L2 penalty (scikit-learn's ``C`` convention).

    The objective per layer is ``sum_i logloss_i + ||coef||^2 / (2 C)`` on the features
    (pair differences for contrast pairs), solved by batched Newton steps for all layers at once.

    Args:
        C: inverse regularisation strength; ``None`` picks it per layer from ``Cs`` by
            stratified ``cv``-fold cross-validation (lowest held-out log-loss).
        Cs: candidate strengths for cross-validation.
        cv: number of folds.
        normalize: standardise features with the training mean and standard deviation.
        max_iter: Newton iterations at most.
        seed: seed of the fold assignment.
    """

    _params = ("C", "Cs", "cv", "normalize", "max_iter", "seed")
    supervised = True
    method = "lr"

    def __init__(
        self,
        C: float | None = None,
        Cs: Sequence[float] = DEFAULT_CS,
        cv: int = 5,
        normalize: bool = True,
        max_iter: int = 50,
        seed: int = 0,
    ) -> None:
        if C is not None and not C > 0:
            raise MindscopeError(f"C must be positive, got {C!r}")
        if not Cs or any(not c > 0 for c in Cs):
            raise MindscopeError(f"Cs must be positive numbers, got {Cs!r}")
        if cv < 2:
            raise MindscopeError(f"cv must be at least 2, got {cv!r}")
        self.C = None if C is None else float(C)
        self.Cs = Cs  # kept as given (scikit-learn's clone checks identity)
        self.cv = int(cv)
        self.normalize = bool(normalize)
        self.max_iter = int(max_iter)
        self.seed = int(seed)

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        assert y is not None
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d]
        n_layers, n, d = f.shape
        if self.normalize:
            mean = f.mean(dim=1)  # [L, d]
            scale = f.std(dim=1).clamp_min(1e-8)
        else:
            mean = torch.zeros(n_layers, d, dtype=torch.float64, device=f.device)
            scale = torch.ones(n_layers, d, dtype=torch.float64, device=f.device)
        fz = (f - mean[:, None]) / scale[:, None]  # [L, n, d]
        # With more features than examples, the L2 solution lies in the span of the examples
        # (for every CV fold too, whose rows span a subspace of it): solve in that n-dimensional
        # basis, exactly, instead of in d dimensions.
        basis = None
        if d > n:
            _, _, basis = torch.linalg.svd(fz, full_matrices=False)  # [L, n, d] orthonormal rows
            fz = torch.einsum("lnd,lrd->lnr", fz, basis)  # [L, n, r=n]

        if self.C is None:
            c_per_layer = self._cross_validate(fz, y)  # [L]
        else:
            c_per_layer = torch.full((n_layers,), self.C, dtype=torch.float64, device=f.device)
        coef, icpt = logistic_newton(fz, y, 1.0 / c_per_layer, max_iter=self.max_iter)
        if basis is not None:
            coef = torch.einsum("lr,lrd->ld", coef, basis)  # back to feature space [L, d]
        self.C_ = c_per_layer.float()
        self._set_linear(mean[:, None], scale[:, None], coef[:, None], icpt)

    def _cross_validate(self, fz: Tensor, y: Tensor) -> Tensor:
        """Per-layer ``C`` with the lowest mean held-out log-loss: ``[L]``."""
        n_layers, n, d = fz.shape
        k = min(self.cv, int(y.sum()), int((1 - y).sum()))
        if k < 2:
            raise MindscopeError("cross-validation needs at least 2 examples of each class")
        fold = _stratified_folds(y, k, self.seed)  # [n]
        cs = torch.tensor([float(c) for c in self.Cs], dtype=torch.float64, device=fz.device)
        # one problem per (layer, C, fold): index arrays of length L*K*F
        li, ci, fi = torch.meshgrid(
            torch.arange(n_layers, device=fz.device),
            torch.arange(len(cs), device=fz.device),
            torch.arange(k, device=fz.device),
            indexing="ij",
        )
        li, ci, fi = li.reshape(-1), ci.reshape(-1), fi.reshape(-1)
        heldout_loss = torch.empty(li.numel(), dtype=torch.float64, device=fz.device)
        per_problem = (d + 1) ** 2 * 8 * 3 + n * (d + 1) * 8
        chunk = max(1, _MEMORY_BUDGET // per_problem)
        for start in range(0, li.numel(), chunk):  # chunks of problems, not a loop per layer
            sl = slice(start, start + chunk)
            train_w = (fold[None, :] != fi[sl, None]).double()  # [B, n]
            coef, icpt = logistic_newton(
                fz[li[sl]], y, 1.0 / cs[ci[sl]], sample_weight=train_w, max_iter=self.max_iter
            )
            z = torch.einsum("bnd,bd->bn", fz[li[sl]], coef) + icpt[:, None]  # [B, n]
            nll = F.softplus(z) - y * z
            test_w = 1.0 - train_w
            heldout_loss[sl] = (nll * test_w).sum(-1) / test_w.sum(-1)
        mean_loss = heldout_loss.view(n_layers, len(cs), k).mean(-1)  # [L, K]
        return cs[mean_loss.argmin(dim=1)]
