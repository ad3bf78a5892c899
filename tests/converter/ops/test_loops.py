"""While loops → TensorRT loops, on the models people have: Keras 3 and tf_keras recurrent layers from their files
(``.keras``, ``.h5``, ``model.export()`` / ``tf.saved_model.save`` SavedModels) and ``tf.function`` loops
(``tf.while_loop``, ``tf.map_fn``, ``tf.scan``, ``tf.TensorArray``), random weights and fixed seeds.

Each converts, builds a serialized engine ahead of time, and verifies against TensorFlow on the reference executor
(fp32 tolerances, intermediates included: the tensors after the loop and what feeds it)."""

from __future__ import annotations

import numpy as np
import pytest

from converter import construct, freeze
from converter.engine import optimize_network
from converter.errors import UnsupportedOpsError
from converter.graph import Graph, parse
from converter.verify import verify

SEQ, FEATURES, UNITS = 7, 5, 6


def _keras_model(build, shape=(SEQ, FEATURES), dtype="float32", name="seq"):
    def make(tmp_path):
        import keras

        keras.utils.set_random_seed(0)
        inp = keras.Input(shape, name=name, dtype=dtype)
        path = tmp_path / "model.keras"
        keras.Model(inp, build(keras, inp)).save(path)
        return str(path), {}

    return make


def _seq2seq(tmp_path):
    """An encoder-decoder: the encoder's final states start the decoder (two loops, one feeding the other)."""
    import keras

    keras.utils.set_random_seed(0)
    src = keras.Input((SEQ, FEATURES), name="source")
    tgt = keras.Input((4, 3), name="target")
    _, h, c = keras.layers.LSTM(UNITS, return_state=True, name="encoder")(src)
    dec = keras.layers.LSTM(UNITS, return_sequences=True, name="decoder")(tgt, initial_state=[h, c])
    path = tmp_path / "seq2seq.keras"
    keras.Model([src, tgt], keras.layers.Dense(3, name="logits")(dec)).save(path)
    return str(path), {}


def _return_state(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SEQ, FEATURES), name="seq")
    out, h, c = keras.layers.LSTM(UNITS, return_sequences=True, return_state=True, name="lstm")(inp)
    path = tmp_path / "state.keras"
    keras.Model(inp, [out, h, c]).save(path)
    return str(path), {}


def _exported(tmp_path):
    """Keras 3 ``model.export()``: a SavedModel with a fixed serving signature."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((SEQ, FEATURES), name="seq")
    model = keras.Model(inp, keras.layers.GRU(UNITS, name="gru")(inp))
    model.export(str(tmp_path / "exported"), verbose=False)
    return str(tmp_path / "exported"), {"inputs": {"seq": (2, SEQ, FEATURES)}}


def _tf_keras(layer, fmt):
    def make(tmp_path):
        import tf_keras

        tf_keras.utils.set_random_seed(0)
        inp = tf_keras.Input((SEQ, FEATURES), name="seq")
        model = tf_keras.Model(inp, getattr(tf_keras.layers, layer)(UNITS, name="rnn")(inp))
        path = tmp_path / ("model.h5" if fmt == "h5" else "saved")
        model.save(str(path), **({} if fmt == "h5" else {"save_format": "tf"}))
        return str(path), {}

    return make


def _tf_function(fn, shape=(3, FEATURES)):
    """A ``tf.Module`` whose ``__call__`` is ``fn``, saved with ``tf.saved_model.save``."""

    def make(tmp_path):
        import tensorflow as tf

        class Module(tf.Module):
            def __init__(self):
                self.w = tf.Variable(tf.random.stateless_normal((FEATURES, FEATURES), seed=(1, 2)) * 0.3)

            @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32, name="x")])
            def __call__(self, x):
                return fn(tf, self.w, x)

        tf.saved_model.save(Module(), str(tmp_path / "module"))
        return str(tmp_path / "module"), {}

    return make


def _counter_loop(tf, w, x):
    _, h = tf.while_loop(lambda i, h: i < 5, lambda i, h: (i + 1, tf.tanh(tf.matmul(h, w) + 0.1)),
                         (tf.constant(0), x))
    return h


def _data_dependent_loop(tf, w, x):
    """A WHILE limit: the condition reads data (doubles until the norm passes 100, at most 20 times)."""
    def cond(i, h):
        return tf.logical_and(tf.reduce_sum(tf.abs(h)) < 100.0, i < 20)

    _, h = tf.while_loop(cond, lambda i, h: (i + 1, h * 2.0 + tf.matmul(h, w)), (tf.constant(0), x))
    return h


def _map_fn(tf, w, x):
    return tf.map_fn(lambda row: tf.tanh(tf.linalg.matvec(w, row)), x)


def _scan(tf, w, x):
    return tf.scan(lambda acc, row: tf.tanh(acc * 0.5 + tf.linalg.matvec(w, row)), x)


def _scan_with_initializer(tf, w, x):
    return tf.scan(lambda acc, row: tf.tanh(acc * 0.5 + tf.linalg.matvec(w, row)), x,
                   initializer=tf.zeros((FEATURES,)))


def _tensor_array(tf, w, x):
    """An autograph loop over tf.range writing a TensorArray, reading the sequence through another one."""
    seq = tf.TensorArray(tf.float32, size=x.shape[0]).unstack(x)
    ta = tf.TensorArray(tf.float32, size=x.shape[0])
    h = tf.zeros((FEATURES,))
    for i in tf.range(x.shape[0]):
        h = tf.sigmoid(tf.linalg.matvec(w, h) + seq.read(i))
        ta = ta.write(i, h * 2.0)
    return ta.stack()


def _tensor_array_indexing(tf, w, x):
    """x[i] with the loop counter: a StridedSlice with a data-dependent begin (not converted, see below)."""
    ta = tf.TensorArray(tf.float32, size=x.shape[0])
    h = tf.zeros((FEATURES,))
    for i in tf.range(x.shape[0]):
        h = tf.sigmoid(tf.linalg.matvec(w, h) + x[i])
        ta = ta.write(i, h * 2.0)
    return ta.stack()


CASES = {
    "keras3-LSTM": _keras_model(lambda k, x: k.layers.LSTM(UNITS, name="lstm")(x)),
    "keras3-LSTM-sequences": _keras_model(lambda k, x: k.layers.LSTM(UNITS, return_sequences=True)(x)),
    "keras3-LSTM-go_backwards": _keras_model(lambda k, x: k.layers.LSTM(UNITS, go_backwards=True)(x)),
    "keras3-LSTM-return_state": _return_state,
    "keras3-GRU": _keras_model(lambda k, x: k.layers.GRU(UNITS)(x)),
    "keras3-GRU-reset_before": _keras_model(lambda k, x: k.layers.GRU(UNITS, reset_after=False)(x)),
    "keras3-SimpleRNN": _keras_model(lambda k, x: k.layers.SimpleRNN(UNITS)(x)),
    "keras3-Bidirectional": _keras_model(lambda k, x: k.layers.Bidirectional(k.layers.LSTM(UNITS))(x)),
    "keras3-stacked": _keras_model(lambda k, x: k.layers.GRU(UNITS)(k.layers.LSTM(UNITS, return_sequences=True)(x))),
    "keras3-masked": _keras_model(lambda k, x: k.layers.LSTM(UNITS)(k.layers.Embedding(20, 4, mask_zero=True)(x)),
                                  shape=(SEQ,), dtype="int32", name="ids"),
    "keras3-ConvLSTM2D": _keras_model(lambda k, x: k.layers.ConvLSTM2D(3, 3, padding="same")(x),
                                      shape=(4, 6, 6, 2)),
    "keras3-seq2seq": _seq2seq,
    "keras3-export-GRU": _exported,
    "tf_keras-LSTM-h5": _tf_keras("LSTM", "h5"),
    "tf_keras-GRU-SavedModel": _tf_keras("GRU", "tf"),
    "tf.while_loop-counter": _tf_function(_counter_loop),
    "tf.while_loop-data-dependent": _tf_function(_data_dependent_loop),
    "tf.map_fn": _tf_function(_map_fn),
    "tf.scan": _tf_function(_scan_with_initializer),
    "tf.TensorArray": _tf_function(_tensor_array),
}


def _convert(tmp_path, name):
    path, kwargs = CASES[name](tmp_path)
    frozen = freeze(path, **kwargs)
    graph = parse(frozen)
    assert any(n.op in ("While", "StatelessWhile") for n in graph.nodes), graph.op_counts()
    return frozen, graph


@pytest.mark.slow  # 20 real models saved and reloaded; the control-flow op table covers each op in the quick loop
@pytest.mark.parametrize("name", sorted(CASES))
def test_loop_converts_and_verifies(name, tmp_path):
    frozen, graph = _convert(tmp_path, name)
    # the parsed graph, bodies included, survives the byte form the pipeline stores (and stays deterministic)
    data = graph.to_bytes()
    again = Graph.from_bytes(data)
    assert again.to_bytes() == data and again.subgraphs.keys() == graph.subgraphs.keys()
    net = construct(again)
    kinds = {layer["type"] for layer in net.snapshot.layers}
    assert {"TRIP_LIMIT", "LOOP_OUTPUT"} <= kinds, kinds
    report = verify(frozen, net.snapshot, samples=2, intermediates=True, input_ranges=_ranges(frozen))
    assert report.passed, report.render()
    assert report.intermediates["failed"] == 0, report.render()
    assert optimize_network(net)  # TensorRT accepts the loop: a serialized engine, built ahead of time


def _ranges(frozen):
    return {spec.name: (1, 19) for spec in frozen.inputs if spec.dtype.startswith("int")}


def test_loop_variables_nothing_reads_are_not_built(tmp_path):
    """A Keras LSTM carries 2 counters, the sequence list, the output list and 2 states: only the states become
    recurrences (the counters are the COUNT limit and the iterator/concatenation index)."""
    _, graph = _convert(tmp_path, "keras3-LSTM-sequences")
    snap = construct(graph).snapshot
    types = [layer["type"] for layer in snap.layers]
    assert types.count("RECURRENCE") == 2 and types.count("ITERATOR") == 1 and types.count("TRIP_LIMIT") == 1
    assert [layer["params"]["kind"] for layer in snap.layers if layer["type"] == "TRIP_LIMIT"] == ["COUNT"]


def test_a_data_dependent_condition_is_a_while_limit(tmp_path):
    _, graph = _convert(tmp_path, "tf.while_loop-data-dependent")
    snap = construct(graph).snapshot
    kinds = sorted(layer["params"]["kind"] for layer in snap.layers if layer["type"] == "TRIP_LIMIT")
    assert kinds == ["COUNT", "WHILE"]  # i < 20 is still a COUNT limit; the norm test is the WHILE one


def test_body_layers_are_named_after_the_body_nodes(tmp_path):
    _, graph = _convert(tmp_path, "keras3-LSTM")
    snap = construct(graph).snapshot
    body = graph.subgraphs[next(iter(graph.subgraphs))]["body"]
    matmuls = {n.name for n in body.nodes if n.op == "MatMul"}
    assert matmuls and matmuls <= {layer["name"] for layer in snap.layers}


@pytest.mark.parametrize("name, fn, expected", [
    ("scan-without-initializer", _scan, "pass initializer="),
    ("x[i]-in-a-loop", _tensor_array_indexing, "tf.TensorArray(...).unstack(x)"),
])
def test_loop_forms_that_do_not_convert_say_what_to_write_instead(name, fn, expected, tmp_path):
    """Two forms the converter leaves out, reported by the support check (exit 2) with the form that converts:
    tf.scan without an initializer (its first element is written before the loop) and indexing a sequence with
    the loop counter (a StridedSlice whose begin is data)."""
    path, kwargs = _tf_function(fn)(tmp_path)
    with pytest.raises(UnsupportedOpsError) as info:
        parse(freeze(path, **kwargs))
    assert info.value.exit_code == 2
    assert expected in str(info.value) + " ".join(e.hint or "" for e in info.value.errors), str(info.value)
