"""The open world's batched internals: the observation against the maps, creature bookkeeping
after many steps, map reuse, and the observation of a subset of environments."""

from __future__ import annotations

import numpy as np
import pytest

from mindscope.errors import MindscopeError
from mindscope.sandbox.openworld import OpenWorld, OpenWorldVectorEnv
from mindscope.sandbox.openworld.core import OBJECT_CODES


def naive_view(w: OpenWorld, i: int) -> np.ndarray:
    """Env ``i``'s 9x7 view computed cell by cell from ``mat`` and ``occ``."""
    kinds = {1: "player", 2: "cow", 3: "zombie", 4: "supervisor", 5: "plant"}
    out = np.zeros((9, 7), dtype=np.int64)
    x0, y0 = w.pos[i]
    for a in range(9):
        for b in range(7):
            x, y = x0 + a - 4, y0 + b - 3
            if 0 <= x < w.S and 0 <= y < w.S:
                o = int(w.occ[i, x, y])
                out[a, b] = OBJECT_CODES[kinds[o]] if o else int(w.mat[i, x, y])
    return out


def test_view_and_creatures_stay_consistent_over_many_steps():
    w = OpenWorld(48, size=24, cows=6, zombies=4, plants=3, seed=3)
    rng = np.random.default_rng(0)
    for t in range(150):
        res = w.step(rng.integers(0, 17, 48))
        done = res.terminated | res.truncated
        if t % 30 == 29:
            view = w.local_view()
            for i in range(0, 48, 7):
                assert np.array_equal(view[i], naive_view(w, i))
            # every live creature sits on its own cell, the occupancy map holds nothing else
            for i in range(48):
                cells = [tuple(w.pos[i])]
                for kind, pos, alive in (
                    (2, w.cpos, w.calive),
                    (3, w.zpos, w.zalive),
                    (5, w.ppos, w.palive),
                ):
                    live = pos[i][alive[i]]
                    assert (w.occ[i, live[:, 0], live[:, 1]] == kind).all()
                    cells += [tuple(p) for p in live]
                cells.append(tuple(w.spos[i]))
                assert len(set(cells)) == len(cells)
                assert (w.occ[i] != 0).sum() == len(cells)
            # the padding around the maps is never written
            inner = np.zeros(w._matp.shape[1:], dtype=bool)
            inner[4:-4, 4:-4] = True
            assert not w._matp[:, ~inner].any() and not w._occp[:, ~inner].any()
        if done.any():
            w.reset(done)


def test_observe_rows_matches_the_full_observation():
    venv = OpenWorldVectorEnv(6, size=24, seed=0)
    venv.reset(seed=0)
    for _ in range(5):
        venv.step(np.arange(6) % 17)
    w = venv.world
    full = w.observe()
    rows = np.array([4, 1])
    assert np.array_equal(w.observe(rows), full[rows])
    assert np.array_equal(full[:, :63].reshape(6, 9, 7), w.local_view())
    assert np.array_equal(full[:, 63:79], w.inv)


def test_map_reuse_serves_each_map_that_many_times():
    w = OpenWorld(4, size=24, map_pool=4, map_reuse=2, seed=0)
    first = w.mat.copy()
    w.reset()
    assert np.array_equal(w.mat, first)  # the second pass over the same pool
    w.reset()
    assert not np.array_equal(w.mat, first)  # a new pool
    fresh = OpenWorld(4, size=24, map_pool=4, seed=0)
    fresh.reset()
    assert not np.array_equal(fresh.mat, first)
    with pytest.raises(MindscopeError, match="map_reuse must be a positive integer"):
        OpenWorld(1, size=24, map_reuse=0)
