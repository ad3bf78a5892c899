"""Every keras.applications family converts, builds an engine and verifies through `tf2trt convert` (slow tier)."""

from __future__ import annotations

import json
import subprocess

import pytest

from .test_models import tf2trt_command
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
    engine = tmp_path / f"{name}.plan"
    proc = subprocess.run(tf2trt_command() + ["convert", str(model), "--engine", str(engine), "--verify",
                                              "--check-intermediates", "--json"],
                          capture_output=True, text=True, timeout=1200)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert proc.returncode == 0, (out, proc.stderr[-3000:])
    v = out["verification"]
    assert v["passed"] and v["intermediates"]["failed"] == 0 and v["intermediates"]["checked"] > 10
    assert engine.stat().st_size == out["engine"]["bytes"]
