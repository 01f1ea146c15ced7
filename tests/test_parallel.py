"""The one parallel backend: task order, shared arguments, chaining, one-line errors, and the
same results in this process and on Ray (a sandbox study over seeds)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest

from mindscope.errors import MindscopeError
from mindscope.parallel import RayPool, run_tasks


def _draw(task: int, scale: float = 1.0, previous: float | None = None) -> float:
    """A seeded draw, scaled, plus the predecessor's result."""
    return float(np.random.default_rng(task).random()) * scale + (previous or 0.0)


def test_inprocess_order_shared_chaining_and_progress() -> None:
    seen: list[int] = []
    got = run_tasks(_draw, [5, 1, 3], shared={"scale": 2.0}, progress=lambda i, r: seen.append(i))
    assert got == [_draw(5, 2.0), _draw(1, 2.0), _draw(3, 2.0)] and seen == [0, 1, 2]
    chained = run_tasks(_draw, [5, 1, 3], after=[None, 0, 1])
    assert chained[2] == pytest.approx(_draw(5) + _draw(1) + _draw(3))
    assert chained[0] == _draw(5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"backend": "dask"}, "unknown backend 'dask'"),
        ({"after": [None, 1]}, "only an earlier task"),
        ({"after": [None]}, "after has 1 entries for 2 tasks"),
        ({"address": "127.0.0.1:9"}, "for the ray backend"),
    ],
)
def test_bad_arguments_are_one_line_errors(kwargs: dict, match: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(MindscopeError, match=match) as exc:
        run_tasks(_draw, [0, 1], **kwargs)
    assert "\n" not in str(exc.value)


def test_missing_ray_is_refused_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(MindscopeError, match=r"pip install 'mindscope\[ray\]'"):
        run_tasks(_draw, [0], backend="ray")


def _without_timings(rows: list) -> pd.DataFrame:  # type: ignore[type-arg]
    from mindscope.results import to_frame

    df = to_frame(rows)
    return df[~df.metric.str.endswith("_seconds_per_seed")].reset_index(drop=True)


def test_ray_gives_the_inprocess_results(tmp_path: object) -> None:
    pytest.importorskip("ray")  # the optional `ray` extra (installed by `dev`)
    from mindscope.sandbox.experiments import study

    def draw(task: int, scale: float = 1.0, previous: float | None = None) -> float:
        # defined here, so Ray's workers receive it by value
        return float(np.random.default_rng(task).random()) * scale + (previous or 0.0)

    kw = dict(steps=1024, num_envs=8, eval_episodes=16, seeds=[0, 1])
    ref = study("absent_supervisor", "q_learning", **kw)  # type: ignore[arg-type]
    keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "PYTHONPATH")
    env_before = {k: os.environ.get(k) for k in (*keys, "MINDSCOPE_HOME", "TOKENIZERS_PARALLELISM")}
    with RayPool(num_cpus=2) as pool:
        got = pool.map(draw, [5, 1, 3], shared={"scale": 2.0}, after=[None, 0, None])
        assert got == run_tasks(draw, [5, 1, 3], shared={"scale": 2.0}, after=[None, 0, None])
        # the library's seed loop joins the running instance
        res = study("absent_supervisor", "q_learning", backend="ray", **kw)  # type: ignore[arg-type]
    # the workers' environment went through Ray's runtime_env: this process's is untouched
    assert {k: os.environ.get(k) for k in env_before} == env_before
    pd.testing.assert_frame_equal(_without_timings(res.rows), _without_timings(ref.rows))
    for a, b in zip(res.agents, ref.agents, strict=True):
        assert np.array_equal(a.q_, b.q_) and a.index == b.index
