"""Optimization profiles in build configs: validated like the rest of the config, keyed only when given, and
frozen into a dynamic network by the real backend."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, load_config

BASE = """\
model:
  path: model.keras
inputs:
{inputs}
output: out/m.engine
"""

PROFILED = """\
  - name: image
    profiles:
      - {min: [1, 16, 16, 3], opt: [2, 16, 16, 3], max: [8, 16, 16, 3]}
"""


def _write(configs, inputs: str):
    configs.root.mkdir(parents=True, exist_ok=True)
    (configs.root / "model.keras").write_bytes(b"x")
    path = configs.root / "p.yaml"
    path.write_text(BASE.format(inputs=inputs))
    return path


def _error(configs, inputs: str) -> str:
    path = _write(configs, inputs)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "fix:" in msg, msg
    return msg


def test_profiles_load(configs):
    cfg = load_config(_write(configs, PROFILED))
    spec = cfg.spec.inputs[0]
    assert spec.shape is None and spec.profiles[0].max == [8, 16, 16, 3]
    assert spec.key_record() == {"name": "image", "dtype": "float32",
                                 "profiles": [{"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}]}


def test_a_static_input_keys_as_before(configs):
    cfg = load_config(_write(configs, "  - {name: image, shape: [1, 16, 16, 3]}\n"))
    # the freeze key of existing configs must not change (no "profiles": null in it)
    assert cfg.spec.inputs[0].key_record() == {"name": "image", "shape": [1, 16, 16, 3], "dtype": "float32"}


@pytest.mark.parametrize("inputs, expected", [
    ("  - name: image\n    shape: [1, 16, 16, 3]\n    profiles:\n      - {min: [1], opt: [1], max: [2]}\n",
     "exactly one of shape"),
    ("  - name: image\n", "exactly one of shape"),
    ("  - name: image\n    profiles:\n      - {min: [4, 16], opt: [2, 16], max: [8, 16]}\n", "min ≤ opt ≤ max"),
    ("  - name: image\n    profiles:\n      - {min: [1, 16], opt: [2, 16]}\n", "max"),
    ("  - name: image\n    profiles: []\n", "at least one"),
])
def test_bad_profiles_are_config_errors(configs, inputs, expected):
    msg = _error(configs, inputs)
    assert expected in msg and "inputs" in msg, msg


def test_backend_freezes_a_dynamic_network(tmp_path):
    from pipeline.backend import ConverterBackend

    from tests.converter.models import small_cnn

    path = tmp_path / "cnn.keras"
    small_cnn(seed=2).save(path)
    ranges = [{"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}]
    frozen, meta = ConverterBackend().freeze(path, [{"name": "image", "dtype": "float32", "profiles": ranges,
                                                     "shape": None}], [], "serving_default")
    assert meta["inputs"][0]["shape"] == [-1, 16, 16, 3]
    assert meta["profiles"] == [{"image": ranges[0]}]
    graph, _ = ConverterBackend().parse(frozen)
    snapshot, _ = ConverterBackend().construct(graph)
    engine, emeta = ConverterBackend().optimize(snapshot, {"opt_level": 0}, None)
    assert emeta["profiles"] == [{"image": ranges[0]}] and len(engine) > 0
    report = ConverterBackend().verify(frozen, snapshot, None, 0, 1, 1e-4, 1e-5)
    assert report["passed"] and [row["inputs"]["image"][0] for row in report["shapes"]] == [1, 2, 8]
