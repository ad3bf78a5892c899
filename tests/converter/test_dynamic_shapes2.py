"""Dynamic shapes, second part: Range, StridedSlice, Tile and batched GatherV2 with values computed from
run-time shapes (issue 10).

Each table row is real TensorFlow code (a ``tf.function`` over inputs with unknown dimensions), frozen with an
optimization profile, converted, verified against TensorFlow at the profile's min/opt/max shapes on the reference
executor, and built into an engine.  The profiles' ``min`` deliberately makes some slices empty or clamped (e.g.
``x[:, 3:7]`` on a sequence of 2), so TensorFlow's clamping rules are checked, not only the common case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from converter import construct, freeze  # noqa: E402
from converter.engine import optimize_network  # noqa: E402
from converter.errors import UnsupportedOpsError  # noqa: E402
from converter.graph import parse  # noqa: E402
from converter.profiles import ShapeRange  # noqa: E402
from converter.verify import verify  # noqa: E402

#: x0: (batch, sequence, 4) with both leading axes dynamic; x1: (batch, length), a second sequence
SEQ = ShapeRange((1, 2, 4), (2, 5, 4), (3, 9, 4))
OTHER = ShapeRange((1, 1), (2, 3), (3, 7))


@dataclass(frozen=True)
class Dyn:
    id: str
    fn: Callable
    ops: tuple  #: TF ops the frozen graph must contain (the ones under test)
    layers: tuple = ()  #: TensorRT layer types the network must contain
    two: bool = False  #: a second input x1 (float, (None, None))

    def param(self):
        return pytest.param(self, id=self.id)


def _tf():
    import tensorflow as tf

    return tf


def _shape(x, i):
    return _tf().shape(x)[i]


CASES = [
    # ------------------------------------------------ Range with computed bounds (a LINSPACE fill)
    Dyn("range_of_sequence_length", lambda x: _tf().range(_shape(x, 1)), ("Range",), ("FILL",)),
    Dyn("range_int64", lambda x: _tf().range(_tf().shape(x, out_type=_tf().int64)[1]), ("Range",), ("FILL",)),
    Dyn("range_start_limit_delta", lambda x: _tf().range(1, _shape(x, 1) * 3, 2), ("Range",), ("FILL",)),
    Dyn("range_negative_delta", lambda x: _tf().range(_shape(x, 1), -3, -2), ("Range",), ("FILL",)),
    Dyn("range_computed_start_and_delta", lambda x: _tf().range(_shape(x, 1), 20, _shape(x, 0)), ("Range",),
        ("FILL",)),
    Dyn("range_float_positions",
        lambda x: _tf().range(_tf().cast(_shape(x, 1), _tf().float32)) * 0.5 + x[:, :, 0], ("Range",), ("FILL",)),
    Dyn("range_float_fractional_delta",
        lambda x: _tf().range(0.5, _tf().cast(_shape(x, 1), _tf().float32), 0.3), ("Range",), ("FILL",)),
    Dyn("range_float_computed_delta",
        lambda x: _tf().range(_tf().cast(_shape(x, 0), _tf().float32), 10.0,
                              _tf().cast(_shape(x, 1), _tf().float32) / 4), ("Range",), ("FILL",)),
    Dyn("causal_mask_from_sequence_length",
        lambda x: _tf().cast(_tf().range(_shape(x, 1))[:, None] >= _tf().range(_shape(x, 1))[None, :],
                             _tf().float32) * x[:, :1, :1], ("Range",), ("FILL",)),
    # ------------------------------------------------ partial slices of a dynamic axis
    Dyn("slice_drop_first", lambda x: x[:, 1:], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_drop_last", lambda x: x[:, :-1], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_last_three", lambda x: x[:, -3:], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_step_two", lambda x: x[:, 1::2], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_reversed", lambda x: x[:, ::-1], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_reversed_from_second_last", lambda x: x[:, -2::-2], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_last_element", lambda x: x[:, -1], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_new_axes_and_shrink", lambda x: x[:, None, 1:, None, 2], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_ellipsis", lambda x: x[..., 1:, :2], ("StridedSlice",), ("SLICE",)),
    Dyn("slice_clamped_window", lambda x: x[:, 3:7], ("StridedSlice",), ("SLICE",)),  # empty at min (length 2)
    Dyn("slice_both_dynamic_axes", lambda x: x[1:, :-2], ("StridedSlice",), ("SLICE",)),
    # ------------------------------------------------ begin/end computed from another tensor's shape
    Dyn("slice_to_other_length", lambda x, y: x[:, :_shape(y, 1)], ("StridedSlice",), ("SLICE",), two=True),
    Dyn("slice_from_other_length", lambda x, y: x[:, _shape(y, 1) - 1:], ("StridedSlice",), ("SLICE",), two=True),
    Dyn("slice_negative_computed_end", lambda x, y: x[:, :-_shape(y, 0)], ("StridedSlice",), ("SLICE",), two=True),
    Dyn("slice_computed_index", lambda x, y: x[:, _shape(y, 1) - 1], ("StridedSlice",), ("SLICE",), two=True),
    Dyn("slice_computed_reversed", lambda x, y: x[:, _shape(y, 1)::-1], ("StridedSlice",), ("SLICE",), two=True),
    # ------------------------------------------------ Tile with computed multiples
    Dyn("tile_by_other_length", lambda x, y: _tf().tile(x[:, :1], [1, _shape(y, 1), 1]), ("Tile",), ("SLICE",),
        two=True),
    Dyn("tile_by_other_batch", lambda x, y: _tf().tile(x, [_shape(y, 0), 2, 1]), ("Tile",), ("SLICE",), two=True),
    # ------------------------------------------------ GatherV2 with batch_dims > 1 over dynamic dimensions
    Dyn("gather_batch_dims_2",  # per (batch, position) row, indices read from the data
        lambda x: _tf().gather(x, _tf().cast(_tf().abs(x[:, :, :3]) * 10, _tf().int32) % 4, axis=2, batch_dims=2),
        ("GatherV2",), ("GATHER",)),
    Dyn("gather_positions_along_sequence",
        lambda x: _tf().gather(x[:, :, None, :] + _tf().zeros_like(x[:, :1, :, None]),
                               _tf().broadcast_to(_tf().range(_shape(x, 1))[None, :, None] * 0 + [[[1, 0]]],
                                                  [_shape(x, 0), _shape(x, 1), 2]), axis=2, batch_dims=2),
        ("GatherV2", "Range"), ("GATHER", "FILL")),
]


def _convert(case: Dyn, profile=None):
    import tensorflow as tf

    specs = [tf.TensorSpec((None, None, 4), tf.float32, name="x0")]
    if case.two:
        specs.append(tf.TensorSpec((None, None), tf.float32, name="x1"))
    func = tf.function(case.fn, input_signature=specs, autograph=False)
    if profile is None:
        profile = {"x0": SEQ, **({"x1": OTHER} if case.two else {})}
    frozen = freeze(func, profiles=[profile])
    return frozen, construct(parse(frozen))


@pytest.mark.parametrize("case", [c.param() for c in CASES])
def test_computed_shapes_convert_verify_and_build(case):
    frozen, net = _convert(case)
    ops = {n.op for n in frozen.graph_def.node}
    assert set(case.ops) <= ops, f"the graph lacks {set(case.ops) - ops}"
    types = net.snapshot.layer_types()
    assert all(types.get(t) for t in case.layers), types
    report = verify(frozen, net.snapshot)
    assert report.passed, report.render()
    assert [row["inputs"]["x0"] for row in report.shapes] == [list(SEQ.min), list(SEQ.opt), list(SEQ.max)]
    assert len(optimize_network(net.snapshot)) > 0


def test_gather_batch_dims_case_really_has_two_batch_dims():
    frozen, _ = _convert(next(c for c in CASES if c.id == "gather_batch_dims_2"))
    batch = [n.attr["batch_dims"].i for n in frozen.graph_def.node if n.op == "GatherV2"]
    assert batch == [2]


def test_static_shapes_fold_ranges_and_slices():
    """With every dimension fixed by the profile nothing is computed: the range is a constant and the slice has
    static parameters, as before shape tensors existed."""
    fixed = ShapeRange((2, 5, 4), (2, 5, 4), (2, 5, 4))
    case = Dyn("static", lambda x: x[:, 1:] + _tf().cast(_tf().range(_shape(x, 1) - 1), _tf().float32)[:, None],
               ("Range", "StridedSlice"))
    frozen, net = _convert(case, {"x0": fixed})
    types = net.snapshot.layer_types()
    assert not {"SHAPE", "FILL"} & set(types), types
    (sl,) = [layer for layer in net.snapshot.layers if layer["type"] == "SLICE"]
    assert sl["params"]["start"] == [0, 1, 0] and sl["params"]["shape"] == [2, 4, 4]
    assert verify(frozen, net.snapshot).passed


# ------------------------------------------------------------------ what is still refused, before any layer
REFUSED = [
    # TensorRT shape tensors cannot come from data values
    ("range_from_data", lambda x: _tf().range(_tf().cast(_tf().reduce_max(x), _tf().int32)), "Range",
     "start/limit/delta must be a constant or computed from tensor shapes"),
    ("slice_end_from_data", lambda x: x[:, :_tf().cast(_tf().reduce_max(x), _tf().int32)], "StridedSlice",
     "begin/end must be a constant or computed from tensor shapes"),
    ("slice_computed_stride", lambda x: _tf().strided_slice(x, [0, 0, 0], [3, 9, 4], [1, _shape(x, 0), 1]),
     "StridedSlice", "the strides must be a constant"),
    ("tile_from_data", lambda x: _tf().tile(x, [1, _tf().cast(_tf().reduce_max(x), _tf().int32), 1]), "Tile",
     "the multiples must be a constant or computed from tensor shapes"),
]


@pytest.mark.parametrize("fn, op, message", [pytest.param(f, o, m, id=i) for i, f, o, m in REFUSED])
def test_still_refused_in_the_support_check(fn, op, message):
    import tensorflow as tf

    func = tf.function(fn, input_signature=[tf.TensorSpec((None, None, 4), tf.float32, name="x0")], autograph=False)
    frozen = freeze(func, profiles=[{"x0": SEQ}])
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)  # the support check runs here, before construct creates any layer
    text = str(info.value)
    assert op in text and message in text, text
    assert info.value.exit_code == 2 and info.value.hint


# ------------------------------------------------------------------ a real model: keras-hub DeBERTa-v3
@pytest.mark.slow
def test_keras_hub_deberta_v3_with_dynamic_batch_and_sequence():
    """DeBERTa's disentangled attention builds relative positions with Range over the sequence length, slices
    them with computed bounds and gathers with batch_dims=3: all refused before, all on dynamic axes here."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    model = keras_hub.models.DebertaV3Backbone(vocabulary_size=100, num_layers=1, num_heads=2, hidden_dim=16,
                                               intermediate_dim=32, max_sequence_length=64, bucket_size=8)
    text = {n: ShapeRange((1, 4), (2, 16), (3, 40)) for n in ("token_ids", "padding_mask")}
    frozen = freeze(model, profiles=[text])
    assert {s.name: s.shape for s in frozen.inputs} == {n: (-1, -1) for n in text}
    graph = parse(frozen)
    ops = {n.op for n in graph.nodes}
    assert {"Range", "StridedSlice", "GatherV2"} <= ops
    assert any(n.op == "GatherV2" and int(n.attr("batch_dims", 0)) > 1 for n in graph.nodes)
    net = construct(graph)
    assert net.snapshot.layer_types().get("FILL")
    report = verify(frozen, net.snapshot, intermediates=True, input_ranges={"padding_mask": (0, 2)})
    assert report.passed, report.render()
    assert report.intermediates["failed"] == 0 and report.intermediates["checked"] > 100
    assert [row["inputs"]["token_ids"] for row in report.shapes] == [[1, 4], [2, 16], [3, 40]]
    assert len(optimize_network(net)) > 0


@pytest.mark.slow
def test_keras_hub_gpt2_causal_mask_over_a_dynamic_sequence():
    """GPT-2's causal mask compares two ``Range``s over the run-time sequence length (refused before)."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    model = keras_hub.models.GPT2Backbone(vocabulary_size=100, num_layers=1, num_heads=2, hidden_dim=16,
                                          intermediate_dim=32, max_sequence_length=64)
    text = {n: ShapeRange((1, 4), (2, 16), (3, 40)) for n in ("token_ids", "padding_mask")}
    frozen = freeze(model, profiles=[text])
    graph = parse(frozen)
    assert sum(n.op == "Range" for n in graph.nodes) == 2
    net = construct(graph)
    assert net.snapshot.layer_types().get("FILL") == 2
    report = verify(frozen, net.snapshot, intermediates=True, input_ranges={"padding_mask": (0, 2)})
    assert report.passed and report.intermediates["failed"] == 0, report.render()
    assert [row["inputs"]["token_ids"] for row in report.shapes] == [[1, 4], [2, 16], [3, 40]]
    assert len(optimize_network(net)) > 0


def test_a_loop_counter_index_keeps_the_loop_hint():
    """x[i] with a while loop's counter is data to TensorRT, not a shape: refused, pointing at tensor lists."""
    import tensorflow as tf

    def fn(x):
        _, acc = tf.while_loop(lambda i, a: i < 4, lambda i, a: (i + 1, a + x[i]), [tf.constant(0), tf.zeros([3])])
        return acc

    func = tf.function(fn, input_signature=[tf.TensorSpec((4, 3), tf.float32, name="x0")])
    with pytest.raises(UnsupportedOpsError) as info:
        parse(freeze(func))
    assert "StridedSlice" in str(info.value) and "tf.TensorArray" in info.value.hint
