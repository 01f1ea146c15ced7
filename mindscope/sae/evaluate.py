"""Building SAEs by name and scoring them against a planted dictionary."""

from __future__ import annotations

from typing import Any

import torch

from mindscope.errors import MindscopeError
from mindscope.sae.base import REGISTRY, BatchSource, SparseAutoencoder
from mindscope.sae.metrics import firing_scores, match_features, reconstruction_metrics, uniqueness
from mindscope.sae.synthetic import PlantedDictionary

__all__ = ["make_sae", "planted_source", "evaluate_planted", "compare_planted"]


def make_sae(arch: str, n_latents: int, k: int, **kwargs: Any) -> SparseAutoencoder:
    """An untrained SAE of architecture ``arch`` (``topk``, ``batchtopk``, ``jumprelu``, ``l1``,
    ``matryoshka``) with ``n_latents`` latents and L0 target ``k``."""
    import difflib

    if arch not in REGISTRY:
        close = difflib.get_close_matches(arch, list(REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise MindscopeError(
            f"unknown SAE architecture {arch!r} (known: {', '.join(REGISTRY)}){hint}"
        )
    return REGISTRY[arch](n_latents, k, **kwargs)


def planted_source(gen: PlantedDictionary, batch_size: int, seed: int = 0) -> BatchSource:
    """A :data:`~mindscope.sae.base.BatchSource` of fresh planted batches ``[batch_size, d]``:
    batch ``t`` depends only on ``(seed, t)``, so training streams in bounded memory, is
    deterministic and resumes exactly."""

    def source(step: int) -> torch.Tensor:
        g = torch.Generator().manual_seed((seed * 1_000_003 + step) % 2**63)
        return gen.sample(batch_size, generator=g)[0]

    return source


def evaluate_planted(
    sae: SparseAutoencoder, gen: PlantedDictionary, *, n: int = 8192, seed: int = 12345
) -> dict[str, float]:
    """Score a trained SAE against the generator's truth on ``n`` fresh samples.

    Returns:
        ``mcc`` (Hungarian mean matched cosine), ``precision``/``recall``/``f1`` of the matched
        latents' firing, ``uniqueness`` (over latents alive here) and the reconstruction metrics
        of :func:`~mindscope.sae.metrics.reconstruction_metrics` (``l0``, ``fve``, ``dead_frac``,
        ``dense_frac``, ``shrinkage``...).
    """
    x, codes = gen.sample(n, seed=seed)
    z = sae.transform(x)  # [n, n_latents]
    x_hat = sae.reconstruct(x)
    m = match_features(gen.features_, sae.decoder_.cpu())
    out = {"mcc": m.mcc, **firing_scores(codes, z.cpu(), m)}
    out["uniqueness"] = uniqueness(gen.features_, sae.decoder_.cpu(), alive=(z > 0).any(0).cpu())
    out.update(reconstruction_metrics(x, x_hat.cpu(), z.cpu()))
    return out


def compare_planted(
    gen: PlantedDictionary,
    archs: list[str] | tuple[str, ...],
    *,
    k: int,
    n_latents: int | None = None,
    steps: int = 1000,
    batch_size: int = 512,
    seed: int = 0,
    n_eval: int = 8192,
    **sae_kwargs: Any,
) -> dict[str, dict[str, float]]:
    """Train every architecture side by side on the same planted batches (one stream, seeded)
    at the same L0 target ``k`` and score each against the truth.

    Returns:
        ``{arch: metrics}`` with :func:`evaluate_planted`'s metrics plus ``train_cpu_s`` (CPU
        seconds of that architecture's steps) and ``null_mcc`` (a random dictionary's MCC).
    """
    import time

    from mindscope.sae.metrics import null_mcc

    width = n_latents or gen.n_features
    models = {
        a: make_sae(a, width, k, n_steps=steps, batch_size=batch_size, seed=seed, **sae_kwargs)
        for a in archs
    }
    source = planted_source(gen, batch_size, seed=seed + 1)
    secs = dict.fromkeys(archs, 0.0)
    for step in range(steps):
        x = source(step)
        for a, m in models.items():
            t0 = time.process_time()
            m.partial_fit(x)
            secs[a] += time.process_time() - t0
    null = null_mcc(gen.features_, width, reps=1, seed=seed)
    out = {}
    for a, m in models.items():
        out[a] = {**evaluate_planted(m, gen, n=n_eval), "train_cpu_s": secs[a], "null_mcc": null}
    return out
