"""Shape, data-movement, slicing, gathering and block-rearrangement ops, and shape arithmetic folded at conversion."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, boolean, case, f32, i32, params, run_case

_RNG = np.random.default_rng(7)
K = tf.constant(_RNG.standard_normal((3, 3, 3, 4)).astype(np.float32))


def conv(x):
    """A convolution first, so the op under test sees a channels-first tensor layout."""
    return tf.nn.conv2d(x, K, 1, "SAME")


def ss(begin, end, strides=None, **masks):
    return lambda x: tf.strided_slice(x, begin, end, strides, **masks)


TABLE = [
    # ---------------------------------------------------------------- reshapes
    case("Reshape/flatten", lambda x: tf.reshape(x, [2, -1]), [f32(2, 3, 4)], "Reshape"),
    case("Reshape/split_axis", lambda x: tf.reshape(x, [2, 3, 2, 2]), [f32(2, 3, 4)], "Reshape"),
    case("Reshape/after_conv_layout", lambda x: tf.reshape(conv(x), [1, -1]), [f32(1, 3, 3, 3)], "Reshape"),
    case("Reshape/unit_dims_keep_layout", lambda x: tf.reshape(conv(x), [1, 3, 1, 3, 4]), [f32(1, 3, 3, 3)],
         "Reshape"),
    case("Reshape/bool", lambda x: tf.reshape(x, [6]), [boolean(2, 3)], "Reshape"),
    case("Reshape/shape_from_tensor", lambda x: tf.reshape(x, tf.stack([tf.raw_ops.Shape(input=x)[0], -1])),
         [f32(2, 3, 4)],
         ("Reshape", "Shape", "StridedSlice", "Pack")),
    case("Squeeze/axis", lambda x: tf.squeeze(x, [1]), [f32(2, 1, 3)], "Squeeze"),
    case("Squeeze/all", tf.squeeze, [f32(1, 2, 1, 3)], "Squeeze"),
    case("Squeeze/negative_axis_layout", lambda x: tf.squeeze(conv(x), [-3]), [f32(1, 1, 3, 3)], "Squeeze"),
    case("ExpandDims/front", lambda x: tf.expand_dims(x, 0), [f32(2, 3)], "ExpandDims"),
    case("ExpandDims/negative", lambda x: tf.expand_dims(x, -1), [i32(2, 3)], "ExpandDims"),
    case("ExpandDims/layout", lambda x: tf.expand_dims(conv(x), 2), [f32(1, 3, 3, 3)], "ExpandDims"),
    case("Transpose/2d", tf.transpose, [f32(2, 3)], "Transpose"),
    case("Transpose/4d_then_relu", lambda x: tf.nn.relu(tf.transpose(x, [0, 3, 1, 2])), [f32(1, 2, 3, 4)],
         "Transpose"),
    case("Transpose/of_conv_output", lambda x: tf.transpose(conv(x), [0, 3, 1, 2]), [f32(1, 3, 3, 3)], "Transpose"),
    case("Transpose/i32", lambda x: tf.transpose(x, [2, 0, 1]), [i32(2, 3, 4)], "Transpose"),
    # two transposes of one tensor, each read in logical order (DeBERTa's key feeds two einsums): each must get its
    # own layout shuffle, not the one cached for the other transpose
    case("Transpose/two_perms_of_one_tensor",
         lambda x: tf.matmul(tf.transpose(x, [1, 0, 2]), tf.transpose(x, [2, 1, 0])), [f32(3, 3, 3)],
         ("Transpose", "BatchMatMulV2")),
    # ---------------------------------------------------------------- padding
    case("Pad/constant", lambda x: tf.pad(x, [[0, 0], [1, 2], [2, 0]]), [f32(2, 3, 4)], "Pad"),
    case("Pad/i32", lambda x: tf.pad(x, [[1, 1], [0, 2]]), [i32(2, 3)], "Pad"),
    case("Pad/after_conv_layout", lambda x: tf.pad(conv(x), [[0, 0], [1, 1], [2, 1], [0, 1]]), [f32(1, 3, 3, 3)],
         "Pad"),
    case("PadV2/value", lambda x: tf.pad(x, [[1, 0], [0, 2]], constant_values=-3.5), [f32(2, 3)], "PadV2"),
    case("PadV2/bool", lambda x: tf.pad(x, [[1, 0], [0, 2]], constant_values=True), [boolean(2, 3)], "PadV2"),
    case("MirrorPad/reflect", lambda x: tf.pad(x, [[0, 0], [2, 1], [1, 2], [0, 0]], "REFLECT"), [f32(1, 4, 4, 2)],
         "MirrorPad"),
    case("MirrorPad/symmetric", lambda x: tf.pad(x, [[0, 0], [2, 3], [1, 0], [0, 0]], "SYMMETRIC"), [f32(1, 4, 4, 2)],
         "MirrorPad"),
    case("MirrorPad/symmetric_layout", lambda x: tf.pad(conv(x), [[0, 0], [1, 1], [2, 2], [0, 0]], "SYMMETRIC"),
         [f32(1, 3, 3, 3)], "MirrorPad"),
    case("MirrorPad/reflect_i32", lambda x: tf.pad(x, [[1, 1], [2, 2]], "REFLECT"), [i32(3, 4)], "MirrorPad"),
    # ---------------------------------------------------------------- concatenation, stacking, splitting
    case("ConcatV2/axis1", lambda a, b: tf.concat([a, b], 1), [f32(2, 3), f32(2, 4)], "ConcatV2"),
    case("ConcatV2/negative_axis_const", lambda a: tf.concat([a, tf.ones((2, 3, 1))], -1), [f32(2, 3, 2)],
         "ConcatV2"),
    case("ConcatV2/mixed_layouts", lambda x, y: tf.concat([conv(x), y], 3), [f32(1, 3, 3, 3), f32(1, 3, 3, 2)],
         "ConcatV2"),
    case("ConcatV2/bool", lambda a, b: tf.concat([a, b], 0), [boolean(1, 3), boolean(2, 3)], "ConcatV2"),
    case("ConcatV2/i32", lambda a, b: tf.concat([a, b], 0), [i32(1, 3), i32(2, 3)], "ConcatV2"),
    case("Concat/v1", lambda a, b: tf.raw_ops.Concat(concat_dim=1, values=[a, b]), [f32(2, 3), f32(2, 1)], "Concat"),
    case("Pack/axis0", lambda a, b: tf.stack([a, b]), [f32(2, 3), f32(2, 3)], "Pack"),
    case("Pack/axis_last_const", lambda a: tf.stack([a, tf.zeros((2, 3))], axis=-1), [f32(2, 3)], "Pack"),
    case("Pack/layout", lambda x: tf.stack([conv(x), conv(x) * 2.0], axis=1), [f32(1, 3, 3, 3)], "Pack"),
    case("Unpack/axis0", lambda x: tf.unstack(x), [f32(3, 2, 4)], "Unpack"),
    case("Unpack/axis_neg", lambda x: tf.unstack(x, axis=-1), [f32(2, 3, 2)], "Unpack"),
    case("Unpack/layout", lambda x: tf.unstack(conv(x), axis=3), [f32(1, 3, 3, 3)], "Unpack"),
    case("Split/even", lambda x: tf.split(x, 3, axis=1), [f32(2, 6, 2)], "Split"),
    case("Split/negative_axis_layout", lambda x: tf.split(conv(x), 2, axis=-1), [f32(1, 3, 3, 3)], "Split"),
    case("SplitV/sizes", lambda x: tf.split(x, [1, 3, 2], axis=1), [f32(2, 6)], "SplitV"),
    case("SplitV/inferred", lambda x: tf.split(x, [2, -1], axis=0), [i32(5, 2)], "SplitV"),
    case("Tile/2d", lambda x: tf.tile(x, [2, 3]), [f32(2, 3)], "Tile"),
    case("Tile/bool", lambda x: tf.tile(x, [1, 2]), [boolean(2, 3)], "Tile"),
    case("Tile/layout", lambda x: tf.tile(conv(x), [1, 2, 1, 2]), [f32(1, 3, 3, 3)], "Tile"),
    # ---------------------------------------------------------------- slicing
    case("StridedSlice/basic", ss([0, 1], [2, 3]), [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/strides", ss([0, 0], [3, 5], [2, 2]), [f32(3, 5)], "StridedSlice"),
    case("StridedSlice/negative_indices", ss([-2, -3], [-1, -1]), [f32(3, 5)], "StridedSlice"),
    case("StridedSlice/reverse", lambda x: x[::-1, ::-2], [f32(3, 5)], "StridedSlice"),
    case("StridedSlice/reverse_bounded", lambda x: x[2:0:-1, 4:-6:-2], [f32(3, 5)], "StridedSlice"),
    case("StridedSlice/begin_end_masks", lambda x: x[1:, :2], [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/shrink", lambda x: x[1], [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/shrink_negative", lambda x: x[:, -1], [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/new_axis", lambda x: x[:, tf.newaxis, 1:3], [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/ellipsis", lambda x: x[..., 1], [f32(2, 3, 4)], "StridedSlice"),
    case("StridedSlice/ellipsis_new_axis", lambda x: x[0, ..., tf.newaxis, ::2], [f32(2, 3, 4)], "StridedSlice"),
    case("StridedSlice/all_masks", lambda x: x[tf.newaxis, 1:, ..., 0, ::-1], [f32(2, 3, 4, 5)], "StridedSlice"),
    case("StridedSlice/out_of_range_clamped", ss([0, -10], [10, 10]), [f32(3, 4)], "StridedSlice",
         layers=False),  # selects everything: the input passes through without a layer
    case("StridedSlice/out_of_range_partial", ss([1, -10], [10, 3]), [f32(3, 4)], "StridedSlice"),
    case("StridedSlice/layout_crop", lambda x: conv(x)[:, 1:-1, 1:, :2], [f32(1, 4, 4, 3)], "StridedSlice"),
    case("StridedSlice/i32", lambda x: x[:, 1::2], [i32(2, 5)], "StridedSlice"),
    case("StridedSlice/bool", lambda x: x[1:], [boolean(3, 2)], "StridedSlice"),
    case("Slice/basic", lambda x: tf.slice(x, [0, 1, 1], [2, 2, -1]), [f32(2, 3, 4)], "Slice"),
    case("Slice/layout", lambda x: tf.slice(conv(x), [0, 1, 0, 1], [1, 2, 2, 3]), [f32(1, 3, 3, 3)], "Slice"),
    case("ReverseV2/two_axes", lambda x: tf.reverse(x, [0, -1]), [f32(2, 3, 4)], "ReverseV2"),
    case("ReverseV2/layout_bool", lambda x: tf.reverse(x, [1]), [boolean(2, 3)], "ReverseV2"),
    case("ReverseV2/after_conv_layout", lambda x: tf.reverse(conv(x), [3]), [f32(1, 3, 3, 3)], "ReverseV2"),
    case("GatherNd/full_index", lambda x: tf.gather_nd(x, [[0, 1], [1, 2]]), [f32(2, 3)], "GatherNd"),
    case("GatherNd/partial_index", lambda x, i: tf.gather_nd(x, i), [f32(3, 4, 2), i32(2, 2, 1, low=0, high=3)],
         "GatherNd"),
    case("GatherNd/layout", lambda x: tf.gather_nd(conv(x), [[0, 2, 1]]), [f32(1, 3, 3, 3)], "GatherNd"),
    # ---------------------------------------------------------------- gather, top-k
    case("GatherV2/axis0_const_indices", lambda x: tf.gather(x, [2, 0, 2]), [f32(3, 4)], "GatherV2"),
    case("GatherV2/axis1", lambda x: tf.gather(x, [[0, 3], [1, 1]], axis=1), [f32(2, 4, 3)], "GatherV2"),
    case("GatherV2/negative_axis_scalar", lambda x: tf.gather(x, 1, axis=-1), [f32(2, 4, 3)], "GatherV2"),
    case("GatherV2/embedding", lambda i: tf.gather(tf.constant(_RNG.standard_normal((10, 4)), tf.float32), i),
         [i32(2, 5, low=0, high=10)], "GatherV2"),
    case("GatherV2/tensor_indices", lambda x, i: tf.gather(x, i, axis=1), [f32(2, 5), i32(3, low=0, high=5)],
         "GatherV2"),
    case("GatherV2/layout", lambda x: tf.gather(conv(x), [3, 1], axis=3), [f32(1, 3, 3, 3)], "GatherV2"),
    case("GatherV2/layout_spatial", lambda x: tf.gather(conv(x), [[2, 0]], axis=1), [f32(1, 3, 3, 3)], "GatherV2"),
    case("GatherV2/i64_indices", lambda x, i: tf.gather(x, tf.cast(i, tf.int64)), [f32(4, 2), i32(3, low=0, high=4)],
         "GatherV2"),
    case("TopKV2/values_indices", lambda x: tuple(tf.math.top_k(x, 3)), [f32(2, 6)], "TopKV2"),
    case("TopKV2/rank3_k1", lambda x: tuple(tf.math.top_k(x, 1)), [f32(2, 3, 5)], "TopKV2"),
    case("TopKV2/i32_ties", lambda x: tuple(tf.math.top_k(x, 4)), [i32(3, 7, low=0, high=3)], "TopKV2"),
    case("TopKV2/layout", lambda x: tuple(tf.math.top_k(conv(x), 2)), [f32(1, 3, 3, 3)], "TopKV2"),
    # ---------------------------------------------------------------- block rearrangements
    case("DepthToSpace/nhwc", lambda x: tf.nn.depth_to_space(x, 2), [f32(1, 2, 3, 8)], "DepthToSpace"),
    case("DepthToSpace/after_conv_layout", lambda x: tf.nn.depth_to_space(conv(x), 2), [f32(1, 2, 3, 3)],
         "DepthToSpace"),
    case("DepthToSpace/block3", lambda x: tf.nn.depth_to_space(x, 3), [f32(2, 2, 2, 18)], "DepthToSpace"),
    case("SpaceToDepth/nhwc", lambda x: tf.nn.space_to_depth(x, 2), [f32(1, 4, 6, 3)], "SpaceToDepth"),
    case("SpaceToDepth/after_conv_layout", lambda x: tf.nn.space_to_depth(conv(x), 2), [f32(1, 4, 4, 3)],
         "SpaceToDepth"),
    case("SpaceToBatchND/2d", lambda x: tf.space_to_batch_nd(x, [2, 2], [[0, 0], [1, 1]]), [f32(1, 4, 2, 3)],
         "SpaceToBatchND"),
    case("SpaceToBatchND/1d", lambda x: tf.space_to_batch_nd(x, [2], [[2, 0]]), [f32(2, 6, 3)], "SpaceToBatchND"),
    case("BatchToSpaceND/2d", lambda x: tf.batch_to_space(x, [2, 2], [[0, 0], [1, 1]]), [f32(4, 2, 3, 3)],
         "BatchToSpaceND"),
    case("BatchToSpaceND/1d", lambda x: tf.batch_to_space(x, [2], [[1, 0]]), [f32(4, 3, 2)], "BatchToSpaceND"),
    case("SpaceToBatchND/dilated_conv1d_pattern", lambda x: tf.nn.convolution(
        x, tf.constant(_RNG.standard_normal((3, 3, 4)), tf.float32), padding="VALID", dilations=2),
        [f32(1, 10, 3)], ("SpaceToBatchND", "BatchToSpaceND", "Conv2D", "ExpandDims", "Squeeze")),
    case("DataFormatVecPermute/nhwc_to_nchw", lambda x: tf.raw_ops.DataFormatVecPermute(x=x), [i32(4)],
         "DataFormatVecPermute"),
    case("DataFormatVecPermute/nchw_to_nhwc_2d", lambda x: tf.raw_ops.DataFormatVecPermute(
        x=x, src_format="NCHW", dst_format="NHWC"), [i32(4, 2)], "DataFormatVecPermute"),
    case("DataFormatVecPermute/spatial", lambda x: tf.raw_ops.DataFormatVecPermute(
        x=x, src_format="NHWC", dst_format="NWHC"), [i32(2)], "DataFormatVecPermute"),
]

# ---------------------------------------------------------------- the same data movement on int32 and bool tensors
_MOVES = [
    ("Reshape", lambda x: tf.reshape(x, [3, 4])),
    ("Squeeze", lambda x: tf.squeeze(tf.reshape(x, [2, 1, 6]), [1])),
    ("ExpandDims", lambda x: tf.expand_dims(x, 1)),
    ("Transpose", lambda x: tf.transpose(x) if x.dtype != tf.bool else tf.logical_not(tf.transpose(x))),
    ("Pack", lambda x: tf.stack([x, x], axis=1)),
    ("Unpack", lambda x: tuple(tf.unstack(x, axis=1))),
    ("Split", lambda x: tuple(tf.split(x, 2, axis=1))),
    ("Slice", lambda x: tf.slice(x, [1, 2], [1, 3])),
    ("StridedSlice", lambda x: x[:, ::-2]),
    ("GatherV2", lambda x: tf.gather(x, [5, 0, 2], axis=1)),
    ("GatherNd", lambda x: tf.gather_nd(x, [[1, 3], [0, 0]])),
    ("Tile", lambda x: tf.tile(x, [2, 1])),
    ("ConcatV2", lambda x: tf.concat([x, x[:, :2]], 1)),
    ("ReverseV2", lambda x: tf.reverse(x, [1])),
    ("MirrorPad", lambda x: tf.pad(x, [[1, 0], [2, 1]], "SYMMETRIC")),
    ("BroadcastTo", lambda x: tf.broadcast_to(x[:1], [3, 6])),
    ("DepthToSpace", lambda x: tf.nn.depth_to_space(tf.reshape(x, [1, 1, 3, 4]), 2)),
    ("SpaceToDepth", lambda x: tf.nn.space_to_depth(tf.reshape(x, [1, 2, 2, 3]), 2)),
    ("SelectV2", lambda x: tf.where(tf.constant([True, False, True, False, False, True]), x, x[::-1])),
]
for _op, _fn in _MOVES:
    TABLE += [case(f"{_op}/dtype_{name}", _fn, [spec], _op)
              for name, spec in (("i32", i32(2, 6)), ("bool", boolean(2, 6)))]


# ---------------------------------------------------------------- shapes and constants (fold at conversion)
# tf.shape & co. of static shapes become constants while tracing: the raw ops keep the nodes in the graph
def shape(x, out_type=tf.int32):
    return tf.raw_ops.Shape(input=x, out_type=out_type)


TABLE += [
    case("Shape/as_output", shape, [f32(2, 3, 4)], "Shape"),
    case("Shape/int64_arithmetic", lambda x: tf.cast(shape(x, tf.int64) * 2, tf.float32) + x[0],
         [f32(2, 2)], ("Shape", "Mul", "Cast")),
    case("ShapeN/two", lambda a, b: tuple(tf.raw_ops.ShapeN(input=[a, b])), [f32(2, 3), f32(4)], "ShapeN"),
    case("Size/arith", lambda x: tf.cast(tf.raw_ops.Size(input=x), tf.float32) * x, [f32(2, 3, 4)], "Size"),
    case("Rank/arith", lambda x: tf.raw_ops.Rank(input=x) + x, [i32(2, 3, 4)], "Rank"),
    case("ZerosLike/add", lambda x: tf.raw_ops.ZerosLike(x=x) + x, [f32(2, 3)], "ZerosLike"),
    case("OnesLike/mul", lambda x: tf.raw_ops.OnesLike(x=x) * x, [i32(2, 3)], "OnesLike"),
    case("ZerosLike/bool", lambda x: tf.logical_or(tf.raw_ops.ZerosLike(x=x), x), [boolean(2, 3)], "ZerosLike"),
    case("Fill/from_shape", lambda x: tf.fill(shape(x), 2.5) * x, [f32(2, 3)], ("Fill", "Shape")),
    case("Fill/tensor_value", lambda x: tf.fill([2, 3], x[0, 0]), [f32(2, 2)], "Fill"),
    case("BroadcastTo/rank_up", lambda x: tf.broadcast_to(x, [2, 3, 4]), [f32(3, 1)], "BroadcastTo"),
    case("BroadcastTo/bool", lambda x: tf.broadcast_to(x, [3, 2]), [boolean(2)], "BroadcastTo"),
    case("BroadcastTo/from_shape", lambda x, y: tf.broadcast_to(y, shape(x)), [f32(2, 3), f32(3)],
         ("BroadcastTo", "Shape")),
    case("Range/from_shape", lambda x: x + tf.cast(tf.range(shape(x)[1]), tf.float32), [f32(2, 5)],
         ("Range", "Shape", "StridedSlice")),
    case("Range/float_delta", lambda x: x * tf.range(0.5, tf.cast(shape(x)[0], tf.float32) - 1.0, 0.75),
         [f32(4)], ("Range", "Cast", "Sub")),
    case("Range/negative_delta", lambda x: x[:3] + tf.range(shape(x)[0], 0, -2), [i32(6)], "Range"),
    case("StridedSlice/shape_arith_folded", lambda x: tf.reshape(
        x, tf.concat([shape(x)[:1], [tf.reduce_prod(shape(x)[1:]) // 2, 2]], 0)),
        [f32(2, 3, 4)], ("StridedSlice", "Prod", "FloorDiv", "ConcatV2", "Reshape", "Pack")),
]


# ---------------------------------------------------------------- ops freezing strips: raw GraphDefs
def _raw(op, **kw):
    return lambda x: getattr(tf.raw_ops, op)(input=x, **kw)


TABLE += [
    case("Identity/raw", lambda x: tf.identity(x) * 2.0, [f32(2, 3)], "Identity", raw=True),
    case("Snapshot/raw", lambda x: tf.raw_ops.Snapshot(input=x) * 2.0, [f32(2, 3)], "Snapshot", raw=True),
    case("StopGradient/raw", lambda x: tf.stop_gradient(x) + 1.0, [f32(2, 3)], "StopGradient", raw=True),
    case("PreventGradient/raw", lambda x: tf.raw_ops.PreventGradient(input=x) + 1.0, [f32(2, 3)],
         "PreventGradient", raw=True),
    case("EnsureShape/raw", lambda x: tf.raw_ops.EnsureShape(input=x, shape=[2, 3]) + 1.0, [f32(2, 3)],
         "EnsureShape", raw=True),
    case("CheckNumerics/raw", lambda x: tf.raw_ops.CheckNumerics(tensor=x, message="m") + 1.0, [f32(2, 3)],
         "CheckNumerics", raw=True),
    case("PlaceholderWithDefault/raw_const_default", lambda x: x * tf.compat.v1.placeholder_with_default(
        tf.constant([1.0, -2.0, 0.5]), [3]), [f32(2, 3)], "PlaceholderWithDefault", raw=True),
    case("PlaceholderWithDefault/raw_tensor_default", lambda x: tf.compat.v1.placeholder_with_default(
        x * 2.0, [2, 3]) + 1.0, [f32(2, 3)], "PlaceholderWithDefault", raw=True),
    case("IdentityN/raw", lambda x, y: tuple(t * 2.0 for t in tf.raw_ops.IdentityN(input=[x, y])),
         [f32(2, 3), f32(3)], "IdentityN", raw=True),
    case("Const/raw_folding", lambda x: x + tf.raw_ops.Range(start=tf.constant(1.0), limit=tf.constant(4.0),
                                                              delta=tf.constant(1.0)),
         [f32(2, 3)], ("Const", "Range"), raw=True),
    case("Range/raw_int", lambda x: x * tf.raw_ops.Range(start=3, limit=-4, delta=-2), [i32(4)], "Range", raw=True),
    case("Fill/raw_const", lambda x: x + tf.raw_ops.Fill(dims=[2, 3], value=tf.constant(1.5)), [f32(2, 3)], "Fill",
         raw=True),
    case("Cast/raw_const_folded", lambda x: x + tf.cast(tf.constant([1.7, -1.7, 2.2]), tf.int32), [i32(2, 3)],
         "Cast", raw=True),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_array_op(c):
    run_case(c)


def test_transpose_adds_no_layer():
    """Transpose only relabels the layout; the next layout-sensitive consumer absorbs it."""
    from .harness import convert_case, layer_names

    c = case("t", lambda x: tf.nn.relu(tf.transpose(x, [1, 0])), [f32(2, 3)], "Transpose")
    _, _, _, network = convert_case(c)
    assert not any(name.startswith("transpose") for name in layer_names(network))


_ = In
