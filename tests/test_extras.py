"""A missing optional extra is refused in one line, before any work starts."""

from __future__ import annotations

import importlib
import sys

import pytest

from mindscope.cli import main
from mindscope.errors import MindscopeError
from mindscope.extras import EXTRAS, missing, require


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import name`` fail as if the package were not installed."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


def _one_line_refusal(capsys: pytest.CaptureFixture[str], extra: str) -> None:
    out = capsys.readouterr()
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert lines[0].startswith("mindscope: error: ")
    assert f"pip install 'mindscope[{extra}]'" in lines[0]
    assert "Traceback" not in out.err + out.out


def test_extras_map_matches_pyproject() -> None:
    tomllib = importlib.import_module("tomllib")
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = pyproject["project"]["optional-dependencies"]
    assert set(EXTRAS) <= set(declared)


@pytest.mark.parametrize("extra", sorted(EXTRAS))
def test_require_names_the_pip_install(monkeypatch: pytest.MonkeyPatch, extra: str) -> None:
    _hide(monkeypatch, *EXTRAS[extra])
    with pytest.raises(MindscopeError, match=rf"pip install 'mindscope\[{extra}\]'") as exc:
        require(extra, what="the feature")
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("the feature needs the ")
    assert missing(*EXTRAS[extra]) == list(EXTRAS[extra])


def test_require_passes_when_installed_and_rejects_unknown_extras() -> None:
    require("report")  # plotly is in the dev extra the tests run with
    assert missing("json", "no_such_module_xyz") == ["no_such_module_xyz"]
    with pytest.raises(MindscopeError, match="unknown extra 'nope'"):
        require("nope")


def test_demo_refuses_before_any_compute(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import mindscope.runs.pipeline as pipeline

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the demo started computing without plotly")

    monkeypatch.setattr(pipeline, "run_pipeline", boom)
    monkeypatch.setattr(pipeline, "demo_config", boom)
    _hide(monkeypatch, "plotly")
    assert main(["demo", "--quick"]) == 2
    _one_line_refusal(capsys, "report")


def test_report_command_refuses_without_plotly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    _hide(monkeypatch, "plotly")
    assert main(["report", str(tmp_path)]) == 2
    _one_line_refusal(capsys, "report")


def test_sandbox_commands_refuse_without_gymnasium(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _hide(monkeypatch, "gymnasium")
    assert main(["sandbox", "list"]) == 2
    _one_line_refusal(capsys, "sandbox")


def test_sandbox_package_refuses_without_gymnasium(monkeypatch: pytest.MonkeyPatch) -> None:
    _hide(monkeypatch, "gymnasium")
    monkeypatch.delitem(sys.modules, "mindscope.sandbox", raising=False)
    with pytest.raises(MindscopeError, match=r"pip install 'mindscope\[sandbox\]'"):
        importlib.import_module("mindscope.sandbox")


def test_ray_backend_refuses_without_ray(monkeypatch: pytest.MonkeyPatch) -> None:
    from mindscope.sweeps.backends import make_backend

    _hide(monkeypatch, "ray")
    with pytest.raises(MindscopeError, match=r"pip install 'mindscope\[ray\]'"):
        make_backend("ray", None, 1)
