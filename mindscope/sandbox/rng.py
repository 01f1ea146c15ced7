"""Counter-based random numbers: one independent stream per environment of a batch.

Every draw is a pure function of ``(env key, episode, step, draw id, lane)`` hashed with
SplitMix64, so environment ``i`` sees the same numbers whatever the batch size and whatever the
other environments do; that makes a batch bit-reproducible for a seed at any size.
"""

from __future__ import annotations

import secrets

import numpy as np

__all__ = ["mix64", "env_keys", "uniform", "check_seed"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_C_EP = np.uint64(0xD6E8FEB86659FD93)
_C_T = np.uint64(0xA0761D6478BD642F)
_C_DRAW = np.uint64(0xE7037ED1A0B428DB)


def mix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of a ``uint64`` array (wrapping arithmetic), same shape."""
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def check_seed(seed: object) -> int | None:
    """Return ``seed`` as an int (or None); anything else raises a one-line SandboxError."""
    from mindscope.sandbox.errors import SandboxError

    if seed is None:
        return None
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise SandboxError(f"seed must be an integer or None, got {type(seed).__name__} {seed!r}")
    return int(seed)


def env_keys(seed: int | None, index: np.ndarray) -> np.ndarray:
    """Per-environment keys ``[n] uint64`` for environments ``index`` of a batch seeded ``seed``.

    ``seed=None`` draws fresh entropy from the operating system.
    """
    if seed is None:
        seed = secrets.randbits(64)
    base = mix64(np.array([seed % (1 << 64)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return mix64(base + (np.asarray(index, dtype=np.uint64) + np.uint64(1)) * _GOLDEN)


def uniform(
    keys: np.ndarray, episode: np.ndarray, t: np.ndarray, draw: int, lanes: int = 0
) -> np.ndarray:
    """Uniform floats in ``[0, 1)``: ``[n]`` if ``lanes == 0`` else ``[n, lanes]``.

    ``keys``, ``episode``, ``t``: ``[n]``; ``draw`` names the purpose of the draw within a step.
    """
    with np.errstate(over="ignore"):
        c = (
            episode.astype(np.uint64) * _C_EP
            + t.astype(np.uint64) * _C_T
            + np.uint64(draw + 1) * _C_DRAW
        )
        if lanes:
            c = c[:, None] + np.arange(1, lanes + 1, dtype=np.uint64)[None, :] * _GOLDEN
            h = mix64(keys[:, None] ^ mix64(c))
        else:
            h = mix64(keys ^ mix64(c))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
