"""Step 2: the IR and the up-front support check."""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import UnsupportedOpsError
from converter.freeze import freeze
from converter.graph import parse


def _graph_with_unsupported_ops():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([4, 4], tf.float32, name="x")])
    def f(x):
        a = tf.linalg.det(x)                       # MatrixDeterminant
        b = tf.math.special.bessel_j0(x)                   # BesselJ0 (two nodes below)
        c = tf.math.special.bessel_j0(x * 2.0)
        d = tf.linalg.inv(x)                       # MatrixInverse
        return tf.nn.relu(x) + a + b + c + tf.reduce_sum(d)

    return freeze(f)


def test_every_unsupported_op_is_listed_before_any_layer(monkeypatch):
    from converter import trt as trtshim

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    frozen = _graph_with_unsupported_ops()
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert err.counts["BesselJ0"] == 2
    assert err.counts["MatrixDeterminant"] == 1 and err.counts["MatrixInverse"] == 1
    text = str(err)
    assert "Unsupported ops" in text and "BesselJ0 ×2" in text
    assert err.hint and "docs/ops.md" in err.hint
    assert not built


def test_ir_decodes_attributes_and_constants():
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 8, 8, 3], tf.float32, name="x")])
    def f(x):
        w = tf.constant(np.ones((3, 3, 3, 4), np.float32))
        return tf.nn.conv2d(x, w, strides=[1, 2, 2, 1], padding="SAME")

    graph = parse(freeze(f))
    conv = next(n for n in graph.nodes if n.op == "Conv2D")
    assert conv.attrs["strides"] == [1, 2, 2, 1] and conv.attrs["padding"] == "SAME"
    assert conv.attrs["T"] == "float32"
    assert graph.const(conv.inputs[1]).shape == (3, 3, 3, 4)
    assert conv.output_shapes == [(1, 4, 4, 4)]
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    assert all(order[i.split(":")[0]] < order[n.name] for n in graph.nodes for i in n.inputs)


def test_batchnorm_chain_folds_into_convolution():
    from tests.converter.models import small_cnn

    graph = parse(freeze(small_cnn()))
    ops = graph.op_counts()
    assert "Mul" not in ops and "AddV2" not in ops and "BiasAdd" in ops  # only the Dense bias remains
    conv = next(n for n in graph.nodes if n.op == "Conv2D")
    assert conv.attrs["padding"] == "EXPLICIT"  # ZeroPadding2D folded into the convolution
    assert len(conv.attrs["_fused"]) >= 3  # BiasAdd + BN mul + BN add


# ---------------------------------------------------------------- structural ops (converter/structural.py)
def _raw_frozen(build, inputs):
    """A raw GraphDef (nothing pruned or stripped) built by ``build(*placeholders)``, outputs named by it."""
    import tensorflow as tf

    from converter.freeze import FrozenGraph, TensorSpec

    graph = tf.Graph()
    with graph.as_default():
        placeholders = [tf.compat.v1.placeholder(tf.float32, shape, name=name) for name, shape in inputs.items()]
        outputs = build(*placeholders)
    return FrozenGraph(graph.as_graph_def(), [TensorSpec(n, tuple(s)) for n, s in inputs.items()],
                       [t.op.name for t in outputs])


@pytest.fixture
def no_network(monkeypatch):
    from converter import trt as trtshim

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    return built


def test_structural_ops_are_known_in_one_place():
    import importlib

    import converter.ops  # noqa: F401 - registers every converter
    from converter.registry import REGISTRY
    from converter.structural import CONTROL_ONLY_OPS, PASS_THROUGH_OPS, SOURCE_OPS, STRUCTURAL_OPS, kind

    assert STRUCTURAL_OPS == PASS_THROUGH_OPS | CONTROL_ONLY_OPS | SOURCE_OPS
    assert not (PASS_THROUGH_OPS & CONTROL_ONLY_OPS or PASS_THROUGH_OPS & SOURCE_OPS or CONTROL_ONLY_OPS & SOURCE_OPS)
    assert {"Identity", "Snapshot", "StopGradient"} <= PASS_THROUGH_OPS and "NoOp" in CONTROL_ONLY_OPS
    assert {"Const", "Placeholder"} == SOURCE_OPS
    assert all(kind(op) for op in STRUCTURAL_OPS) and kind("Conv2D") is None
    freeze_mod, graph_mod = importlib.import_module("converter.freeze"), importlib.import_module("converter.graph")
    assert freeze_mod._PASSTHROUGH_OPS is PASS_THROUGH_OPS and graph_mod.STRUCTURAL_OPS is STRUCTURAL_OPS
    # the docs list every pass-through op (from the same set) with the same converter
    entries = {op: REGISTRY[op] for op in PASS_THROUGH_OPS}
    assert len({e.convert for e in entries.values()}) == 1


def test_undeclared_placeholder_is_reported_by_the_support_check(no_network):
    from converter.errors import EXIT_BAD_INPUT, ConversionErrors

    frozen = _raw_frozen(lambda x, y: [x * 2.0 + y], {"x": (2, 3), "y": (2, 3)})
    frozen.inputs = frozen.inputs[:1]  # "y" is a placeholder, not a declared input
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert isinstance(err, ConversionErrors) and err.exit_code == EXIT_BAD_INPUT
    assert err.counts == {"Placeholder (not a declared input)": 1}
    assert err.examples["Placeholder (not a declared input)"] == ["y"]
    (problem,) = err.errors
    assert problem.node == "y" and "not a declared input" in problem.message
    assert "declare it as an input" in err.hint and "default" in err.hint
    assert "y" in str(err)
    assert not no_network


def test_structural_problems_are_collected_with_every_other_problem_in_one_pass(no_network):
    import tensorflow as tf

    def build(x, y, z):
        with tf.control_dependencies([tf.no_op(name="ctrl")]):
            a = tf.identity(x, name="a")
        return [tf.linalg.det(a) + tf.reduce_sum(y) + tf.reduce_sum(z)]

    frozen = _raw_frozen(build, {"x": (3, 3), "y": (2,), "z": (2,)})
    frozen.inputs = frozen.inputs[:1]  # y and z are undeclared
    # a data edge from the NoOp: TensorFlow refuses to build one, a hand-edited GraphDef can hold it
    bad = frozen.graph_def.node.add()
    bad.CopyFrom(next(n for n in frozen.graph_def.node if n.name == "a"))
    bad.name = "reads_noop"
    del bad.input[:]
    bad.input.append("ctrl")
    frozen.outputs.append("reads_noop")
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    err = info.value
    assert err.counts["Placeholder (not a declared input)"] == 2
    assert sorted(err.examples["Placeholder (not a declared input)"]) == ["y", "z"]
    assert err.counts["NoOp (read as data)"] == 1 and err.counts["MatrixDeterminant"] == 1
    noop = next(e for e in err.errors if e.op == "NoOp")
    assert "reads_noop" in noop.message and "control" in noop.hint
    assert not no_network


def test_a_noop_control_dependency_is_not_a_problem():
    import tensorflow as tf

    from converter.graph import check_support, from_frozen

    def build(x):
        with tf.control_dependencies([tf.no_op(name="ctrl")]):
            return [tf.identity(x * 2.0, name="y")]

    graph = from_frozen(_raw_frozen(build, {"x": (2, 3)}))
    assert "NoOp" in graph.op_counts()
    check_support(graph)  # no exception


# ---------------------------------------------------------------- the byte form (what parse hands construct)
def _zoo_frozen():
    """``(id, frozen graph)`` for every op-table case (fast tier) and the small Keras models."""
    from tests.converter.models import small_cnn, two_io_model
    from tests.converter.ops import test_array_ops, test_image_quant_ops, test_math_ops, test_nn_ops, test_patterns
    from tests.converter.ops.harness import freeze_case

    for table in (test_array_ops.TABLE, test_image_quant_ops.TABLE, test_math_ops.TABLE, test_nn_ops.TABLE,
                  test_patterns.TABLE):
        for c in table:
            if not any(getattr(m, "name", None) == "slow" for m in c.marks):
                yield c.id, freeze_case(c)[0]
    yield "small_cnn", freeze(small_cnn())
    yield "two_io_model", freeze(two_io_model())


def _outcome(graph):
    """The snapshot ``construct`` makes of ``graph``, or the conversion error it raises, as comparable values."""
    from converter.construct import construct
    from converter.errors import Tf2TrtError

    try:
        snap = construct(graph).snapshot
    except Tf2TrtError as exc:
        return None, None, (type(exc).__name__, str(exc))
    return snap, snap.digest(), None


def test_a_parsed_graph_through_its_bytes_constructs_the_same_network():
    """Over every op-table graph and two Keras models: bytes → graph → bytes is the identity, and the network
    built from the loaded graph is the one built from the parsed graph (snapshot ==, same digest)."""
    from converter.graph import Graph

    problems, count = [], 0
    for case_id, frozen in _zoo_frozen():
        graph = parse(frozen)
        blob = graph.to_bytes()
        loaded = Graph.from_bytes(blob)
        if loaded.to_bytes() != blob or graph.to_bytes() != blob:
            problems.append(f"{case_id}: the bytes change on a round trip or a second call")
        want, got = _outcome(graph), _outcome(loaded)
        if want[1:] != got[1:] or (want[0] is not None and want[0] != got[0]):
            problems.append(f"{case_id}: {want[1:]} from the parsed graph, {got[1:]} from its bytes")
        count += 1
    assert count > 400 and not problems, "\n".join(problems[:20])


def test_the_byte_form_keeps_every_kind_of_value_and_no_cache():
    from converter.freeze import TensorSpec
    from converter.graph import Graph, Node

    fortran = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))
    attrs = {"nan": float("nan"), "inf": float("inf"), "ninf": -float("inf"), "text_nan": "nan", "none": None,
             "i": 7, "f": 0.1, "neg_zero": -0.0, "b": True, "shape": [1, -1, 3], "shapes": [None, [2, 3]],
             "dtypes": ["float32", "int32"], "tuple": (1, (2, 3)), "np_float": np.float32(1.5), "np_int": np.int64(3),
             "scalar": np.array(2.0, np.float32), "fortran": fortran, "raw": b"\x00\xff", "nested": {"k": [1.0]},
             "strings": np.array([[b"a", b"bc"]], dtype=object), "empty": []}
    c = Node("c", "Const", [], {"dtype": "float32", "value": np.ones((2, 3), np.float32)}, [(2, 3)])
    y = Node("y", "Frob", ["x:0", "c:0"], attrs, [(2, 3), None])
    graph = Graph([Node("x", "Placeholder", [], {"dtype": "float32", "shape": [2, 3]}, [(2, 3)]), c, y],
                  [TensorSpec("x", (2, 3), "float32")], ["y"])
    graph.aliases = {"b:0": None, "a:0": "y:0"}  # not in key order: construct applies them in order
    graph.__dict__["_tf2trt_static"] = {"c": True}  # a converter's memo, not state
    blob = graph.to_bytes()
    assert b"_tf2trt_static" not in blob
    loaded = Graph.from_bytes(blob)
    assert "_tf2trt_static" not in loaded.__dict__
    assert list(loaded.aliases.items()) == [("b:0", None), ("a:0", "y:0")]
    assert [n.name for n in loaded.nodes] == ["x", "c", "y"] and loaded.consumers["c"] == [loaded.by_name["y"]]
    assert loaded.inputs == graph.inputs and loaded.outputs == ["y"]
    got = loaded.by_name["y"]
    assert got.inputs == ["x:0", "c:0"] and got.output_shapes == [(2, 3), None]
    a = got.attrs
    assert np.isnan(a["nan"]) and a["inf"] == float("inf") and a["ninf"] == -float("inf") and a["text_nan"] == "nan"
    assert str(a["neg_zero"]) == "-0.0" and a["f"] == 0.1 and a["i"] == 7 and a["b"] is True and a["none"] is None
    assert a["shapes"] == [None, [2, 3]] and a["tuple"] == (1, (2, 3)) and a["raw"] == b"\x00\xff"
    assert type(a["np_float"]) is np.float32 and type(a["np_int"]) is np.int64 and a["np_float"] == 1.5
    assert a["scalar"].shape == () and a["scalar"].dtype == np.float32  # 0-d stays 0-d
    assert np.array_equal(a["fortran"], fortran) and a["nested"] == {"k": [1.0]} and a["empty"] == []
    assert a["strings"].dtype == object and a["strings"].shape == (1, 2) and a["strings"][0, 1] == b"bc"
    assert set(a) == set(attrs) and np.array_equal(loaded.const("c:0"), np.ones((2, 3), np.float32))
    assert loaded.to_bytes() == blob
    # the same values in another memory layout or attribute order are the same bytes
    y.attrs = dict(reversed(list(attrs.items())), fortran=np.ascontiguousarray(fortran))
    assert graph.to_bytes() == blob
    # a graph fuse never saw has no aliases, and gets none
    del graph.aliases
    assert "aliases" not in Graph.from_bytes(graph.to_bytes()).__dict__


def test_a_damaged_graph_blob_is_bad_input_and_never_unpickled(tmp_path):
    import io
    import pickle

    from converter.errors import EXIT_BAD_INPUT, DamagedGraphError
    from converter.freeze import TensorSpec
    from converter.graph import Graph, Node

    value = np.arange(4, dtype=np.float32)
    graph = Graph([Node("x", "Placeholder", [], {"dtype": "float32"}, [(4,)]),
                   Node("c", "Const", [], {"dtype": "float32", "value": value}, [(4,)])],
                  [TensorSpec("x", (4,))], ["x"])
    blob = graph.to_bytes()
    marker = tmp_path / "unpickled"
    evil = io.BytesIO()
    # an object array whose pickle would run code when loaded with allow_pickle=True
    np.save(evil, np.array([_Boom(str(marker))], dtype=object), allow_pickle=True)
    head = blob[:blob.index(b"\x93NUMPY")]
    bad = {
        "empty": b"", "other format": b"TF2TRTSNAP2\n" + blob[12:], "a report": b'{"nodes": 2}',
        "truncated": blob[:-3], "trailing bytes": blob + b"x", "bad length": blob.replace(b"\n", b"\nx", 1),
        "edited JSON": blob.replace(b'"Const"', b'"Const" ', 1), "pickled array": head + evil.getvalue(),
        "unknown tag": blob.replace(b'{"array"', b'{"pickle"', 1),
    }
    for what, data in bad.items():
        with pytest.raises(DamagedGraphError) as info:
            Graph.from_bytes(data)
        assert info.value.exit_code == EXIT_BAD_INPUT and info.value.hint, what
    assert not marker.exists()
    assert pickle.loads(pickle.dumps(_Boom(str(marker)))) is None and marker.exists()  # the payload is live


class _Boom:
    """Unpickling it creates a file: proof a loader did (or did not) run pickled code."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (_touch, (self.path,))


def _touch(path: str) -> None:
    open(path, "w").close()


_OTHER_PROCESS = r"""
import hashlib, importlib.abc, json, sys

class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("construct must not need TensorFlow")

blocker = NoTensorFlow()
sys.meta_path.insert(0, blocker)
from converter.construct import construct
from converter.graph import Graph

snap = construct(Graph.from_bytes(open(sys.argv[1], "rb").read())).snapshot
tf_loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
sys.meta_path.remove(blocker)
from converter.freeze import FrozenGraph
from converter.graph import parse

blob = parse(FrozenGraph.from_bytes(open(sys.argv[2], "rb").read())).to_bytes()
print(json.dumps({"digest": snap.digest(), "tf_loaded": tf_loaded, "blob": hashlib.sha256(blob).hexdigest()}))
"""


def test_another_process_parses_the_same_bytes_and_constructs_without_tensorflow(tmp_path):
    """Parse is deterministic across processes (another hash seed), and constructing from the bytes runs with
    TensorFlow and Keras imports blocked: the construct stage needs neither."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    from converter.construct import construct
    from tests.converter.models import small_cnn

    frozen = freeze(small_cnn())
    graph = parse(frozen)
    (tmp_path / "graph.bin").write_bytes(graph.to_bytes())
    (tmp_path / "frozen.bin").write_bytes(frozen.to_bytes())
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": repo}
    res = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(tmp_path / "graph.bin"),
                          str(tmp_path / "frozen.bin")], env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["tf_loaded"] == []
    assert out["digest"] == construct(graph).snapshot.digest()
    assert out["blob"] == hashlib.sha256(graph.to_bytes()).hexdigest()


@pytest.mark.parametrize("layer", ["Dropout", "GaussianNoise", "GaussianDropout"])
def test_random_layers_left_in_training_mode_are_reported_with_a_hint(layer):
    """A Keras model traced while its Dropout/noise layers still draw random numbers (called with training=True)
    is a user mistake: freeze refuses it (exit 2) before folding turns the draws into one fixed mask."""
    import keras

    keras.utils.set_random_seed(3)
    inp = keras.Input((6,), name="x")
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), getattr(keras.layers, layer)(0.3)])
    import tensorflow as tf

    # the mistake: a serving function that calls the model in training mode
    serve = tf.function(lambda x: model(x, training=True), input_signature=[tf.TensorSpec([2, 6], tf.float32)])
    from converter.errors import FreezeError

    with pytest.raises(FreezeError) as info:
        freeze(serve)
    err = info.value
    assert err.exit_code == 2
    assert "depend on random values" in str(err) and "training=False" in (err.hint or ""), str(err)


def test_a_random_op_the_support_check_sees_has_the_same_hint():
    """A GraphDef that still holds a random op (e.g. a .pb frozen elsewhere) meets the same hint at parse time."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [2, 3], name="x")
        tf.identity(x * tf.random.uniform([2, 3], seed=1), name="y")
    from converter.freeze import FrozenGraph, TensorSpec, add_shapes

    frozen = FrozenGraph(add_shapes(graph.as_graph_def()), [TensorSpec("x", (2, 3), "float32")], ["y:0"])
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    assert "random values: dropout or noise left in training mode" in str(info.value)
    assert any("training=False" in (e.hint or "") for e in info.value.errors)
