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
