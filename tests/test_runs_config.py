"""The run config: every bad input gives a one-line error before any model is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from mindscope.cli import main
from mindscope.errors import ConfigError
from mindscope.runs.config import (
    ElicitConfig,
    LensConfig,
    ModelConfig,
    RunConfig,
    config_template,
    field_docs,
    from_dict,
    load_config,
    to_dict,
)


def _write(tmp_path: Path, data: object, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data) if name.endswith(".yaml") else json.dumps(data))
    return path


def _error(tmp_path: Path, data: object, name: str = "run.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, data, name))
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(name)
    return msg


@pytest.mark.parametrize("cls", [RunConfig, ModelConfig, LensConfig, ElicitConfig])
def test_every_field_has_a_docstring(cls: type) -> None:
    docs = field_docs(cls)
    for name in cls.model_fields:
        assert len(docs.get(name, "")) > 10, f"{cls.__name__}.{name} has no description"


def test_template_round_trips_to_the_defaults(tmp_path: Path) -> None:
    text = config_template()
    assert "# Reporters to fit" in text
    cfg = from_dict(yaml.safe_load(text))
    assert cfg == RunConfig()
    loaded = load_config(_write(tmp_path, yaml.safe_load(text)))
    assert loaded.output_dir == str((tmp_path / "runs").resolve())


def test_empty_file_means_all_defaults(tmp_path: Path) -> None:
    (tmp_path / "empty.yaml").write_text("")
    cfg = load_config(tmp_path / "empty.yaml")
    assert (
        cfg.model.name == "organism:pocket-lm" and cfg.elicit.methods == RunConfig().elicit.methods
    )


def test_unknown_key_suggests_the_close_match(tmp_path: Path) -> None:
    msg = _error(tmp_path, {"elicit": {"method": ["lr"]}})
    assert msg == "run.yaml: elicit.method: unknown key 'method'; did you mean 'methods'?"
    msg = _error(tmp_path, {"zzz": 1})
    assert "unknown key 'zzz'; known keys: name, model, lens" in msg


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"lens": {"steps": "many"}}, "lens.steps: expected int or null, got str 'many'"),
        ({"lens": {"steps": True}}, "lens.steps: expected int or null, got bool True"),
        ({"lens": {"max_steps": 2.0}}, "lens.max_steps: expected int, got float 2.0"),
        ({"seed": 1.5}, "seed: expected int, got float 1.5"),
        ({"model": "gpt2"}, "model: expected mapping, got str 'gpt2'"),
        ({"elicit": {"layers": [1, "a"]}}, "elicit.layers: expected str or list of int"),
        ({"elicit": {"methods": "lr"}}, "elicit.methods: expected list of str, got str 'lr'"),
        ({"lens": {"enabled": "yes"}}, "lens.enabled: expected bool, got str 'yes'"),
    ],
)
def test_wrong_types(tmp_path: Path, data: dict, expected: str) -> None:
    assert expected in _error(tmp_path, data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"lens": {"train_text": "corpus.txt"}}, "lens.train_text: file not found: "),
        ({"model": {"name": "./my-model"}}, "model.name: model folder not found: "),
        ({"elicit": {"dataset": "pairs.jsonl"}}, "neither a built-in dataset"),
        ({"elicit": {"dataset": "quirky_arith"}}, "did you mean 'quirky-arith'?"),
    ],
)
def test_missing_files(tmp_path: Path, data: dict, expected: str) -> None:
    msg = _error(tmp_path, data)
    assert expected in msg
    assert str(tmp_path) in msg or "quirky" in msg


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "cfgs"
    sub.mkdir()
    (sub / "corpus.txt").write_text("hello world\n")
    lines = [json.dumps({"prompt": f"x{i}", "label": i % 2}) for i in range(8)]
    (sub / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    cfg = load_config(
        _write(
            sub,
            {
                "lens": {"train_text": "corpus.txt"},
                "elicit": {"dataset": "pairs.jsonl"},
                "output_dir": "out",
            },
        )
    )
    assert cfg.lens.train_text == str(sub / "corpus.txt")
    assert cfg.elicit.dataset == str(sub / "pairs.jsonl")
    assert cfg.output_dir == str(sub / "out")


@pytest.mark.parametrize(
    ("hf_config", "expected"),
    [
        ({"model_type": "t5", "is_encoder_decoder": True}, "unsupported model: .* encoder-decoder"),
        ({"model_type": "no-such-arch"}, "unsupported model: .* model_type 'no-such-arch'"),
    ],
)
def test_unsupported_local_model(tmp_path: Path, hf_config: dict, expected: str) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text(json.dumps(hf_config))
    with pytest.raises(ConfigError, match=expected):
        load_config(_write(tmp_path, {"model": {"name": "m"}}))


def test_model_folder_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    assert "has no config.json" in _error(tmp_path, {"model": {"name": "./m"}})


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"model": {"name": "not a model!"}}, "is not a hub id"),
        ({"model": {"name": "organism:pocket"}}, "did you mean 'organism:pocket-lm'?"),
        ({"elicit": {"model": "organism:quirky"}}, "elicit.model: unknown organism 'quirky'"),
        ({"model": {"name": "a/b"}, "lens": {"train_text": None}}, "lens.train_text: required"),
        ({"model": {"device": "gpu"}}, "unsupported device 'gpu'"),
        ({"model": {"dtype": "int3"}}, "unsupported dtype 'int3'"),
        ({"elicit": {"methods": ["lr", "ccss"]}}, "methods[1]: unknown reporter 'ccss'"),
        ({"elicit": {"methods": []}}, "at least one reporter"),
        ({"elicit": {"layers": "some"}}, "expected 'all' or a list of ints"),
        ({"elicit": {"layers": [-1]}}, "ints >= 0"),
        ({"elicit": {"read": "answer"}}, "elicit.read: expected 'completion' or 'prompt'"),
        ({"elicit": {"read": "prompt", "methods": ["lr", "ccs"]}}, "ccs need contrast pairs"),
        ({"lens": {"steps": 0}}, "lens.steps: must be >= 1"),
        ({"name": "a/b"}, "name: 'a/b' must be"),
        ({"lens": {"enabled": False}, "elicit": {"enabled": False}}, "nothing to run"),
    ],
)
def test_bad_values(tmp_path: Path, data: dict, expected: str) -> None:
    assert expected in _error(tmp_path, data)


def test_json_configs_and_syntax_errors(tmp_path: Path) -> None:
    assert load_config(_write(tmp_path, {"seed": 3}, "run.json")).seed == 3
    (tmp_path / "bad.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="^bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path / "list.yaml")


def test_to_dict_is_plain_data_and_validation_does_not_mutate(tmp_path: Path) -> None:
    cfg = RunConfig(output_dir="out")
    from mindscope.runs.config import validate

    resolved = validate(cfg, tmp_path)
    assert cfg.output_dir == "out" and resolved.output_dir == str(tmp_path / "out")
    assert yaml.safe_load(yaml.safe_dump(to_dict(resolved))) == to_dict(resolved)


def test_cli_run_rejects_a_bad_config_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mindscope.runs.pipeline as pipeline

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("the pipeline must not start")

    monkeypatch.setattr(pipeline, "run_pipeline", boom)
    path = _write(tmp_path, {"lens": {"step": 10}})
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        err == "mindscope: error: run.yaml: lens.step: unknown key 'step'; did you mean 'steps'?\n"
    )
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_cli_run_template_and_check(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["run", "--template"]) == 0
    template = capsys.readouterr().out
    path = tmp_path / "t.yaml"
    path.write_text(template)
    assert main(["run", str(path), "--check", "--output-dir", str(tmp_path / "o")]) == 0
    resolved = yaml.safe_load(capsys.readouterr().out)
    assert resolved["output_dir"] == str(tmp_path / "o")
    assert resolved["elicit"]["methods"] == RunConfig().elicit.methods


def test_reporter_keys_match_the_probes_package() -> None:
    from mindscope.probes.evaluation import METHODS
    from mindscope.runs.config import REPORTER_METHODS

    assert set(REPORTER_METHODS) == set(METHODS)


def test_demo_config_is_valid_and_reads_both_organisms(tmp_path: Path) -> None:
    from mindscope.runs.config import validate
    from mindscope.runs.pipeline import demo_config

    full, quick = demo_config(str(tmp_path)), demo_config(str(tmp_path), quick=True)
    for cfg in (full, quick):
        assert validate(cfg, tmp_path) == cfg
        assert cfg.model.name == "organism:pocket-lm"
        assert cfg.elicit.model == "organism:quirky-arith"
        assert cfg.lens.enabled and cfg.elicit.enabled and cfg.elicit.transfer
    assert quick.lens.steps < full.lens.steps and quick.elicit.n < full.elicit.n


def test_cli_demo_builds_its_config_and_prints_the_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd

    import mindscope.runs.pipeline as pipeline
    from mindscope.results import Row, to_frame
    from mindscope.runs import RunFolder
    from mindscope.testing import example_table

    seen: list[RunConfig] = []

    def fake_run(cfg: RunConfig, **kw: object) -> RunFolder:  # the organisms are not trained here
        seen.append(cfg)
        folder = RunFolder.create(cfg.output_dir, cfg.name, seed=cfg.seed)
        extra = to_frame([Row("acc", 0.8, "lr", 1, dataset="quirky-arith", split="test")])
        folder.write_results(pd.concat([example_table(n_layers=2, steps=()), extra]))
        folder.write_report()
        folder.finish()
        return folder

    monkeypatch.setattr(pipeline, "run_pipeline", fake_run)
    argv = ["demo", "--quick", "--output-dir", str(tmp_path), "--seed", "3", "--device", "cpu"]
    assert main(argv) == 0
    (cfg,) = seen
    assert (cfg.seed, cfg.model.device, cfg.output_dir) == (3, "cpu", str(tmp_path))
    assert cfg.lens.steps == pipeline.demo_config(quick=True).lens.steps
    out = capsys.readouterr().out
    (folder,) = tmp_path.iterdir()
    assert out.splitlines()[0].split() == [
        "metric",
        "method",
        "dataset",
        "split",
        "best",
        "95%",
        "CI",
        "where",
        "mean",
        "flag",
    ]
    assert f"report:     {folder / 'report.html'}" in out
    lines = out.splitlines()
    assert any(line.startswith("auroc ") for line in lines)
    assert not any(line.startswith("acc ") for line in lines)  # headline metrics only


def test_pair_only_methods_are_the_reporters_that_refuse_single_texts() -> None:
    import torch

    from mindscope.errors import MindscopeError
    from mindscope.probes.evaluation import METHODS, make_reporter
    from mindscope.runs.config import PAIR_ONLY_METHODS

    torch.manual_seed(0)
    x, y = torch.randn(2, 40, 8), torch.arange(40) % 2  # [layers, n, d]: prompts alone
    refused = set()
    for method in METHODS:
        try:
            make_reporter(method).fit(x, y)
        except MindscopeError:
            refused.add(method)
    assert refused == set(PAIR_ONLY_METHODS)


# ----------------------------------------------------------------------------- item 4 of issue 10


def _tiny_model_dir(tmp_path: Path, n_layers: int = 2) -> Path:
    """A model folder holding only config.json: enough for `--check` (no weights are read)."""
    from mindscope.testing import tiny_config

    d = tmp_path / "model"
    tiny_config("gpt_neox", 70, n_layers=n_layers).save_pretrained(d)
    return d


def test_check_catches_a_layer_out_of_range_from_config_json(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _tiny_model_dir(tmp_path, n_layers=2)
    data = {"model": {"name": "model"}, "lens": {"enabled": False}, "elicit": {"layers": [0, 3]}}
    path = _write(tmp_path, data)
    assert main(["run", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "elicit.layers: layer 3 does not exist" in err and "has layers 0..2" in err
    data["elicit"]["layers"] = [0, 2]
    assert main(["run", str(_write(tmp_path, data)), "--check"]) == 0
    # organisms know their layer count without being trained or loaded
    msg = _error(tmp_path, {"elicit": {"model": "organism:quirky-arith", "layers": [7]}})
    assert "layer 7 does not exist; organism:quirky-arith has layers 0..6" in msg


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([{"statement": "x", "label": 1}] * 8, "record has no 'prompt' field"),
        ([{"prompt": "x"}] * 8, "no record has the label field 'label'"),
        ([{"prompt": "x", "label": 1}] * 3, "need at least 8 contrast pairs, got 3"),
        ([{"prompt": "x", "label": "maybe"}] * 8, "record 1"),
    ],
)
def test_check_catches_a_dataset_with_wrong_fields(
    tmp_path: Path, capsys: pytest.CaptureFixture, lines: list, expected: str
) -> None:
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    path = _write(tmp_path, {"lens": {"enabled": False}, "elicit": {"dataset": "pairs.jsonl"}})
    assert main(["run", str(path), "--check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mindscope: error: run.yaml: elicit.dataset: ") and err.count("\n") == 1
    assert expected in err


def test_raw_records_with_a_template_and_the_facts_dataset_are_accepted(tmp_path: Path) -> None:
    rows = [{"statement": f"s{i}", "label": i % 2} for i in range(10)]
    (tmp_path / "raw.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elicit = {"dataset": "raw.jsonl", "template": "{statement}", "position": "mean"}
    cfg = load_config(_write(tmp_path, {"lens": {"enabled": False}, "elicit": elicit}))
    assert (cfg.elicit.template, cfg.elicit.position) == ("{statement}", "mean")
    cfg = load_config(
        _write(tmp_path, {"lens": {"enabled": False}, "elicit": {"dataset": "facts"}})
    )
    assert cfg.elicit.dataset == "facts"
    msg = _error(tmp_path, {"elicit": {"template": "nope"}})
    assert "elicit.template: unknown template 'nope'" in msg


def test_the_template_is_generated_from_the_field_descriptions() -> None:
    text = config_template()
    for cls in (RunConfig, ModelConfig, LensConfig, ElicitConfig):
        for doc in field_docs(cls).values():
            assert "# " + doc.replace("``", "") in text
    assert "\n  position: last\n" in text and "\n  template: null\n" in text
