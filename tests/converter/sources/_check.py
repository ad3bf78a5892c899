"""End-to-end value checks shared by the model-source tests.

A frozen graph must compute what the original model computes (run in
TensorFlow on the same feeds: catches inputs bound to the wrong placeholder),
and the converted network on the reference executor must agree with both.
"""

from __future__ import annotations

import numpy as np

from converter.construct import construct
from converter.graph import parse
from converter.reference import ReferenceExecutor
from converter.verify import TensorFlowRunner, verify


def as_numpy(value) -> np.ndarray:
    import tensorflow as tf

    return np.asarray(tf.convert_to_tensor(value))


def check_end_to_end(frozen, reference: dict, feeds: dict, tmp_path, rtol: float = 1e-4, atol: float = 1e-5):
    """Assert frozen-in-TF == ``reference`` (the source model's outputs) and converted == both; return the network."""
    assert sorted(s.name for s in frozen.inputs) == sorted(feeds), (frozen.inputs, sorted(feeds))
    assert sorted(frozen.outputs) == sorted(reference), (frozen.outputs, sorted(reference))
    runner = TensorFlowRunner(frozen)
    in_tf = runner.run(feeds, list(frozen.outputs))
    runner.close()
    for name in frozen.outputs:
        np.testing.assert_allclose(in_tf[name], reference[name], rtol=1e-6, atol=1e-6, err_msg=f"frozen {name}")
    net = construct(parse(frozen))
    npz = tmp_path / "feeds.npz"
    np.savez(npz, **feeds)
    report = verify(frozen, net.snapshot, inputs_npz=str(npz), rtol=rtol, atol=atol, intermediates=True)
    assert report.passed, report.render()
    converted = ReferenceExecutor(net.snapshot).run(feeds)
    for name in frozen.outputs:
        np.testing.assert_allclose(converted[name], reference[name], rtol=rtol, atol=atol, err_msg=f"converted {name}")
    return net
