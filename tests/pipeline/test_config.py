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


# ------------------------------------------------------------------ verification.input_ranges / input_values

RANGES = BASE.replace("{name: x, shape: [1, 8]}", "{name: x, shape: [1, 8]}\n  - {name: m, shape: [1, 8], dtype: bool}")


def test_input_ranges_and_values_load(configs):
    p = configs.root / "ok.yaml"
    configs.root.mkdir(parents=True, exist_ok=True)
    (configs.root / "model.keras").write_bytes(b"x")
    p.write_text(RANGES + "verification:\n  input_ranges: {x: [0, 2]}\n  input_values: {m: true}\n")
    v = load_config(p).spec.verification
    assert v.input_ranges == {"x": (0.0, 2.0)} and v.input_values == {"m": True}


def test_input_range_low_not_below_high(configs):
    msg = _error(configs, RANGES + "verification:\n  input_ranges: {x: [2, 2]}\n")
    assert "verification.input_ranges" in msg and "LOW must be below HIGH for x" in msg and "bad.yaml:8" in msg


def test_input_range_needs_two_numbers(configs):
    msg = _error(configs, RANGES + "verification:\n  input_ranges: {x: [0]}\n")
    assert "verification.input_ranges" in msg and "x: expected [LOW, HIGH], two numbers" in msg


def test_input_value_must_be_a_number(configs):
    msg = _error(configs, RANGES + "verification:\n  input_values: {m: yes please}\n")
    assert "verification.input_values" in msg and "m: expected one number or true/false" in msg


def test_input_range_for_an_unknown_input(configs):
    msg = _error(configs, RANGES + "verification:\n  input_ranges:\n    segment_ids: [0, 2]\n")
    assert "verification.input_ranges.segment_ids" in msg and "not one of the inputs (m, x)" in msg
    assert "bad.yaml:9" in msg


def test_range_and_value_for_one_input(configs):
    msg = _error(configs, RANGES + "verification:\n  input_ranges: {x: [0, 2]}\n  input_values: {x: 1}\n")
    assert "both input_ranges and input_values name x" in msg


def test_ranges_and_npz_conflict(configs):
    configs.root.mkdir(parents=True, exist_ok=True)
    (configs.root / "in.npz").write_bytes(b"x")
    msg = _error(configs, RANGES + "verification:\n  inputs_npz: in.npz\n  input_ranges: {x: [0, 2]}\n")
    assert "inputs_npz and input_ranges/input_values were both given" in msg


def _text_model_config(d: Path, verification: str) -> Path:
    (d / "c.yaml").write_text(
        "model: {path: m.keras}\ninputs:\n"
        "  - {name: token_ids, shape: [1, 8], dtype: int32}\n"
        "  - {name: segment_ids, shape: [1, 8], dtype: int32}\n"
        "  - {name: padding_mask, shape: [1, 8], dtype: bool}\n"
        f"verification:\n{verification}output: out/m.engine\n")
    return d / "c.yaml"


def test_config_input_ranges_reach_verification(tmp_path):
    """A keras-hub-style model (token_ids, segment_ids with 2 embedding rows, padding_mask) built through
    all stages: the config's range is in verify's key only when set, changing it reruns verify alone, and
    a range the model rejects is the bad-input error naming segment_ids (exit 2), not a crash."""
    import sys

    sys.path.insert(0, str(REPO / "tests" / "converter"))
    from text_models import embedding_classifier

    from pipeline.backend import ConverterBackend
    from pipeline.stages import StageContext, components, run_build, run_stage
    from pipeline.store import ArtifactStore

    embedding_classifier().save(tmp_path / "m.keras")
    store = tmp_path / "artifacts"

    def build(verification: str):
        ctx = StageContext(load_config(_text_model_config(tmp_path, verification)), ArtifactStore(store),
                           ConverterBackend())
        seen = {}

        def runner(stage, upstream):
            seen[stage] = upstream
            return run_stage(stage, ctx, upstream)

        summary = run_build(ctx, runner=runner)
        return summary, {s["name"]: s for s in summary["stages"]}, lambda: components("verify", ctx, seen["verify"])

    summary, stages, key = build("  seed: 0\n")
    assert summary["ok"], summary
    assert not any(k.startswith("verification.input") for k in key()["config"])

    summary, stages, key = build("  input_ranges: {segment_ids: [0, 2]}\n  input_values: {padding_mask: true}\n")
    assert summary["ok"] and summary["verification"]["passed"], summary
    assert [n for n, s in stages.items() if s["status"] == "built"] == ["verify"]
    config = key()["config"]
    assert config["verification.input_ranges"] == {"segment_ids": (0.0, 2.0)}
    assert config["verification.input_values"] == {"padding_mask": True}

    summary, stages, _ = build("  input_ranges: {segment_ids: [0, 5]}\n")
    assert not summary["ok"] and summary["exit_code"] == 2, summary
    assert stages["verify"]["status"] == "failed"
    assert "segment_ids: random integers in [0, 5) (given)" in stages["verify"]["reason"]
    assert "not in [0, 2)" in stages["verify"]["reason"]
