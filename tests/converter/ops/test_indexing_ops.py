"""Indexing, scatter and segment ops: Roll, OneHot, MatrixBandPart, ReverseSequence, Cumprod, TensorScatter*,
UnsortedSegment*, DenseBincount and GatherV2 with batch_dims."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, boolean, case, f32, i32, params, run_case

_RNG = np.random.default_rng(11)
K = tf.constant(_RNG.standard_normal((3, 3, 3, 4)).astype(np.float32))


def conv(x):
    """A convolution first, so the op under test sees a channels-first tensor layout."""
    return tf.nn.conv2d(x, K, 1, "SAME")


def ints(shape, values) -> In:
    return In(tuple(shape), "int32", values=tuple(values))


def scatter(op):
    return lambda t, u: getattr(tf.raw_ops, op)(tensor=t, indices=_IDX, updates=u)


_IDX = tf.constant([[0, 1], [2, 0], [0, 1], [1, 3]], tf.int32)  # (0, 1) twice: duplicates accumulate
_UNIQUE = tf.constant([[2], [0]], tf.int32)

TABLE = [
    # ---------------------------------------------------------------- Roll
    case("Roll/scalar", lambda x: tf.roll(x, 2, 0), [f32(5)], "Roll"),
    case("Roll/negative_shift_axis", lambda x: tf.roll(x, -1, -1), [f32(2, 3, 4)], "Roll"),
    case("Roll/multi_axis_swin", lambda x: tf.roll(x, [-3, -3], [1, 2]), [f32(2, 7, 7, 3)], "Roll"),
    case("Roll/repeated_axis_and_big_shift", lambda x: tf.roll(x, [2, 9, -1], [1, 1, 0]), [i32(3, 4)], "Roll"),
    case("Roll/layout", lambda x: tf.roll(conv(x), [1, -2], [1, 3]), [f32(1, 3, 3, 3)], "Roll"),
    case("Roll/bool_rank5", lambda x: tf.roll(x, [1, 1], [0, 4]), [boolean(2, 1, 2, 1, 3)], "Roll"),
    # ---------------------------------------------------------------- OneHot
    case("OneHot/last_axis_negatives", lambda i: tf.one_hot(i, 4), [ints((2, 3), [-1, 0, 3, 5, 2, 1])], "OneHot"),
    case("OneHot/axis0_on_off", lambda i: tf.one_hot(i, 3, on_value=5.0, off_value=-1.0, axis=0),
         [i32(4, low=-2, high=4)], "OneHot"),
    case("OneHot/middle_axis_i32", lambda i: tf.one_hot(i, 5, on_value=7, off_value=2, axis=1, dtype=tf.int32),
         [i32(2, 3, low=-1, high=6)], "OneHot"),
    case("OneHot/i64_tensor_on", lambda i, v: tf.one_hot(tf.cast(i, tf.int64), 3, on_value=v[0], off_value=v[1]),
         [i32(3, low=0, high=3), f32(2)], "OneHot"),
    case("OneHot/f16_i8_indices", lambda i: tf.one_hot(tf.cast(i, tf.int8), 3, dtype=tf.float16),
         [i32(4, low=-1, high=4)], "OneHot"),
    case("OneHot/bool_rank4", lambda i: tf.one_hot(i, 2, on_value=True, off_value=False, axis=2),
         [i32(1, 2, 2, 3, low=0, high=2)], "OneHot"),
    # ---------------------------------------------------------------- MatrixBandPart
    case("MatrixBandPart/causal", lambda x: tf.linalg.band_part(x, -1, 0), [f32(2, 4, 4)], "MatrixBandPart"),
    case("MatrixBandPart/band", lambda x: tf.linalg.band_part(x, 1, 2), [f32(5, 3)], "MatrixBandPart"),
    case("MatrixBandPart/upper_i32_rank5", lambda x: tf.linalg.band_part(x, 0, -1), [i32(1, 2, 1, 3, 4)],
         "MatrixBandPart"),
    case("MatrixBandPart/causal_mask_const", lambda x: x + (1.0 - tf.linalg.band_part(tf.ones((4, 4)), -1, 0)) * -1e9,
         [f32(2, 4, 4)], ("AddV2",)),
    case("MatrixBandPart/all", lambda x: tf.linalg.band_part(x, -1, -1) * 2.0, [f32(3, 3)], "MatrixBandPart",
         layers=False),  # the whole matrix: no layer
    # ---------------------------------------------------------------- ReverseSequence
    case("ReverseSequence/batch_major", lambda x, n: tf.reverse_sequence(x, n, seq_axis=1, batch_axis=0),
         [f32(3, 5, 2), ints((3,), [5, 0, 2])], "ReverseSequence"),
    case("ReverseSequence/time_major_i64", lambda x: tf.reverse_sequence(
        x, tf.constant([1, 4, 3], tf.int64), seq_axis=0, batch_axis=1), [i32(4, 3)], "ReverseSequence"),
    case("ReverseSequence/negative_axes_layout", lambda x: tf.raw_ops.ReverseSequence(
        input=conv(x), seq_lengths=tf.constant([2, 3, 1]), seq_dim=2, batch_dim=1), [f32(1, 3, 3, 3)],
        "ReverseSequence"),
    # ---------------------------------------------------------------- Cumprod
    case("Cumprod/axis0", lambda x: tf.math.cumprod(x, axis=0), [f32(5, 3, low=0.5, high=1.5)], "Cumprod"),
    case("Cumprod/exclusive", lambda x: tf.math.cumprod(x, axis=1, exclusive=True), [f32(2, 7, low=-2, high=2)],
         "Cumprod"),
    case("Cumprod/reverse", lambda x: tf.math.cumprod(x, axis=-1, reverse=True), [f32(2, 6, low=-2, high=2)],
         "Cumprod"),
    case("Cumprod/exclusive_reverse_i32", lambda x: tf.math.cumprod(x, axis=1, exclusive=True, reverse=True),
         [i32(2, 9, low=-3, high=4)], "Cumprod"),
    case("Cumprod/length1_rank5", lambda x: tf.math.cumprod(x, axis=2), [f32(1, 2, 1, 2, 2)], "Cumprod"),
    case("Cumprod/exclusive_length1", lambda x: tf.math.cumprod(x, axis=0, exclusive=True), [i32(1, 3)], "Cumprod"),
    # ---------------------------------------------------------------- TensorScatter*
    case("TensorScatterUpdate/rows", lambda t, u: tf.tensor_scatter_nd_update(t, _UNIQUE, u),
         [f32(4, 3), f32(2, 3)], "TensorScatterUpdate"),
    case("TensorScatterUpdate/elements_i32", lambda t, u: tf.tensor_scatter_nd_update(
        t, tf.constant([[0, 1], [2, 2], [1, 0]]), u), [i32(3, 3), i32(3)], "TensorScatterUpdate"),
    case("TensorScatterUpdate/tensor_indices_i64", lambda t, i, u: tf.tensor_scatter_nd_update(
        t, tf.cast(i, tf.int64), u), [f32(5, 2), ints((2, 1), [4, 1]), f32(2, 2)], "TensorScatterUpdate"),
    case("TensorScatterUpdate/bool_rank5", lambda t, u: tf.tensor_scatter_nd_update(
        t, tf.constant([[1, 0], [0, 1]]), u), [boolean(2, 2, 1, 2, 3), boolean(2, 1, 2, 3)], "TensorScatterUpdate"),
    case("TensorScatterUpdate/const_updates", lambda t: tf.tensor_scatter_nd_update(t, _UNIQUE, tf.ones((2, 3))),
         [f32(3, 3)], "TensorScatterUpdate"),
    case("TensorScatterAdd/duplicates", scatter("TensorScatterAdd"), [f32(3, 4), f32(4)], "TensorScatterAdd"),
    case("TensorScatterSub/duplicates_i32", scatter("TensorScatterSub"), [i32(3, 4), i32(4)], "TensorScatterSub"),
    case("TensorScatterMax/duplicates", scatter("TensorScatterMax"), [f32(3, 4), f32(4)], "TensorScatterMax"),
    case("TensorScatterMin/duplicates_i32", scatter("TensorScatterMin"), [i32(3, 4), i32(4)], "TensorScatterMin"),
    case("TensorScatterAdd/slices", lambda t, u: tf.tensor_scatter_nd_add(t, tf.constant([[1], [0], [1]]), u),
         [f32(2, 3, 2), f32(3, 3, 2)], "TensorScatterAdd"),
    case("TensorScatterMax/tensor_indices", lambda t, i, u: tf.tensor_scatter_nd_max(t, i, u),
         [i32(4, 2), ints((3, 1), [3, 3, 0]), i32(3, 2)], "TensorScatterMax"),
    case("TensorScatterAdd/more_updates_than_positions", lambda t, u: tf.tensor_scatter_nd_add(
        t, tf.constant([[0], [1], [0], [0], [1]]), u), [f32(2, 3), f32(5, 3)], "TensorScatterAdd"),
    case("TensorScatterSub/more_updates_than_positions_i32", lambda t, u: tf.tensor_scatter_nd_sub(
        t, tf.constant([[0, 1], [0, 1], [0, 0]]), u), [i32(1, 2), i32(3)], "TensorScatterSub"),
    case("TensorScatterMax/more_updates_than_positions", lambda t, u: tf.tensor_scatter_nd_max(
        t, tf.constant([[2], [2], [0], [2]]), u), [f32(3, 2), f32(4, 2)], "TensorScatterMax"),
    case("TensorScatterMin/more_updates_than_positions_rank5", lambda t, u: tf.tensor_scatter_nd_min(
        t, tf.constant([[0, 1], [0, 1], [0, 0]]), u), [f32(1, 2, 2, 1, 2), f32(3, 2, 1, 2)], "TensorScatterMin"),
    case("TensorScatterMin/single", lambda t, u: tf.tensor_scatter_nd_min(t, tf.constant([[1, 1]]), u),
         [f32(2, 3), f32(1)], "TensorScatterMin"),
    # ---------------------------------------------------------------- UnsortedSegment*
    case("UnsortedSegmentSum/rows", lambda x: tf.math.unsorted_segment_sum(x, tf.constant([0, 2, 0, -1]), 4),
         [f32(4, 3)], "UnsortedSegmentSum"),
    case("UnsortedSegmentSum/ids_tensor_i32", lambda x, s: tf.math.unsorted_segment_sum(x, s, 3),
         [i32(5), ints((5,), [2, 2, -1, 0, 2])], "UnsortedSegmentSum"),
    case("UnsortedSegmentMax/empty_segments", lambda x, s: tf.math.unsorted_segment_max(x, s, 5),
         [f32(2, 3, 2), ints((2, 3), [0, 4, 4, -3, 0, 1])], "UnsortedSegmentMax"),
    case("UnsortedSegmentMin/empty_segments_i32", lambda x: tf.math.unsorted_segment_min(
        x, tf.constant([1, 1, 3], tf.int64), tf.constant(4, tf.int64)), [i32(3, 2)], "UnsortedSegmentMin"),
    case("UnsortedSegmentMin/f32", lambda x, s: tf.math.unsorted_segment_min(x, s, 3),
         [f32(6), ints((6,), [0, 0, 2, 2, 2, -1])], "UnsortedSegmentMin"),
    case("UnsortedSegmentMax/i32_rank5", lambda x: tf.math.unsorted_segment_max(x, tf.constant([1, 0]), 3),
         [i32(2, 1, 2, 1, 2)], "UnsortedSegmentMax"),
    # ---------------------------------------------------------------- DenseBincount
    case("DenseBincount/rank1_count", lambda x: tf.raw_ops.DenseBincount(
        input=x, size=5, weights=tf.constant([], tf.float32), binary_output=False), [i32(8, low=0, high=7)],
        "DenseBincount"),
    case("DenseBincount/rank2_binary", lambda x: tf.raw_ops.DenseBincount(
        input=x, size=4, weights=tf.constant([], tf.float32), binary_output=True), [i32(3, 5, low=0, high=6)],
        "DenseBincount"),
    case("DenseBincount/rank2_weighted", lambda x, w: tf.raw_ops.DenseBincount(
        input=x, size=4, weights=w, binary_output=False), [i32(2, 5, low=0, high=5), f32(2, 5)], "DenseBincount"),
    case("DenseBincount/rank1_int_binary_weights_ignored", lambda x: tf.raw_ops.DenseBincount(
        input=x, size=3, weights=tf.constant([2, 3, 4, 5]), binary_output=True), [i32(4, low=0, high=4)],
        "DenseBincount"),
    case("DenseBincount/keras_count", lambda x: tf.keras.layers.CategoryEncoding(6, output_mode="count")(x),
         [i32(2, 4, low=0, high=6)], "DenseBincount"),
    case("DenseBincount/keras_multi_hot", lambda x: tf.keras.layers.CategoryEncoding(6, output_mode="multi_hot")(x),
         [i32(3, 2, low=0, high=6)], "DenseBincount"),
    # ---------------------------------------------------------------- GatherV2 with batch_dims
    case("GatherV2/batch_dims1_deberta", lambda x, i: tf.gather(x, i, axis=2, batch_dims=1),
         [f32(2, 3, 6), i32(2, 3, 4, low=0, high=6)], "GatherV2"),
    case("GatherV2/batch_dims1_axis1", lambda x, i: tf.gather(x, i, axis=1, batch_dims=1),
         [f32(3, 5, 2), i32(3, 4, low=0, high=5)], "GatherV2"),
    case("GatherV2/batch_dims2", lambda x, i: tf.gather(x, i, axis=2, batch_dims=2),
         [f32(2, 3, 4, 2), i32(2, 3, 5, low=0, high=4)], "GatherV2"),
    case("GatherV2/batch_dims3_take_along_axis_i64", lambda x, i: tf.gather(x, tf.cast(i, tf.int64), axis=3,
                                                                            batch_dims=3),
         [f32(2, 2, 3, 5), i32(2, 2, 3, 4, low=0, high=5)], "GatherV2"),
    case("GatherV2/batch_dims1_layout", lambda x, i: tf.gather(conv(x), i, axis=2, batch_dims=1),
         [f32(2, 3, 3, 3), i32(2, 2, low=0, high=3)], "GatherV2"),
    case("GatherV2/batch_dims_negative", lambda x, i: tf.gather(x, i, axis=-1, batch_dims=-1),
         [i32(2, 3, 5), i32(2, 3, 2, low=0, high=5)], "GatherV2"),
    case("GatherV2/batch_dims_negative_is_zero", lambda x, i: tf.gather(x, i, axis=1, batch_dims=-1),
         [f32(2, 5), i32(3, low=0, high=5)], "GatherV2"),
    case("GatherV2/batch_dims1_const_params", lambda i: tf.gather(
        tf.constant(_RNG.standard_normal((2, 5)), tf.float32), i, axis=1, batch_dims=1),
        [i32(2, 3, low=0, high=5)], "GatherV2"),
]

# ---------------------------------------------------------------- empty tensors (TensorFlow allows them all)
TABLE += [
    case("OneHot/empty", lambda i: tf.one_hot(i, 4), [i32(0)], "OneHot"),
    case("Roll/empty_other_axis", lambda x: tf.roll(x, 1, 1), [f32(0, 3)], "Roll"),
    case("Cumprod/empty_batch", lambda x: tf.math.cumprod(x, axis=1), [f32(0, 4)], "Cumprod"),
    case("Cumprod/empty_axis", lambda x: tf.math.cumprod(x, axis=1), [f32(2, 0)], "Cumprod"),
    case("UnsortedSegmentSum/no_ids", lambda x, s: tf.math.unsorted_segment_sum(x, s, 3), [f32(0, 2), i32(0)],
         "UnsortedSegmentSum"),
    case("UnsortedSegmentMax/no_ids", lambda x, s: tf.math.unsorted_segment_max(x, s, 3), [f32(0, 2), i32(0)],
         "UnsortedSegmentMax"),
    case("TensorScatterUpdate/no_updates", lambda t, i, u: tf.tensor_scatter_nd_update(t, i, u),
         [f32(4, 3), i32(0, 1), f32(0, 3)], "TensorScatterUpdate"),
    case("TensorScatterAdd/no_updates", lambda t, i, u: tf.tensor_scatter_nd_add(t, i, u),
         [f32(4, 3), i32(0, 1), f32(0, 3)], "TensorScatterAdd"),
    case("DenseBincount/empty", lambda x: tf.raw_ops.DenseBincount(
        input=x, size=3, weights=tf.constant([], tf.float32), binary_output=False), [i32(0)], "DenseBincount"),
    case("GatherV2/batch_dims_no_indices", lambda x, i: tf.gather(x, i, axis=1, batch_dims=1),
         [f32(2, 5), i32(2, 0)], "GatherV2"),
    case("MatrixBandPart/empty", lambda x: tf.linalg.band_part(x, -1, 0), [f32(0, 3, 3)], "MatrixBandPart"),
    case("ReverseSequence/empty", lambda x, n: tf.reverse_sequence(x, n, 1, 0), [f32(0, 4), i32(0)],
         "ReverseSequence"),
]


# ---------------------------------------------------------------- constant inputs fold at conversion (numpy paths)
_C_VALUE = _RNG.standard_normal((3, 4)).astype(np.float32)
_CI_VALUE = _RNG.integers(-3, 4, (3, 4)).astype(np.int32)


def _C():  # raw GraphDef cases build their constants inside the graph
    return tf.constant(_C_VALUE)


def _CI():
    return tf.constant(_CI_VALUE)


TABLE += [
    case("Roll/folded", lambda x: x + tf.roll(_C(), [1, -1], [0, 1]), [f32(3, 4)], "Roll", raw=True),
    case("OneHot/folded", lambda x: x + tf.one_hot(tf.constant([0, -1, 3]), 4), [f32(3, 4)], "OneHot", raw=True),
    case("MatrixBandPart/folded", lambda x: x + tf.linalg.band_part(_C(), 1, 0), [f32(3, 4)], "MatrixBandPart",
         raw=True),
    case("ReverseSequence/folded", lambda x: x + tf.reverse_sequence(_C(), [2, 4, 0], 1, 0), [f32(3, 4)],
         "ReverseSequence", raw=True),
    case("Cumprod/folded", lambda x: x + tf.math.cumprod(_CI(), 1, exclusive=True, reverse=True), [i32(3, 4)],
         "Cumprod", raw=True),
    case("TensorScatterMax/folded", lambda x: x + tf.tensor_scatter_nd_max(_C(), [[0, 1], [0, 1], [2, 3]],
                                                                           [5.0, 6.0, -9.0]),
         [f32(3, 4)], "TensorScatterMax", raw=True),
    case("UnsortedSegmentMin/folded", lambda x: x + tf.math.unsorted_segment_min(_CI(), [2, -1, 2], 3), [i32(3, 4)],
         "UnsortedSegmentMin", raw=True),
    case("DenseBincount/folded", lambda x: x + tf.raw_ops.DenseBincount(
        input=_CI() + 3, size=4, weights=tf.constant([], tf.float32), binary_output=False), [f32(3, 4)],
        "DenseBincount", raw=True),
    case("GatherV2/batch_dims_folded", lambda x: x + tf.gather(_C(), [[3, 0, 1, 1], [2, 2, 0, 1], [0, 0, 0, 3]],
                                                               axis=1, batch_dims=1), [f32(3, 4)], "GatherV2",
         raw=True),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_indexing_op(c):
    run_case(c)


# ---------------------------------------------------------------- a dynamic batch (harness cases are static)
#: (id, fn, [(shape, dtype, (low, high) for int inputs)])
DYNAMIC = [
    ("Roll", lambda x: tf.roll(x, [1, -2], [1, 2]), [((None, 3, 4), tf.float32, None)]),
    ("GatherV2_batch_dims1", lambda x, i: tf.gather(x, i, axis=1, batch_dims=1),
     [((None, 6), tf.float32, None), ((None, 2), tf.int32, (0, 6))]),
    ("Cumprod", lambda x: tf.math.cumprod(x, axis=1, exclusive=True), [((None, 5), tf.float32, None)]),
    ("OneHot", lambda i: tf.one_hot(i, 4, axis=1), [((None, 3), tf.int32, (-1, 6))]),
    ("ReverseSequence", lambda x, n: tf.reverse_sequence(x, n, seq_axis=1, batch_axis=0),
     [((None, 4, 2), tf.float32, None), ((None,), tf.int32, (0, 5))]),
    ("MatrixBandPart", lambda x: tf.linalg.band_part(x, -1, 0), [((None, 3, 3), tf.float32, None)]),
    ("TensorScatterUpdate", lambda t, u: tf.tensor_scatter_nd_update(t, [[0, 1], [0, 0]], u),
     [((None, 2, 3), tf.float32, None), ((2, 3), tf.float32, None)]),
]


@pytest.mark.parametrize("name, fn, specs", DYNAMIC, ids=[d[0] for d in DYNAMIC])
def test_dynamic_batch(name, fn, specs):
    """Batch 1-8 through the reference executor at 1, 3 and 8, and a TensorRT engine with that profile."""
    from converter import construct
    from converter.engine import optimize_network
    from converter.freeze import freeze
    from converter.graph import parse
    from converter.reference import ReferenceExecutor

    signature = [tf.TensorSpec(shape, dtype, name=f"x{i}") for i, (shape, dtype, _) in enumerate(specs)]
    func = tf.function(fn, input_signature=signature, autograph=False)
    frozen = freeze(func, batch_range=(1, 2, 8))
    net = construct(parse(frozen))
    executor = ReferenceExecutor(net.snapshot)
    rng = np.random.default_rng(3)
    for batch in (1, 3, 8):
        feeds = {}
        for i, (shape, dtype, bounds) in enumerate(specs):
            shape = tuple(batch if d is None else d for d in shape)
            feeds[f"x{i}"] = (rng.integers(*bounds, shape).astype(np.int32) if dtype == tf.int32
                              else rng.standard_normal(shape).astype(np.float32))
        (out,) = frozen.outputs
        np.testing.assert_allclose(executor.run(feeds)[out], func(*feeds.values()).numpy(), rtol=1e-4, atol=1e-5)
    assert optimize_network(net.snapshot)


# ---------------------------------------------------------------- what stays unsupported says so before any layer
UNSUPPORTED = [
    ("Roll/tensor_shift", lambda x, s: tf.roll(x, s, 0), [((4,), tf.float32), ((), tf.int32)],
     "shift and axis must be a constant", "constant parameters"),
    ("Roll/dynamic_rolled_axis", lambda x: tf.roll(x, 1, 0), [((None, 4), tf.float32)],
     "rolling dynamic dimension(s) [0]", "static size"),
    ("OneHot/tensor_depth", lambda i, d: tf.one_hot(i, d), [((3,), tf.int32), ((), tf.int32)],
     "the depth must be a constant", "constant parameters"),
    ("Cumprod/dynamic_axis", lambda x: tf.math.cumprod(x, axis=0), [((None, 3), tf.float32)],
     "the scanned dimension is dynamic", "static size"),
    ("UnsortedSegmentSum/tensor_count", lambda x, s, n: tf.math.unsorted_segment_sum(x, s, n),
     [((4,), tf.float32), ((4,), tf.int32), ((), tf.int32)], "num_segments must be a constant",
     "constant parameters"),
    ("UnsortedSegmentMax/dynamic", lambda x, s: tf.math.unsorted_segment_max(x, s, 3),
     [((None, 2), tf.float32), ((None,), tf.int32)], "must have a static shape", "--input"),
    ("TensorScatterAdd/dynamic", lambda t, u: tf.tensor_scatter_nd_add(t, [[0]], u),
     [((None, 2), tf.float32), ((1, 2), tf.float32)], "must have a static shape", "--input"),
    ("TensorScatterAdd/huge_mask", lambda t, u: tf.tensor_scatter_nd_add(t, tf.zeros((3000, 1), tf.int32), u),
     [((4000, 64), tf.float32), ((3000, 64), tf.float32)], "would hold 576,000,000 elements", "smaller"),
    ("UnsortedSegmentSum/huge_mask", lambda x, s: tf.math.unsorted_segment_sum(x, s, 5000),
     [((4000, 32), tf.float32), ((4000,), tf.int32)], "segment mask would hold", "smaller"),
    ("DenseBincount/data_size", lambda x: tf.math.bincount(x, axis=-1), [((2, 3), tf.int32)],
     "the size must be a constant", "CategoryEncoding"),
    ("MatrixBandPart/dynamic_rows", lambda x: tf.linalg.band_part(x, -1, 0), [((None, 3), tf.float32)],
     "last two dimensions of the input must have a static shape", "--input"),
]


@pytest.mark.parametrize("name, fn, specs, message, hint", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_is_reported_by_the_support_check(name, fn, specs, message, hint):
    from converter.errors import EXIT_BAD_INPUT, UnsupportedOpsError
    from converter.freeze import freeze
    from converter.graph import parse

    signature = [tf.TensorSpec(shape, dtype, name=f"x{i}") for i, (shape, dtype) in enumerate(specs)]
    func = tf.function(fn, input_signature=signature, autograph=False)
    frozen = freeze(func, batch_range=(1, 2, 4)) if any(None in s for s, _ in specs) else freeze(func)
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    op = name.split("/")[0]
    (problem,) = [e for e in info.value.errors if e.op == op]
    assert message in problem.detail and problem.hint and hint in problem.hint, (problem.detail, problem.hint)
    assert info.value.exit_code == EXIT_BAD_INPUT
