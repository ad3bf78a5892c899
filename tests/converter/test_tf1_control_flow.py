"""TF1 control flow (loop/cond frames, TensorArrayV3) → the same TensorRT loops and conditionals as TF2's.

Every graph here is built by TensorFlow itself in graph mode with control flow v1 (``Enter``/``Merge``/``Switch``/
``NextIteration``/``Exit``/``LoopCond``, ``TensorArrayV3``…), frozen with ``convert_variables_to_constants`` (random
initial weights), saved as a ``.pb`` and converted like a user would: ``freeze(path)``, parse, construct.  Each is
verified against TensorFlow with intermediates (fp32 tolerances) — TensorFlow running the frozen graph, which is
the rewritten functional form — and, independently of the rewrite, the reference executor's outputs are compared
with TensorFlow running the original TF1 ``.pb`` in a session.  Each builds into an engine.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from converter import construct, freeze
from converter.engine import optimize_network
from converter.errors import UnsupportedOpsError
from converter.graph import Graph, parse
from converter.tf1_control_flow import V1_OPS
from converter.verify import run_reference, verify

RTOL, ATOL = 1e-4, 1e-5


@contextmanager
def _tf1_graph():
    """A fresh ``tf.Graph`` in which ``tf.while_loop``/``tf.cond``/``tf.TensorArray`` build control flow v1."""
    import tensorflow as tf
    from tensorflow.python.ops import control_flow_v2_toggles as toggles

    was = toggles.control_flow_v2_enabled()
    toggles.disable_control_flow_v2()
    try:
        with tf.Graph().as_default() as graph:
            tf.compat.v1.set_random_seed(0)
            yield tf, graph
    finally:
        if was:
            toggles.enable_control_flow_v2()


def _save(tf, graph, outputs: list[str], path) -> str:
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(tf.compat.v1.global_variables_initializer())
        gd = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), outputs)
    assert any(n.op in V1_OPS for n in gd.node), "the graph was not built with control flow v1"
    path.write_bytes(gd.SerializeToString())
    return str(path)


# ------------------------------------------------------------------ the graphs


def _counter(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    _, r = tf.compat.v1.while_loop(lambda i, a: i < 5, lambda i, a: (i + 1, a * 1.5 + tf.cast(i, tf.float32)),
                                   [tf.constant(0), x])
    tf.identity(r, name="out")
    return ["out"]


def _data_dependent(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    _, r = tf.compat.v1.while_loop(
        lambda i, a: tf.logical_and(i < 20, tf.reduce_sum(tf.abs(a)) < 100.0),
        lambda i, a: (i + 1, a * 1.7 + 0.3), [tf.constant(0), x])
    tf.identity(r, name="out")
    return ["out"]


def _variable_in_body(tf):
    """A variable read inside the body: after freezing, a constant entered into the frame (is_constant=True)."""
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    w = tf.compat.v1.get_variable("w", [3, 3])
    _, r = tf.compat.v1.while_loop(lambda i, a: i < 4, lambda i, a: (i + 1, tf.tanh(tf.matmul(a, w))),
                                   [tf.constant(0), x])
    tf.identity(r, name="out")
    return ["out"]


def _cond(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    w = tf.compat.v1.get_variable("w", [3, 4])
    r = tf.compat.v1.cond(tf.reduce_sum(x) > 0, lambda: tf.matmul(x, w) * 2.0 + 1.0,
                          lambda: tf.matmul(tf.exp(x) - x, w))
    tf.identity(r, name="out")
    return ["out"]


def _tensor_array(tf):
    x = tf.compat.v1.placeholder(tf.float32, [7, 2, 3], name="x")
    inp = tf.TensorArray(tf.float32, size=7).unstack(x)
    out = tf.TensorArray(tf.float32, size=7)

    def body(i, h, o):
        h = tf.tanh(inp.read(i) + h * 0.5)
        return i + 1, h, o.write(i, h)

    _, h, o = tf.compat.v1.while_loop(lambda i, h, o: i < 7, body, [tf.constant(0), tf.zeros([2, 3]), out])
    tf.identity(o.stack(), name="out")
    tf.identity(h, name="h")
    return ["out", "h"]


def _dynamic_rnn(cell_name, batch=2):
    def build(tf):
        from tf_keras.src.layers.rnn import legacy_cells

        x = tf.compat.v1.placeholder(tf.float32, [batch, 7, 5], name="x")
        cell = getattr(legacy_cells, cell_name)(6)
        out, state = tf.compat.v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        tf.identity(out, name="out")
        tf.identity(state.h if cell_name == "BasicLSTMCell" else state, name="state")
        return ["out", "state"]

    return build


def _dynamic_rnn_with_lengths(tf):
    """``sequence_length``: the loop runs max(lengths) times (a WHILE limit), outputs past a length are zeros."""
    from tf_keras.src.layers.rnn import legacy_cells

    x = tf.compat.v1.placeholder(tf.float32, [2, 7, 5], name="x")
    lengths = tf.compat.v1.placeholder(tf.int32, [2], name="lengths")
    out, _ = tf.compat.v1.nn.dynamic_rnn(legacy_cells.GRUCell(6), x, sequence_length=lengths, dtype=tf.float32)
    tf.identity(out, name="out")
    return ["out"]


def _bidirectional_dynamic_rnn(tf):
    from tf_keras.src.layers.rnn import legacy_cells

    x = tf.compat.v1.placeholder(tf.float32, [2, 7, 5], name="x")
    (fw, bw), _ = tf.compat.v1.nn.bidirectional_dynamic_rnn(legacy_cells.BasicLSTMCell(6), legacy_cells.GRUCell(4),
                                                            x, dtype=tf.float32)
    tf.identity(tf.concat([fw, bw], -1), name="out")
    return ["out"]


def _nested(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")

    def outer(i, a):
        _, b = tf.compat.v1.while_loop(lambda j, b: j < 3,
                                       lambda j, b: (j + 1, b * 0.9 + tf.cast(i, tf.float32)), [tf.constant(0), a])
        return i + 1, b

    _, r = tf.compat.v1.while_loop(lambda i, a: i < 4, outer, [tf.constant(0), x])
    tf.identity(r, name="out")
    return ["out"]


def _cond_in_loop(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")

    def body(i, a):
        return i + 1, tf.compat.v1.cond(tf.reduce_sum(a) > 0, lambda: a - 1.0, lambda: a * 2.0 + 0.5)

    _, r = tf.compat.v1.while_loop(lambda i, a: i < 5, body, [tf.constant(0), x])
    tf.identity(r, name="out")
    return ["out"]


def _nested_cond(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    r = tf.compat.v1.cond(tf.reduce_sum(x) > 0,
                          lambda: tf.compat.v1.cond(x[0, 0] > 0, lambda: x * 3.0, lambda: x - 5.0),
                          lambda: tf.exp(x))
    tf.identity(r, name="out")
    return ["out"]


def _cond_constant_and_input(tf):
    """Branches that return a constant and an input unchanged (a Merge of a Const and a Switch output)."""
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    tf.identity(tf.compat.v1.cond(tf.reduce_sum(x) > 0, lambda: tf.ones([2, 3]), lambda: x), name="out")
    return ["out"]


def _cond_two_outputs(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    a, b = tf.compat.v1.cond(tf.reduce_sum(x) > 0, lambda: (x * 2.0, tf.reduce_sum(x)),
                             lambda: (x - 1.0, tf.reduce_max(x)))
    tf.identity(a + b, name="out")
    return ["out"]


def _loop_in_cond(tf):
    x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
    loop = lambda: tf.compat.v1.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a * 2.0), [0, x])[1]  # noqa: E731
    tf.identity(tf.compat.v1.cond(tf.reduce_sum(x) > 0, loop, lambda: x + 1.0), name="out")
    return ["out"]


def _map_fn(tf):
    x = tf.compat.v1.placeholder(tf.float32, [5, 3], name="x")
    tf.identity(tf.map_fn(lambda row: tf.reduce_sum(row * row) + row, x), name="out")
    return ["out"]


def _scan(tf):
    x = tf.compat.v1.placeholder(tf.float32, [5, 3], name="x")
    tf.identity(tf.scan(lambda acc, row: acc * 0.5 + row, x, initializer=tf.zeros([3])), name="out")
    return ["out"]


_BOTH = [(0.1, 2.0), (-2.0, -0.1)]  # then, else
#: the inner cond's else branch: the sum is positive, x[0, 0] negative
_THEN_ELSE = {"x": np.array([[-1.0, 2.0, 2.0], [2.0, 2.0, 2.0]], np.float32)}

#: name → (builder, freeze inputs, input ranges to verify with (one verification each), more feeds to compare the
#: network with the original TF1 graph on)
CASES = {
    "while_loop-counter": (_counter, None, [None], []),
    "while_loop-data-dependent": (_data_dependent, None, [None], []),
    "while_loop-variable-in-body": (_variable_in_body, None, [None], []),
    "cond": (_cond, None, _BOTH, []),
    "cond-nested": (_nested_cond, None, _BOTH, [_THEN_ELSE]),
    "cond-constant-and-input": (_cond_constant_and_input, None, _BOTH, []),
    "cond-two-outputs": (_cond_two_outputs, None, _BOTH, []),
    "TensorArray-unstack-read-write-stack": (_tensor_array, None, [None], []),
    "map_fn": (_map_fn, None, [None], []),
    "scan": (_scan, None, [None], []),
    "dynamic_rnn-BasicLSTMCell": (_dynamic_rnn("BasicLSTMCell"), None, [None], []),
    "dynamic_rnn-GRUCell": (_dynamic_rnn("GRUCell"), None, [None], []),
    # an unknown batch dimension, pinned at freeze: the sequence length tf.shape(x)[...] is then a constant
    "dynamic_rnn-BasicLSTMCell-batch-None": (_dynamic_rnn("BasicLSTMCell", batch=None), {"x": (3, 7, 5)}, [None],
                                             []),
    "dynamic_rnn-GRUCell-sequence_length": (_dynamic_rnn_with_lengths, None, [None], [
        {"x": np.linspace(-1, 1, 70, dtype=np.float32).reshape(2, 7, 5), "lengths": np.array(lengths, np.int32)}
        for lengths in ([2, 3], [0, 0], [7, 1])]),
    "bidirectional_dynamic_rnn": (_bidirectional_dynamic_rnn, None, [None], []),
    "while_loop-nested": (_nested, None, [None], []),
    "cond-in-a-while_loop": (_cond_in_loop, None, _BOTH, []),
    "while_loop-in-a-cond": (_loop_in_cond, None, _BOTH, []),
}


def _original_outputs(path: str, outputs: list[str], feeds: dict) -> dict:
    """TensorFlow running the TF1 .pb as it was saved (frames and all), in a session."""
    import tensorflow as tf

    gd = tf.compat.v1.GraphDef()
    gd.ParseFromString(open(path, "rb").read())
    with tf.Graph().as_default() as graph:
        tf.graph_util.import_graph_def(gd, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            values = session.run([f"{o}:0" for o in outputs], {f"{k}:0": v for k, v in feeds.items()})
    return dict(zip(outputs, values))


@pytest.mark.parametrize("name", sorted(CASES))
def test_tf1_control_flow_converts_and_verifies(name, tmp_path):
    build, inputs, ranges, feed_sets = CASES[name]
    with _tf1_graph() as (tf, graph):
        outputs = build(tf)
        path = _save(tf, graph, outputs, tmp_path / "model.pb")
    _check(path, path, outputs, inputs, ranges, feed_sets)


def _check(model, pb_path, outputs, inputs, ranges, feed_sets):
    """freeze → parse → construct → verify (and against the original TF1 graph ``pb_path``) → engine."""
    frozen = freeze(model, inputs=inputs)
    assert not any(n.op in V1_OPS for n in frozen.graph_def.node)
    graph = parse(frozen)
    ops = graph.op_counts()
    assert {"While", "StatelessWhile", "If", "StatelessIf"} & set(ops), ops
    data = graph.to_bytes()
    again = Graph.from_bytes(data)
    assert again.to_bytes() == data
    net = construct(again)
    for low_high in ranges:
        kwargs = {} if low_high is None else {"input_ranges": {"x": low_high}}
        report = verify(frozen, net.snapshot, samples=2, intermediates=True, **kwargs)
        assert report.passed, report.render()
        assert report.intermediates["failed"] == 0, report.render()
        # independently of the rewrite: the network against the original TF1 graph
        low, high = low_high or (-1.0, 1.0)
        rng = np.random.default_rng(1)
        feed_sets = feed_sets + [{spec.name: rng.uniform(low, high, spec.shape).astype(np.float32)
                                  if spec.dtype == "float32" else rng.integers(0, 9, spec.shape).astype(spec.dtype)
                                  for spec in frozen.inputs}]
    for feeds in feed_sets:
        expected = _original_outputs(pb_path, outputs, feeds)
        got = run_reference(net.snapshot, feeds)
        for out in outputs:
            np.testing.assert_allclose(got[out], expected[out], rtol=RTOL, atol=ATOL, err_msg=out)
    assert optimize_network(net)


def test_a_tf1_saved_model_with_dynamic_rnn(tmp_path):
    """A TF1 SavedModel (``simple_save`` of a graph-mode session with variables) takes the same rewrite."""
    with _tf1_graph() as (tf, graph):
        from tf_keras.src.layers.rnn import legacy_cells

        x = tf.compat.v1.placeholder(tf.float32, [2, 7, 5], name="x")
        out, _ = tf.compat.v1.nn.dynamic_rnn(legacy_cells.GRUCell(6), x, dtype=tf.float32)
        out = tf.identity(out, name="out")
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            tf.compat.v1.saved_model.simple_save(session, str(tmp_path / "saved"), {"x": x}, {"out": out})
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(session, graph.as_graph_def(), ["out"])
    pb = tmp_path / "reference.pb"  # the same graph and weights, to run the original TF1 form
    pb.write_bytes(gd.SerializeToString())
    _check(str(tmp_path / "saved"), str(pb), ["out"], None, [None], [])


def test_loops_become_tensorrt_loops_with_their_limits(tmp_path):
    """The counter loop is a COUNT limit; the data-dependent one keeps its condition as a WHILE limit; dynamic_rnn's
    sequence is an ITERATOR and its outputs a CONCATENATE loop output, as for TF2's."""
    kinds = {}
    for name in ("while_loop-counter", "while_loop-data-dependent", "dynamic_rnn-BasicLSTMCell"):
        build, inputs, _, _ = CASES[name]
        with _tf1_graph() as (tf, graph):
            outputs = build(tf)
            path = _save(tf, graph, outputs, tmp_path / f"{name}.pb")
        snap = construct(parse(freeze(path, inputs=inputs))).snapshot
        kinds[name] = snap.layers
    limits = {name: sorted(layer["params"]["kind"] for layer in layers if layer["type"] == "TRIP_LIMIT")
              for name, layers in kinds.items()}
    assert limits["while_loop-counter"] == ["COUNT"]
    assert limits["while_loop-data-dependent"] == ["COUNT", "WHILE"]
    assert limits["dynamic_rnn-BasicLSTMCell"] == ["COUNT"]
    rnn = kinds["dynamic_rnn-BasicLSTMCell"]
    assert [layer["type"] for layer in rnn].count("ITERATOR") == 1
    assert any(layer["type"] == "LOOP_OUTPUT" and layer["params"]["kind"] == "CONCATENATE" for layer in rnn)


def _concat(tf):
    x = tf.compat.v1.placeholder(tf.float32, [4, 3], name="x")
    out = tf.TensorArray(tf.float32, size=4)
    _, o = tf.compat.v1.while_loop(lambda i, o: i < 4, lambda i, o: (i + 1, o.write(i, x[:1] * 2.0)),
                                   [tf.constant(0), out])
    tf.identity(o.concat(), name="out")
    return ["out"]


def _scatter_permuted(tf):
    x = tf.compat.v1.placeholder(tf.float32, [3, 2], name="x")
    inp = tf.TensorArray(tf.float32, size=3).scatter([2, 0, 1], x)
    _, a = tf.compat.v1.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a + inp.read(i)),
                                   [tf.constant(0), tf.zeros([2])])
    tf.identity(a, name="out")
    return ["out"]


def _dynamic_size(tf):
    x = tf.compat.v1.placeholder(tf.float32, [5, 3], name="x")
    ta = tf.TensorArray(tf.float32, size=0, dynamic_size=True)
    _, ta = tf.compat.v1.while_loop(lambda i, t: i < 5, lambda i, t: (i + 1, t.write(i, x[0] * tf.cast(i, tf.float32))),
                                    [0, ta])
    tf.identity(ta.stack(), name="out")
    return ["out"]


@pytest.mark.parametrize("build, op, expected", [
    (_concat, "TensorArrayConcatV3", "stack the array and reshape the result for a concat"),
    (_scatter_permuted, "TensorArrayScatterV3", "read the sequence through TensorArray.unstack"),
    (_dynamic_size, "TensorArrayWriteV3", "make the TensorArray with a fixed size"),
])
def test_tf1_forms_that_do_not_convert_are_reported_with_a_hint(build, op, expected, tmp_path):
    """Refused before any layer exists (exit 2, like the support check), naming the node, with what converts."""
    with _tf1_graph() as (tf, graph):
        outputs = build(tf)
        path = _save(tf, graph, outputs, tmp_path / "model.pb")
    with pytest.raises(UnsupportedOpsError) as info:
        parse(freeze(path))
    assert info.value.exit_code == 2
    errors = info.value.errors
    assert any(e.op == op for e in errors), str(info.value)
    assert any(expected in f"{e.detail} {e.hint}" for e in errors), str(info.value)
