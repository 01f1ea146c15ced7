"""Difference-in-means reporter: the direction between the two class means."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.covariance import ClassMoments
from mindscope.probes._common import calibrate
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["DiffMeanReporter"]


class DiffMeanReporter(Reporter):
    """``coef = mean(f | y=1) - mean(f | y=0)``, then Platt scaling on the training scores.

    Features are the pair differences ``x[:, 1] - x[:, 0]`` for contrast pairs or the
    activations themselves for single texts. Batched over layers in closed form.
    """

    _params = ()
    supervised = True
    method = "diffmean"

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        assert y is not None
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d]
        means = ClassMoments.empty().update(f, y).means()
        mu1, mu0 = means[1], means[0]  # [L, d] each
        direction = mu1 - mu0
        mean = f.mean(dim=1)  # [L, d]
        scores = torch.einsum("lnd,ld->ln", f - mean[:, None], direction)
        a, c = calibrate(scores, y)
        self._set_linear(
            mean[:, None], torch.ones_like(mean)[:, None], (a[:, None] * direction)[:, None], c
        )
