"""Step 1: every model source freezes to one self-contained GraphDef."""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import FreezeError
from converter.freeze import FrozenGraph, freeze, parse_input_spec
from converter.verify import TensorFlowRunner

from .models import small_cnn, two_io_model


def _ops(frozen):
    return {n.op for n in frozen.graph_def.node}


def _run_keras(model, feeds):
    import tensorflow as tf

    out = model(feeds if len(feeds) > 1 else next(iter(feeds.values())), training=False)
    outs = out if isinstance(out, (list, tuple)) else [out]
    return [np.asarray(tf.convert_to_tensor(o)) for o in outs]


@pytest.fixture(scope="module")
def cnn():
    return small_cnn()


def test_keras_model_in_memory(cnn):
    frozen = freeze(cnn)
    assert [s.name for s in frozen.inputs] == ["image"]
    assert frozen.inputs[0].shape == (1, 16, 16, 3)  # unknown batch defaults to 1
    assert frozen.outputs == ["probs"]
    ops = _ops(frozen)
    # variables are gone, BN constant math is folded, no training or bookkeeping nodes
    assert not ops & {"ReadVariableOp", "VarHandleOp", "Rsqrt", "NoOp", "StopGradient", "PartitionedCall",
                      "StatefulPartitionedCall"}
    # Identity nodes only where they carry a requested name
    assert [n.name for n in frozen.graph_def.node if n.op == "Identity"] == ["probs"]
    x = np.random.default_rng(0).standard_normal((1, 16, 16, 3)).astype(np.float32)
    ref = _run_keras(cnn, {"image": x})[0]
    got = TensorFlowRunner(frozen).run({"image": x}, ["probs"])["probs"]
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_keras_file_and_h5(tmp_path, cnn):
    path = tmp_path / "m.keras"
    cnn.save(path)
    frozen = freeze(path)
    assert frozen.outputs == ["probs"]
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    legacy = tf_keras.Sequential([tf_keras.layers.Conv2D(4, 3, input_shape=(8, 8, 3), name="c"),
                                  tf_keras.layers.BatchNormalization(name="bn"), tf_keras.layers.ReLU(name="r")])
    h5 = tmp_path / "legacy.h5"
    legacy.save(h5)
    frozen_h5 = freeze(h5)
    assert len(frozen_h5.inputs) == 1 and frozen_h5.inputs[0].shape == (1, 8, 8, 3)
    assert "FusedBatchNormV3" in _ops(frozen_h5)


def test_saved_model_named_signature(tmp_path):
    import tensorflow as tf

    class M(tf.Module):
        def __init__(self):
            self.w = tf.Variable(np.arange(6, dtype=np.float32).reshape(3, 2))

        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def project(self, x):
            return {"y": tf.matmul(x, self.w), "z": tf.nn.relu(x)}

    m = M()
    tf.saved_model.save(m, str(tmp_path / "sm"), signatures={"proj": m.project})
    with pytest.raises(FreezeError, match="no signature 'serving_default'"):
        freeze(tmp_path / "sm")
    frozen = freeze(tmp_path / "sm", signature="proj")
    assert sorted(frozen.outputs) == ["y", "z"]
    assert frozen.inputs[0].name == "x" and frozen.inputs[0].shape == (1, 3)
    x = np.ones((1, 3), np.float32)
    got = TensorFlowRunner(frozen).run({"x": x}, ["y"])["y"]
    np.testing.assert_allclose(got, x @ np.arange(6, dtype=np.float32).reshape(3, 2))


def test_tf_function_with_noinline_calls():
    """Keras 3's ConvNeXt keeps bodies in `_noinline` functions; they must be inlined."""
    import tensorflow as tf

    @tf.function(experimental_attributes={"_noinline": True})
    def inner(x):
        return tf.nn.relu(x) * 2.0

    @tf.function(input_signature=[tf.TensorSpec([2, 4], tf.float32, name="x")])
    def outer(x):
        return inner(x) + 1.0

    frozen = freeze(outer)
    assert not _ops(frozen) & {"PartitionedCall", "StatefulPartitionedCall"}
    assert len(frozen.graph_def.library.function) == 0
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    got = TensorFlowRunner(frozen).run({"x": x}, frozen.outputs)[frozen.outputs[0]]
    np.testing.assert_allclose(got, np.maximum(x, 0) * 2 + 1)


def test_frozen_pb_from_tf1_graph(tmp_path):
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        y = tf.identity(tf.nn.sigmoid(x * 3.0), name="y")
    path = tmp_path / "g.pb"
    path.write_bytes(g.as_graph_def().SerializeToString())
    frozen = freeze(path)
    assert frozen.outputs == ["y"] and frozen.inputs[0].shape == (1, 4)
    frozen2 = freeze(path, inputs={"x": (3, 4)}, outputs=["y"])
    assert frozen2.inputs[0].shape == (3, 4)
    del y


def test_unknown_non_batch_dim_needs_a_shape():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32, name="seq")])
    def f(x):
        return x * 2.0

    with pytest.raises(FreezeError, match=r"input 'seq' \(shape \?x\?x3, float32\) has an unknown dimension 1") as info:
        freeze(f)
    assert "--input seq:1x16x3" in info.value.hint and "1 stands for the unknown batch size" in info.value.hint
    frozen = freeze(f, inputs={"seq": (2, 5, 3)})
    assert frozen.inputs[0].shape == (2, 5, 3)


def test_every_input_problem_in_one_message():
    """Unknown dimensions, a wrong rank and a wrong size of several inputs: one error lists them all."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.float32, name="a"),
                                  tf.TensorSpec([None, None, 4, None], tf.float32, name="b"),
                                  tf.TensorSpec([2, 3], tf.float32, name="c"),
                                  tf.TensorSpec([None, 5], tf.float32, name="d")])
    def f(a, b, c, d):
        return tf.reduce_sum(a) + tf.reduce_sum(b) + tf.reduce_sum(c) + tf.reduce_sum(d)

    with pytest.raises(FreezeError) as info:
        freeze(f, inputs={"c": (2, 4), "d": (1, 5, 1)})
    message, hint = info.value.message, info.value.hint
    assert message.startswith("4 input shape problems:")
    assert "input 'a' (shape ?x?, float32) has an unknown dimension 1" in message
    assert "input 'b' (shape ?x?x4x?, float32) has unknown dimensions 1, 3" in message
    assert "input 'c': the model's shape is 2x3, the given shape 2x4 differs in dimension 1" in message
    assert "input 'd': the model's shape is ?x5 (rank 2), the given shape 1x5x1 has rank 3" in message
    assert "--input a:1x16 --input b:1x224x4x224 --input c:2x3 --input d:1x5" in hint
    assert "inputs={'a': (1, 16), 'b': (1, 224, 4, 224), 'c': (2, 3), 'd': (1, 5)}" in hint


@pytest.mark.parametrize("content,match", [(b"\x00\x01garbage" * 10, "not a valid GraphDef"), (b"", "empty GraphDef")])
def test_corrupt_pb(tmp_path, content, match):
    path = tmp_path / "bad.pb"
    path.write_bytes(content)
    with pytest.raises(FreezeError, match=match):
        freeze(path)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(FreezeError, match="model not found"):
        freeze(tmp_path / "nope.keras")
    txt = tmp_path / "model.txt"
    txt.write_text("hello")
    with pytest.raises(FreezeError, match="don't know how to load"):
        freeze(txt)
    not_keras = tmp_path / "fake.keras"
    not_keras.write_text("not a zip")
    with pytest.raises(FreezeError, match="exists but is not a Keras model file"):
        freeze(not_keras)


def test_unknown_input_and_output_names():
    model = two_io_model()
    with pytest.raises(FreezeError, match="unknown input name"):
        freeze(model, inputs={"c": (1, 8)})
    with pytest.raises(FreezeError, match="unknown output name"):
        freeze(model, outputs=["nope"])
    frozen = freeze(model, outputs=["sum"])
    assert frozen.outputs == ["sum"]
    assert "MatMul" not in _ops(frozen)  # pruned: only what `sum` needs


def test_serialization_round_trip(cnn):
    frozen = freeze(cnn)
    again = FrozenGraph.from_bytes(frozen.to_bytes())
    assert again.inputs == frozen.inputs and again.outputs == frozen.outputs
    assert again.graph_def == frozen.graph_def
    with pytest.raises(FreezeError):
        FrozenGraph.from_bytes(b"something else")


def test_parse_input_spec():
    assert parse_input_spec("images:1x224x224x3") == ("images", (1, 224, 224, 3))
    with pytest.raises(FreezeError, match="NAME:SHAPE"):
        parse_input_spec("images:1x?x3")


def test_constant_folding_never_reads_host_files(tmp_path):
    """A .pb that reads a file through a constant path must not bake the build host's file into the network."""
    import tensorflow as tf

    from converter.errors import UnsupportedOpsError
    from converter.freeze import freeze
    from converter.graph import parse

    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"SECRET-BYTES-OF-THE-BUILD-HOST")
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (1, 4), name="x")
        data = tf.io.decode_raw(tf.io.read_file(tf.constant(str(secret))), tf.uint8)
        tf.identity(x + tf.reduce_sum(tf.cast(data, tf.float32)), name="y")
    pb = tmp_path / "reads_a_file.pb"
    pb.write_bytes(graph.as_graph_def().SerializeToString())
    frozen = freeze(str(pb), inputs={"x": (1, 4)}, outputs=["y"])
    blob = frozen.to_bytes()
    assert b"SECRET-BYTES" not in blob, "constant folding ran ReadFile"
    assert "ReadFile" in {n.op for n in frozen.graph_def.node}
    with pytest.raises(UnsupportedOpsError, match="ReadFile") as info:
        parse(frozen)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_keras_files_with_lambda_code_are_refused_unless_trusted(tmp_path, suffix):
    """Loading a Lambda layer runs Python stored in the file: refused (exit 2) unless the user trusts it."""
    from converter.errors import FreezeError
    from converter.freeze import freeze

    if suffix == ".h5":
        import tf_keras as k
    else:
        import keras as k
    inp = k.Input((4,), name="x")
    out = k.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    path = tmp_path / f"lambda{suffix}"
    k.Model(inp, out).save(str(path))
    with pytest.raises(FreezeError, match="not trusted by default") as info:
        freeze(str(path))
    assert info.value.exit_code == 2 and "--trust-model-code" in info.value.hint
    frozen = freeze(str(path), trust_model_code=True)
    assert list(frozen.outputs)
