"""The public API in converter/__init__.py: the original TF2TRT names plus freeze/verify, all documented."""

from __future__ import annotations

import inspect

import numpy as np

import converter

PUBLIC = ["from_tensorflow_graph_def", "optimize_network", "store_engine", "load_engine", "inference_engine",
          "freeze", "parse", "construct", "verify", "BuilderSettings", "Snapshot", "ConversionError"]


def test_public_names_are_documented_functions():
    for name in PUBLIC:
        obj = getattr(converter, name)
        assert inspect.getdoc(obj), f"{name} has no docstring"
    sig = inspect.signature(converter.from_tensorflow_graph_def)
    assert "max_batch_size" not in sig.parameters and "fp16_mode" not in sig.parameters
    assert callable(converter.freeze) and callable(converter.verify) and callable(converter.construct)


def test_from_tensorflow_graph_def_end_to_end(tmp_path):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        tf.identity(tf.nn.softplus(x) - 1.0, name="y")
    net = converter.from_tensorflow_graph_def(g.as_graph_def(), inputs={"x": (2, 4)}, outputs=["y"])
    assert net.network.num_inputs == 1 and tuple(net.network.get_input(0).shape) == (2, 4)
    engine = converter.optimize_network(net)
    path = converter.store_engine(engine, tmp_path / "y.plan", {"note": "api"})
    data, meta = converter.load_engine(path)
    assert data == engine and meta["note"] == "api"
    x_val = np.linspace(-3, 3, 8, dtype=np.float32).reshape(2, 4)
    out = converter.ReferenceExecutor(net.snapshot).run({"x": x_val})["y"]
    np.testing.assert_allclose(out, np.log1p(np.exp(x_val)) - 1.0, rtol=1e-5, atol=1e-6)


def test_toolchain_and_source_digest():
    versions = converter.toolchain_versions()
    assert versions["tensorrt_flavor"] in ("tensorrt", "tensorrt-rtx") and versions["tensorrt"]
    assert len(converter.converter_source_digest()) == 64
