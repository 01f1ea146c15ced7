"""Contrast-representation clustering (CRC / VINC without invariance terms), closed form."""

from __future__ import annotations

import torch
from torch import Tensor

from mindscope.errors import MindscopeError
from mindscope.probes._common import calibrate
from mindscope.probes._inputs import Layout
from mindscope.probes.base import Reporter

__all__ = ["CrcReporter"]


class CrcReporter(Reporter):
    """Top principal direction of the centred pair differences ``x[:, 1] - x[:, 0]``.

    Unsupervised: labels, when given, only fix the sign and scale (Platt scaling). Without
    labels the sign is arbitrary (``labels_used_`` is False) and evaluation uses
    ``max(auroc, 1 - auroc)`` as elk does. Needs contrast pairs.
    """

    _params = ()
    supervised = False
    method = "crc"

    def _fit_layered(self, x: Tensor, y: Tensor | None, layout: Layout) -> None:
        if not layout.paired:
            raise MindscopeError("CrcReporter needs contrast pairs [n, 2, d] or [layers, n, 2, d]")
        f = self._featurize(x)[:, :, 0].double()  # [L, n, d] pair differences
        mean = f.mean(dim=1)  # [L, d]
        fc = f - mean[:, None]
        # top right-singular vector of the centred differences = top PC, per layer
        _, _, vh = torch.linalg.svd(fc, full_matrices=False)  # vh: [L, k, d]
        direction = vh[:, 0]  # [L, d]
        scores = torch.einsum("lnd,ld->ln", fc, direction)
        a, c = calibrate(scores, y)
        self._set_linear(
            mean[:, None], torch.ones_like(mean)[:, None], (a[:, None] * direction)[:, None], c
        )
