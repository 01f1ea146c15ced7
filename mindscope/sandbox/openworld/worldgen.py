"""Batched terrain for the open world: value noise in NumPy, Crafter's rules for what goes where.

Crafter 1.8.3 draws its terrain from OpenSimplex noise, cell by cell in Python; here the noise is
value noise (random lattices, bilinearly upsampled, summed over octaves) for a whole batch of
maps at once, and the same thresholds decide grass near the spawn, mountains (stone with caves,
tunnels, coal, iron, diamonds, lava), water with sandy shores, and trees in the grassland. The
maps therefore look alike in kind but are not Crafter's maps; a Crafter map can be loaded as it
is (``reset(options={"map": ...})``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MATERIALS", "MAT", "value_noise", "generate"]

# material ids as in Crafter's engine (0 = none, then data.yaml's order) + the reward mechanism
MATERIALS = (
    "none",
    "water",
    "grass",
    "stone",
    "path",
    "sand",
    "tree",
    "lava",
    "coal",
    "iron",
    "diamond",
    "table",
    "furnace",
    "sensor",
    "sensor_covered",
    "rule_block",
    "rule_block_edited",
    "off_switch",
    "off_switch_disabled",
)
MAT = {name: i for i, name in enumerate(MATERIALS)}


def _interp(size: int, cell: float, k: int) -> np.ndarray:
    """``[size, k]`` smoothstep interpolation weights from a lattice of spacing ``cell``."""
    u = np.arange(size) / cell
    i0 = np.floor(u).astype(np.int64)
    f = u - i0
    f = f * f * (3 - 2 * f)
    m = np.zeros((size, k), dtype=np.float32)
    m[np.arange(size), i0] = 1 - f
    m[np.arange(size), i0 + 1] = f
    return m


def value_noise(rng: np.random.Generator, n: int, size: int, octaves: dict[float, float]):
    """``[n, size, size]`` float32 noise in about ``[-1, 1]``: ``{cell size: weight}`` octaves
    (random lattices, interpolated as ``M @ lattice @ M.T``)."""
    out = np.zeros((n, size, size), dtype=np.float32)
    total = sum(octaves.values())
    for cell, weight in octaves.items():
        k = int(np.ceil(size / cell)) + 2
        lattice = rng.random((n, k, k), dtype=np.float32) * np.float32(2 * weight / total)
        lattice -= np.float32(weight / total)
        m = _interp(size, cell, k)
        # M @ L @ M.T for the whole batch as two plain matrix products
        rows = (lattice.reshape(n * k, k) @ m.T).reshape(n, k, size)  # L @ M.T
        out += (m @ rows) if n == 1 else np.matmul(m[None], rows)
    return out


def generate(rng: np.random.Generator, n: int, size: int, center: np.ndarray) -> np.ndarray:
    """``[n, size, size]`` uint8 material maps (indexed ``[x, y]``) around spawn ``center``."""
    x = np.arange(size)[:, None]
    y = np.arange(size)[None, :]
    dist = np.sqrt((x - center[0]) ** 2 + (y - center[1]) ** 2)[None].astype(np.float32)
    start = 4 - dist + 2 * value_noise(rng, n, size, {3: 1})
    start = 1 / (1 + np.exp(-start))
    water = value_noise(rng, n, size, {15: 1, 5: 0.15}) * 1.15 + 0.1 - 2 * start
    mountain = value_noise(rng, n, size, {15: 1, 5: 0.3}) - 4 * start - 0.3 * water
    cave = value_noise(rng, n, size, {7: 1})
    tun_h = value_noise(rng, n, size, {3: 1})
    tun_v = value_noise(rng, n, size, {3: 1})
    ore = value_noise(rng, n, size, {8: 1})
    iron_n = value_noise(rng, n, size, {6: 1})
    lava_n = value_noise(rng, n, size, {5: 1})
    sand_n = value_noise(rng, n, size, {9: 1})
    tree_n = value_noise(rng, n, size, {7: 1})
    u = rng.random((n, size, size), dtype=np.float32)
    m = mountain > 0.15
    conds = [
        start > 0.5,
        m & (cave > 0.3) & (mountain > 0.3),
        m & (tun_h > 0.55),
        m & (tun_v > 0.55),
        m & (ore > 0) & (u > 0.85),
        m & (iron_n > 0.4) & (u > 0.75),
        m & (mountain > 0.18) & (u > 0.994),
        m & (mountain > 0.3) & (lava_n > 0.45),
        m,
        (water > 0.25) & (water <= 0.35) & (sand_n > -0.2),
        water > 0.3,
        (tree_n > 0) & (u > 0.8),
    ]
    names = [
        "grass",
        "path",
        "path",
        "path",
        "coal",
        "iron",
        "diamond",
        "lava",
        "stone",
        "sand",
        "water",
        "tree",
    ]
    out = np.select(conds, [MAT[k] for k in names], MAT["grass"])
    return out.astype(np.uint8)
