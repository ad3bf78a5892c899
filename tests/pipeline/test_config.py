"""Config schema: examples load; every error names the file, the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_config, parse_config_text

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = load_config(path)
    assert cfg.spec.model.keras_application
    assert cfg.output_path.is_absolute()
    assert cfg.output_path.parent.name == "engines"


def test_resnet50_config_is_the_main_job():
    cfg = load_config(REPO / "configs" / "resnet50.yaml")
    assert cfg.name == "resnet50"
    assert cfg.spec.model.keras_application == "ResNet50"
    assert cfg.spec.inputs[0].shape == [1, 224, 224, 3]


def test_paths_are_relative_to_the_config_file(configs, tmp_path):
    path = configs.write(subdir="nested")
    cfg = load_config(path)
    assert cfg.model_path == path.parent / "model.keras"
    assert cfg.output_path == path.parent / "out" / "m.engine"


def _error(configs, text: str, name="bad.yaml") -> str:
    p = configs.root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    (configs.root / "model.keras").write_bytes(b"x")
    p.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert str(p) in msg, msg  # names the file
    assert "fix:" in msg, msg  # and says how to fix it
    return msg


BASE = """\
model:
  path: model.keras
inputs:
  - {name: x, shape: [1, 8]}
output: out/m.engine
"""


def test_unknown_key_is_named_with_a_suggestion(configs):
    msg = _error(configs, BASE + "buidler:\n  opt_level: 3\n")
    assert "buidler" in msg and "unknown key" in msg and "did you mean 'builder'" in msg
    assert "bad.yaml:6" in msg  # and its line


def test_unknown_nested_key(configs):
    msg = _error(configs, BASE + "verification:\n  tolerance: 0.1\n")
    assert "verification.tolerance" in msg and "allowed keys here" in msg and "atol" in msg


def test_wrong_type_names_key_and_expectation(configs):
    msg = _error(configs, BASE + "builder:\n  opt_level: high\n")
    assert "builder.opt_level" in msg and "'high'" in msg and "integer 0-5" in msg


def test_out_of_range(configs):
    msg = _error(configs, BASE + "builder:\n  opt_level: 9\n")
    assert "builder.opt_level" in msg


def test_missing_model_file(configs):
    p = configs.root / "c.yaml"
    configs.root.mkdir(parents=True, exist_ok=True)
    p.write_text(BASE.replace("model.keras", "nope.keras"))
    with pytest.raises(ConfigError) as info:
        load_config(p)
    msg = str(info.value)
    assert "model.path" in msg and "nope.keras" in msg and "file not found" in msg
    assert "relative paths start at the config file" in msg


def test_missing_npz(configs):
    msg = _error(configs, BASE + "verification:\n  inputs_npz: real.npz\n")
    assert "verification.inputs_npz" in msg and "real.npz" in msg


def test_missing_required_key(configs):
    msg = _error(configs, BASE.replace("output: out/m.engine\n", ""))
    assert "output" in msg and "missing required key" in msg


def test_both_model_sources_is_an_error(configs):
    msg = _error(configs, BASE.replace("  path: model.keras\n", "  path: model.keras\n  keras_application: ResNet50\n"))
    assert "exactly one of model.path or model.keras_application" in msg


def test_duplicate_key(configs):
    msg = _error(configs, BASE + "output: other.engine\n")
    assert "duplicate key" in msg and "output" in msg


def test_yaml_is_parsed_safely(configs):
    msg = _error(configs, BASE + "tags: !!python/object/apply:os.system ['echo pwned']\n")
    assert "not valid YAML" in msg


def test_schedule_validation(configs):
    msg = _error(configs, BASE + "schedule:\n  cron: '0 3 * * *'\n  interval: 60\n")
    assert "exactly one of schedule.cron or schedule.interval" in msg
    msg = _error(configs, BASE + "schedule:\n  cron: 'every day'\n")
    assert "bad cron expression" in msg
    msg = _error(configs, BASE + "schedule:\n  interval: -5\n")
    assert "schedule.interval" in msg


def test_sizes_and_dtypes():
    spec, _, _ = parse_config_text(BASE + "builder:\n  workspace: 512MiB\n")
    assert spec.builder.workspace == 512 * 2**20
    with pytest.raises(ConfigError) as info:
        parse_config_text(BASE.replace("shape: [1, 8]", "shape: [1, 8], dtype: float33"), "x.yaml")
    assert "inputs[0].dtype" in str(info.value)
    with pytest.raises(ConfigError) as info:
        parse_config_text(BASE.replace("[1, 8]", "[1, -1]"), "x.yaml")
    assert "positive" in str(info.value)


def test_empty_and_non_mapping(configs):
    assert "empty" in _error(configs, "")
    assert "expected a mapping" in _error(configs, "- a\n- b\n")
