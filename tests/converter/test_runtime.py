"""GPU execution of engines: runs only with a CUDA GPU + TensorRT + pycuda; skips elsewhere with the reason."""

from __future__ import annotations

import pytest

from converter.construct import construct
from converter.engine import BuilderSettings, optimize_network
from converter.freeze import freeze
from converter.graph import parse
from converter.runtime import RuntimeUnavailable, gpu_unavailable_reason, inference_engine
from converter.verify import verify

from .models import small_cnn


def test_unavailable_reason_is_stated():
    reason = gpu_unavailable_reason()
    if reason is None:
        pytest.skip("a GPU is present: nothing to explain")
    assert isinstance(reason, str) and reason
    with pytest.raises(RuntimeUnavailable, match="cannot run the engine"):
        inference_engine(b"not-an-engine", {})


@pytest.mark.gpu
def test_engine_matches_tensorflow_on_gpu():
    frozen = freeze(small_cnn())
    net = construct(parse(frozen))
    engine = optimize_network(net, BuilderSettings())
    report = verify(frozen, engine=engine)
    assert report.checked == "engine"
    assert report.passed, report.render()
