"""Conditionals → TensorRT if-conditionals, on models saved the way users save them: ``tf.saved_model.save`` of a
``tf.Module`` whose ``tf.function`` uses ``tf.cond`` / ``tf.switch_case`` reading variables, a ``tf.cond`` inside a
``tf.while_loop`` body, and a Keras 3 layer calling ``keras.ops.cond`` saved as ``.keras`` — random weights, fixed
seeds.

Each converts (its parsed graph, branches included, through the byte form the pipeline stores), verifies against
TensorFlow on the reference executor with inputs chosen so that every branch is taken (fp32 tolerances,
intermediates included), and builds a serialized engine ahead of time."""

from __future__ import annotations

import numpy as np
import pytest

from converter import construct, freeze
from converter.engine import optimize_network
from converter.errors import UnsupportedOpsError
from converter.graph import Graph, Node, parse
from converter.verify import TensorFlowRunner, verify

FEATURES = 4
#: float inputs in these ranges make ``reduce_sum(x) > 0`` true / false
POSITIVE, NEGATIVE = (0.1, 1.0), (-1.0, -0.1)


def _module(fn, signature, tmp_path, name="module"):
    """``tf.saved_model.save`` of a ``tf.Module`` with two variables whose ``__call__`` is ``fn(tf, module, *args)``."""
    import tensorflow as tf

    class Module(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.random.stateless_normal((FEATURES, FEATURES), seed=(1, 2)) * 0.5)
            self.b = tf.Variable(tf.random.stateless_normal((FEATURES,), seed=(3, 4)))

        @tf.function(input_signature=signature(tf))
        def __call__(self, *args):
            return fn(tf, self, *args)

    path = tmp_path / name
    tf.saved_model.save(Module(), str(path))
    return str(path)


def _x(tf):
    return [tf.TensorSpec((2, FEATURES), tf.float32, name="x")]


def _x_k(tf):
    return [tf.TensorSpec((2, FEATURES), tf.float32, name="x"), tf.TensorSpec((), tf.int32, name="k")]


def _x_p(tf):
    return [tf.TensorSpec((2, FEATURES), tf.float32, name="x"), tf.TensorSpec((), tf.bool, name="p")]


def _cond(tf, m, x):
    return tf.cond(tf.reduce_sum(x) > 0, lambda: tf.nn.relu(tf.matmul(x, m.w) + m.b), lambda: tf.tanh(x) * m.b)


def _switch_case(tf, m, x, k):
    return tf.switch_case(k, [lambda: tf.matmul(x, m.w), lambda: tf.nn.sigmoid(x) + m.b, lambda: x * m.b - 1.0])


def _cond_in_loop(tf, m, x):
    """The branch reads a variable inside the loop body (freezing follows it into the nested branches)."""
    def body(i, h):
        h = tf.cond(tf.reduce_sum(h) > 0, lambda: tf.tanh(tf.matmul(h, m.w)), lambda: h * 0.5 + m.b)
        return i + 1, h

    return tf.while_loop(lambda i, h: i < 4, body, (tf.constant(0), x))[1]


def _two_outputs_passthrough(tf, m, x, p):
    """Two outputs; one branch returns its input unchanged, the other a constant."""
    y, z = tf.cond(p, lambda: (x, tf.matmul(x, m.w)), lambda: (x * 3.0, tf.ones((2, FEATURES))))
    return y + z


def _check(frozen, net, **kwargs):
    report = verify(frozen, net.snapshot, samples=2, intermediates=True, **kwargs)
    assert report.passed, report.render()
    assert report.intermediates["failed"] == 0, report.render()


def _parse_round_trip(frozen, ops):
    graph = parse(frozen)
    found = [n for n in graph.nodes if n.op in ops]
    assert found, graph.op_counts()
    data = graph.to_bytes()
    again = Graph.from_bytes(data)  # the branches survive the byte form the pipeline stores
    assert again.to_bytes() == data
    assert {k: sorted(v) for k, v in again.subgraphs.items()} == {k: sorted(v) for k, v in graph.subgraphs.items()}
    return again


def _kinds(net) -> list[str]:
    return [layer["type"] for layer in net.snapshot.layers]


def test_tf_cond_reading_variables(tmp_path):
    frozen = freeze(_module(_cond, _x, tmp_path))
    graph = _parse_round_trip(frozen, ("If", "StatelessIf"))
    node = next(n for n in graph.nodes if n.op in ("If", "StatelessIf"))
    assert set(graph.subgraphs[node.name]) == {"then_branch", "else_branch"}
    net = construct(graph)
    kinds = _kinds(net)
    assert kinds.count("CONDITION") == 1 and kinds.count("CONDITIONAL_OUTPUT") == 1, kinds
    for taken in (POSITIVE, NEGATIVE):  # then, else
        _check(frozen, net, input_ranges={"x": taken})
    # the branches' layers are named after their TF nodes
    names = {layer["name"] for layer in net.snapshot.layers}
    branch_matmuls = {n.name for n in graph.subgraphs[node.name]["then_branch"].nodes if n.op == "MatMul"}
    assert branch_matmuls and branch_matmuls <= names
    assert optimize_network(net)


def test_switch_case_is_nested_conditionals(tmp_path):
    frozen = freeze(_module(_switch_case, _x_k, tmp_path))
    graph = _parse_round_trip(frozen, ("Case", "StatelessCase"))
    node = next(n for n in graph.nodes if n.op in ("Case", "StatelessCase"))
    assert set(graph.subgraphs[node.name]) == {"branch_0", "branch_1", "branch_2"}
    net = construct(graph)
    assert _kinds(net).count("CONDITION") == 2  # index == 0 ? b0 : (index == 1 ? b1 : b2)
    for k in (0, 1, 2, 7, -1):  # out of range runs the last branch, as in TensorFlow
        _check(frozen, net, input_values={"k": k})
    assert optimize_network(net)


def test_cond_inside_a_while_loop_body(tmp_path):
    frozen = freeze(_module(_cond_in_loop, _x, tmp_path))
    graph = _parse_round_trip(frozen, ("While", "StatelessWhile"))
    loop = next(n for n in graph.nodes if n.op in ("While", "StatelessWhile"))
    body = graph.subgraphs[loop.name]["body"]
    assert any(n.op in ("If", "StatelessIf") for n in body.nodes)
    net = construct(graph)
    assert {"TRIP_LIMIT", "CONDITION", "CONDITIONAL_OUTPUT"} <= set(_kinds(net))
    for taken in (POSITIVE, NEGATIVE):
        _check(frozen, net, input_ranges={"x": taken})
    assert optimize_network(net)


def test_branches_returning_an_input_or_a_constant(tmp_path):
    frozen = freeze(_module(_two_outputs_passthrough, _x_p, tmp_path))
    net = construct(_parse_round_trip(frozen, ("If", "StatelessIf")))
    for p in (True, False):
        _check(frozen, net, input_values={"p": p})
    assert optimize_network(net)


def test_keras3_layer_with_keras_ops_cond(tmp_path):
    import keras

    @keras.saving.register_keras_serializable(package="tf2trt_test")
    class Gate(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], shape[-1]), initializer="glorot_uniform", name="w")

        def call(self, x):
            return keras.ops.cond(keras.ops.sum(x) > 0, lambda: keras.ops.matmul(x, self.w),
                                  lambda: keras.ops.tanh(x) - 1.0)

    keras.utils.set_random_seed(0)
    inp = keras.Input((FEATURES,), name="x")
    path = tmp_path / "gate.keras"
    keras.Model(inp, keras.layers.Dense(3, name="dense")(Gate(name="gate")(inp))).save(path)
    frozen = freeze(str(path))
    # with the pinned Keras/TensorFlow a tensor predicate traces to an If: if that ever changes, this test must say so
    assert any(n.op in ("If", "StatelessIf") for n in frozen.graph_def.node), [n.op for n in frozen.graph_def.node]
    net = construct(_parse_round_trip(frozen, ("If", "StatelessIf")))
    for taken in (POSITIVE, NEGATIVE):
        _check(frozen, net, input_ranges={"x": taken})
    assert optimize_network(net)


def _raw_if(pred_dtype):
    """``tf.raw_ops.If`` on a numeric scalar predicate (TensorFlow: nonzero is true), in a SavedModel."""
    def fn(tf, m, x, p):
        specs = (tf.TensorSpec((2, FEATURES)), tf.TensorSpec((FEATURES, FEATURES)))
        then = tf.function(lambda x, w: [tf.matmul(x, w)]).get_concrete_function(*specs)
        other = tf.function(lambda x, w: [x - w[0]]).get_concrete_function(*specs)
        return tf.raw_ops.If(cond=p, input=[x, m.w.read_value()], Tout=[tf.float32], then_branch=then,
                             else_branch=other)[0]

    def signature(tf):
        return [tf.TensorSpec((2, FEATURES), tf.float32, name="x"), tf.TensorSpec((), pred_dtype(tf), name="p")]

    return fn, signature


@pytest.mark.parametrize("dtype", ["int32", "float32"])
def test_numeric_scalar_predicate(dtype, tmp_path):
    fn, signature = _raw_if(lambda tf: getattr(tf, dtype))
    frozen = freeze(_module(fn, signature, tmp_path))
    graph = _parse_round_trip(frozen, ("If", "StatelessIf"))
    assert [n.attr("Tcond") for n in graph.nodes if n.op in ("If", "StatelessIf")] == [dtype]
    net = construct(graph)
    for p in (0, 3, -2):
        _check(frozen, net, input_values={"p": p})
    assert optimize_network(net)


def test_constant_predicate_converts_the_chosen_branch_inline(tmp_path):
    """Freeze resolves constant predicates; one that is constant only in the IR (fed by a Const) still converts."""
    frozen = freeze(_module(_two_outputs_passthrough, _x_p, tmp_path))
    x = np.random.default_rng(0).standard_normal((2, FEATURES)).astype(np.float32)
    runner = TensorFlowRunner(frozen)
    for p in (True, False):
        graph = parse(frozen)
        k = next(i for i, n in enumerate(graph.nodes) if n.name == "p")
        graph.nodes[k] = Node("p", "Const", [], {"dtype": "bool", "value": np.asarray(p)}, [()])
        graph.inputs = [s for s in graph.inputs if s.name != "p"]
        graph.refresh()
        net = construct(graph)
        assert not {"CONDITION", "CONDITIONAL_INPUT", "CONDITIONAL_OUTPUT"} & set(_kinds(net))
        from converter.reference import ReferenceExecutor

        got = ReferenceExecutor(net.snapshot).run({"x": x})
        want = runner.run({"x": x, "p": np.asarray(p)}, frozen.outputs)
        for name in frozen.outputs:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
    runner.close()


def test_branches_of_different_rank_are_reported(tmp_path):
    def fn(tf, m, x, p):
        return tf.reduce_sum(tf.cond(p, lambda: x, lambda: tf.reshape(x, [-1])))

    frozen = freeze(_module(fn, _x_p, tmp_path))
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    problem = next(e for e in info.value.errors if e.op in ("If", "StatelessIf"))
    assert "different rank in each branch" in problem.detail and "then_branch rank 2" in problem.detail
    assert problem.hint and "reshape" in problem.hint
