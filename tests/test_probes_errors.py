"""Bad input gets a clear MindscopeError (a ValueError) naming the problem."""

from __future__ import annotations

import pytest
import torch

from mindscope.errors import MindscopeError
from mindscope.probes import (
    CcsReporter,
    CrcReporter,
    DiffMeanReporter,
    LdaReporter,
    LogisticReporter,
    load_reporter,
)
from mindscope.probes.synthetic import planted_pairs

SUPERVISED = [LogisticReporter, DiffMeanReporter, LdaReporter]


@pytest.fixture(scope="module")
def xy():
    x, y, _ = planted_pairs(60, d=6, layers=2, seed=0)
    return x, y


@pytest.mark.parametrize("klass", SUPERVISED)
def test_supervised_needs_labels(xy, klass):
    x, _ = xy
    with pytest.raises(MindscopeError, match="needs labels"):
        klass().fit(x)
    with pytest.raises(MindscopeError, match="both classes"):
        klass().fit(x, torch.ones(60, dtype=torch.long))
    with pytest.raises(MindscopeError, match="-1"):
        klass().fit(x, -torch.ones(60, dtype=torch.long))


@pytest.mark.parametrize("klass", [CcsReporter, CrcReporter])
def test_unsupervised_runs_without_or_with_unknown_labels(xy, klass):
    x, _ = xy
    assert klass().fit(x).predict_proba(x).shape == (2, 60)
    assert not klass().fit(x, -torch.ones(60, dtype=torch.long)).labels_used_


def test_nan_inf_rejected_with_count(xy):
    x, y = xy
    bad = x.clone()
    bad[0, 0, 0, :3] = float("nan")
    bad[1, 5, 1, 0] = float("inf")
    with pytest.raises(MindscopeError, match="4 NaN/inf"):
        DiffMeanReporter().fit(bad, y)
    rep = DiffMeanReporter().fit(x, y)
    with pytest.raises(MindscopeError, match="NaN/inf"):
        rep.predict_proba(bad)


def test_bad_shapes(xy):
    x, y = xy
    with pytest.raises(MindscopeError, match=r"\[layers, n, 2, d\]"):
        DiffMeanReporter().fit(torch.randn(2, 10, 3, 4), torch.randint(0, 2, (10,)))
    with pytest.raises(MindscopeError, match="shape"):
        DiffMeanReporter().fit(torch.randn(5), y)
    with pytest.raises(MindscopeError, match=r"labels must have shape \[60\]"):
        DiffMeanReporter().fit(x, y[:-1])
    with pytest.raises(MindscopeError, match="contrast pairs"):
        CcsReporter().fit(x[:, :, 0])  # single texts: CCS needs pairs
    with pytest.raises(MindscopeError, match="0/1"):
        DiffMeanReporter().fit(x, y * 3)


def test_width_and_layer_mismatch_on_predict(xy):
    x, y = xy
    rep = LogisticReporter(C=1.0).fit(x, y)
    with pytest.raises(MindscopeError, match="width 6"):
        rep.predict_proba(torch.randn(2, 10, 2, 7))
    with pytest.raises(MindscopeError, match="2 layers"):
        rep.predict_proba(torch.randn(3, 10, 2, 6))
    with pytest.raises(MindscopeError, match="2 layers"):
        rep.predict_proba(x[0])
    with pytest.raises(MindscopeError, match="contrast pairs"):
        rep.predict_proba(x[:, :, 0])
    with pytest.raises(MindscopeError, match="not fitted"):
        LogisticReporter().predict_proba(x)


def test_load_refuses_other_width_and_meta(xy, tmp_path):
    x, y = xy
    DiffMeanReporter().fit(x, y).save(tmp_path / "r", meta={"model": "a"})
    with pytest.raises(MindscopeError, match="width 6, not 8"):
        load_reporter(tmp_path / "r", d_in=8)
    with pytest.raises(MindscopeError, match="model='a'"):
        load_reporter(tmp_path / "r", expect_meta={"model": "b"})
    with pytest.raises(MindscopeError, match="not a LdaReporter"):
        LdaReporter.load(tmp_path / "r")
    with pytest.raises(FileNotFoundError):
        load_reporter(tmp_path / "nothing")
    (tmp_path / "r" / "config.json").write_text("{broken")
    with pytest.raises(MindscopeError, match="not valid JSON"):
        load_reporter(tmp_path / "r")


def test_bad_hyper_parameters():
    with pytest.raises(MindscopeError):
        LogisticReporter(C=-1.0)
    with pytest.raises(MindscopeError):
        LogisticReporter(cv=1)
    with pytest.raises(MindscopeError):
        LdaReporter(shrinkage=2.0)
    with pytest.raises(MindscopeError):
        CcsReporter(n_restarts=0)
    assert issubclass(MindscopeError, ValueError)
