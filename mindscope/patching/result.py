"""The result of a patching run: per-prompt effects over (site kind, layer, position)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from mindscope.errors import MindscopeError

__all__ = ["PatchResult", "localisation", "atp_error"]


@dataclass(frozen=True)
class PatchResult:
    """Effects of patching clean activations into the corrupted run.

    Attributes:
        method: ``"activation"`` (exact) or ``"attribution"`` (gradient x difference).
        metric: ``"logit_diff"`` or ``"prob"``.
        effects: ``{kind: [n, n_layers, pos]}``: the metric of the patched run minus the
            corrupted run's (for attribution: its first-order estimate). Layers not patched are
            NaN.
        clean: ``[n]`` the clean run's metric.
        corrupted: ``[n]`` the corrupted run's metric.
    """

    method: str
    metric: str
    effects: dict[str, torch.Tensor]
    clean: torch.Tensor
    corrupted: torch.Tensor

    @property
    def gap(self) -> float:
        """Mean of ``clean - corrupted`` over prompts (the unit of :meth:`normalized`)."""
        return float((self.clean - self.corrupted).mean())

    def normalized(self, kind: str) -> torch.Tensor:
        """``[n, n_layers, pos]`` effects in units of the mean clean-corrupted gap (1 = the
        patch restores the clean metric on average, 0 = no effect)."""
        if kind not in self.effects:
            raise MindscopeError(
                f"no patching effects for site {kind!r}; have {list(self.effects)}"
            )
        gap = self.gap
        if not math.isfinite(gap) or abs(gap) < 1e-12:
            raise MindscopeError("clean and corrupted runs give the same metric: nothing to patch")
        return self.effects[kind] / gap

    def mean(self, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mean, half-width of the 95% normal interval)`` over prompts, each
        ``[n_layers, pos]``, of :meth:`normalized`."""
        e = self.normalized(kind)  # [n, layers, pos]
        n = e.shape[0]
        sd = e.std(0, unbiased=True) if n > 1 else torch.full_like(e[0], float("nan"))
        return e.mean(0), 1.96 * sd / math.sqrt(n)

    def to_rows(self, *, dataset: str = "", extra: dict[str, object] | None = None) -> list[dict]:
        """Results rows: one per (kind, layer, position), ``metric = "patch_<metric>"``, value
        the mean normalized effect with its 95% CI over prompts, ``extra`` the site and
        position."""
        rows: list[dict] = []
        for kind in self.effects:
            m, half = self.mean(kind)
            n = int(self.effects[kind].shape[0])
            for layer in range(m.shape[0]):
                if bool(torch.isnan(m[layer]).all()):
                    continue
                for pos in range(m.shape[1]):
                    v, hw = float(m[layer, pos]), float(half[layer, pos])
                    rows.append(
                        {
                            "metric": f"patch_{self.metric}",
                            "value": v,
                            "ci_low": v - hw,
                            "ci_high": v + hw,
                            "n": n,
                            "layer": layer,
                            "method": self.method,
                            "dataset": dataset,
                            "extra": {
                                "site": kind,
                                ("head" if kind == "head" else "position"): pos,
                                **(extra or {}),
                            },
                        }
                    )
        return rows


def _detected(result: PatchResult, tau: float) -> set[tuple[str, int, int]]:
    means = {k: result.mean(k)[0].abs() for k in result.effects}
    top = max(float(torch.nan_to_num(m, nan=0.0).max()) for m in means.values())
    out: set[tuple[str, int, int]] = set()
    for k, m in means.items():
        for layer, pos in (torch.nan_to_num(m, nan=0.0) >= tau * top).nonzero().tolist():
            if top > 0:
                out.add((k, int(layer), int(pos)))
    return out


def localisation(
    result: PatchResult, truth: Iterable[tuple[str, int, int]], *, tau: float = 0.05
) -> dict[str, float]:
    """Precision and recall of the components a patching run flags against a known circuit.

    A component ``(kind, layer, position)`` is flagged when its mean absolute normalized effect
    is at least ``tau`` times the largest over every patched component.

    Returns:
        ``{"precision", "recall", "n_flagged", "n_true"}``.
    """
    true = {(k, int(l), int(p)) for k, l, p in truth if k in result.effects}
    got = _detected(result, tau)
    hit = len(got & true)
    return {
        "precision": hit / len(got) if got else float("nan"),
        "recall": hit / len(true) if true else float("nan"),
        "n_flagged": float(len(got)),
        "n_true": float(len(true)),
    }


def atp_error(exact: PatchResult, atp: PatchResult) -> dict[str, dict[str, float]]:
    """Per site kind, how far attribution patching is from exact patching (normalized units,
    mean over prompts): ``mae`` (mean absolute error over layers x positions), ``max_err``,
    ``corr`` (Pearson correlation of the two maps) and ``top_err`` (error at the component
    with the largest exact effect)."""
    out: dict[str, dict[str, float]] = {}
    for kind in exact.effects:
        if kind not in atp.effects:
            continue
        a, b = exact.mean(kind)[0], atp.normalized(kind).mean(0)
        ok = ~(torch.isnan(a) | torch.isnan(b))
        a, b = a[ok], b[ok]
        err = (a - b).abs()
        corr = float(torch.corrcoef(torch.stack([a, b]))[0, 1]) if a.numel() > 1 else math.nan
        top = int(a.abs().argmax())
        out[kind] = {
            "mae": float(err.mean()),
            "max_err": float(err.max()),
            "corr": corr,
            "top_err": float(err[top]),
        }
    return out
