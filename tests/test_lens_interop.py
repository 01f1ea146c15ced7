"""Lenses saved by the real tuned-lens package (0.2.0) load in mindscope and give its outputs.

The fixture (``tests/fixtures/tuned_lens_pkg``, rebuilt by its ``make_fixture.py`` in the
tuned-lens reference venv) holds a tiny random GPT-NeoX model, a lens the package saved for it
(``config.json`` + ``params.pt``, with the package's own ``unembed_hash``) and the logits the
package computed for each layer. Nothing here is written by mindscope's own code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from mindscope.errors import MindscopeError
from mindscope.lenses import TunedLens, residual_stack
from mindscope.models import load_model

FIXTURE = Path(__file__).parent / "fixtures" / "tuned_lens_pkg"


@pytest.fixture(scope="module")
def h():
    return load_model(FIXTURE / "model", device="cpu", dtype="float32")


@pytest.fixture(scope="module")
def expected() -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(FIXTURE / "expected.safetensors"))


def test_package_lens_gives_the_package_logits(h, expected):
    lens = TunedLens.load(FIXTURE / "lens", h)  # checks the package's unembed_hash too
    assert lens.info["source"] == "tuned-lens package"
    ids = expected["input_ids"]
    resid, _ = residual_stack(h, ids)  # [L+1, b, T, d]
    with torch.no_grad():
        for k in range(h.n_layers):
            # mindscope's residual at layer k is the package's input, hidden_states[k]
            torch.testing.assert_close(resid[k], expected[f"hidden_{k}"], atol=1e-5, rtol=0)
            ours = lens.logits(expected[f"hidden_{k}"], k)
            torch.testing.assert_close(ours, expected[f"logits_{k}"], atol=1e-4, rtol=1e-4)
            # the translators are not the identity: the logit lens would differ
            assert (ours - h.logits_from_resid(expected[f"hidden_{k}"])).abs().max() > 0.1


def test_package_lens_for_another_model_is_refused(h, tmp_path):
    lens_dir = tmp_path / "lens"
    shutil.copytree(FIXTURE / "lens", lens_dir)
    config = json.loads((lens_dir / "config.json").read_text())
    (lens_dir / "config.json").write_text(json.dumps({**config, "unembed_hash": "0" * 64}))
    with pytest.raises(MindscopeError, match="another model"):
        TunedLens.load(lens_dir, h)
    config["num_hidden_layers"] += 1
    (lens_dir / "config.json").write_text(json.dumps(config))
    with pytest.raises(MindscopeError, match="layers"):
        TunedLens.load(lens_dir, h)
