"""Every keras.applications family converts, builds an engine and verifies through `tf2trt convert` (slow tier)."""

from __future__ import annotations

import pytest

from .test_models import convert_and_verify
from .zoo_table import ZOO, build, representatives

pytestmark = pytest.mark.slow


def test_zoo_table_covers_every_application():
    import keras

    available = {n for n in dir(keras.applications) if n[0].isupper() and callable(getattr(keras.applications, n))}
    assert available == {row[0] for row in ZOO}, "update tests/converter/zoo_table.py"


@pytest.mark.parametrize("name,family,default_side,side", representatives(), ids=lambda v: str(v))
def test_family_representative(name, family, default_side, side, tmp_path):
    model = tmp_path / f"{name}.keras"
    build(name, side).save(model)
    out = convert_and_verify(model, tmp_path / f"{name}.plan")
    assert out["verification"]["intermediates"]["checked"] > 10


#: the dynamic-batch subset: one model per common family (depthwise, residual, squeeze-excite, hard-swish)
DYNAMIC_BATCH = ("MobileNetV2", "ResNet50", "EfficientNetB0", "MobileNetV3Small")


@pytest.mark.parametrize("name", DYNAMIC_BATCH)
def test_batch_dimension_left_dynamic(name, tmp_path):
    """The default batch profile (1/1/8): verified at batch 1 and 8, plus batch 4 through --verify-shape."""
    import json
    import subprocess

    from converter.profiles import DEFAULT_BATCH_RANGE

    from .test_models import tf2trt_command

    side = {row[0]: row[3] for row in representatives()}.get(name, 64)
    model_path = tmp_path / f"{name}.keras"
    model = build(name, side)
    model.save(model_path)
    input_name = model.layers[0].name  # what the frozen signature calls the input (Keras numbers it per process)
    engine = tmp_path / f"{name}.plan"
    proc = subprocess.run(tf2trt_command() + ["convert", str(model_path), "--engine", str(engine), "--verify",
                                              "--check-intermediates", "--json",
                                              "--verify-shape", f"{input_name}:4x{side}x{side}x3"],
                          capture_output=True, text=True, timeout=1800)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (out, proc.stderr[-3000:])
    lo, mid, hi = DEFAULT_BATCH_RANGE
    assert out["profiles"] == [{input_name: {"min": [lo, side, side, 3], "opt": [mid, side, side, 3],
                                             "max": [hi, side, side, 3]}}]
    v = out["verification"]
    assert v["passed"] is True and v["checked"] == "reference-executor"
    assert v["intermediates"]["failed"] == 0 and v["intermediates"]["checked"] > 10
    assert [row["inputs"][input_name][0] for row in v["shapes"]] == [1, 8, 4]
    assert all(row["passed"] for row in v["shapes"])
    sidecar = json.loads(engine.with_name(engine.name + ".json").read_text())
    assert sidecar["profiles"] == out["profiles"]
