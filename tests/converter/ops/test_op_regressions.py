"""Regression cases for converter crashes and support-check gaps (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, case, convert_case, f32, i32, params, run_case


def _i8(*shape):
    return In(tuple(shape), "int8", -128, 128)


def _u8(*shape):
    return In(tuple(shape), "uint8", 0, 256)


def _bn(data_format="NHWC", **kw):
    def fn(x, mean, var):
        return tf.raw_ops.FusedBatchNormV3(x=x, scale=tf.constant([1.0, 2.0, 0.5]), offset=tf.constant([0.1, 0.0, -1.0]),
                                           mean=mean, variance=var, is_training=False, data_format=data_format,
                                           **kw)[0]
    return fn


def _bn_nchw_ref(x, mean, var):
    scale, offset = np.float32([1.0, 2.0, 0.5]), np.float32([0.1, 0.0, -1.0])
    factor = (1 / np.sqrt(var + np.float32(1e-4))) * scale
    return (x - mean[:, None, None]) * factor[:, None, None] + offset[:, None, None]


TABLE = [
    # TopKV2 on a rank-1 input crashed ("Could not get tensor shape": TensorRT's TopK needs rank ≥ 2)
    case("TopKV2/rank1", lambda x: tf.raw_ops.TopKV2(input=x, k=3), [f32(7)], "TopKV2"),
    case("TopKV2/rank1_int", lambda x: tf.raw_ops.TopKV2(input=x, k=4), [i32(9, low=-3, high=3)], "TopKV2"),
    # ConcatV2 with an empty constant (TensorRT refuses empty weights): it contributes nothing
    case("ConcatV2/empty_const", lambda x: tf.raw_ops.ConcatV2(values=[x, tf.zeros((2, 0))], axis=1), [f32(2, 3)],
         "ConcatV2"),
    case("ConcatV2/empty_consts_negative_axis",
         lambda x: tf.raw_ops.ConcatV2(values=[tf.zeros((0, 3)), x, tf.zeros((0, 3)), x], axis=-2), [f32(2, 3)],
         "ConcatV2"),
    # integer matrix products: exact in int32 (TensorRT's MatrixMultiply has no integer arithmetic)
    case("BatchMatMulV3/int8_int32", lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.int32),
         [_i8(2, 3, 4), _i8(2, 4, 5)], "BatchMatMulV3"),
    case("BatchMatMulV3/uint8_int8_adjoint_broadcast",
         lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.int32, adj_x=True, adj_y=True),
         [_u8(2, 4, 3), _i8(1, 5, 4)], "BatchMatMulV3"),
    case("BatchMatMulV2/int32_broadcast_rank", lambda a, b: tf.raw_ops.BatchMatMulV2(x=a, y=b),
         [i32(2, 3, 4, low=-1000, high=1000), i32(4, 5, low=-1000, high=1000)], "BatchMatMulV2"),
    case("MatMul/int32_transpose_b", lambda a, b: tf.raw_ops.MatMul(a=a, b=b, transpose_b=True),
         [i32(3, 4), i32(5, 4)], "MatMul"),
    case("MatMul/int32_wraps", lambda a, b: tf.raw_ops.MatMul(a=a, b=b),
         [i32(3, 4, low=2 ** 20, high=2 ** 21), i32(4, 5, low=2 ** 20, high=2 ** 21)], "MatMul"),
    # FusedBatchNormV3 with statistics computed in the graph (not constants): elementwise layers
    case("FusedBatchNormV3/tensor_stats_nhwc", _bn(), [f32(2, 4, 4, 3), f32(3), f32(3, low=0.5, high=2)],
         "FusedBatchNormV3"),
    case("FusedBatchNormV3/tensor_stats_nchw", _bn("NCHW"), [f32(2, 3, 4, 4), f32(3), f32(3, low=0.5, high=2)],
         "FusedBatchNormV3", ref=_bn_nchw_ref),
    case("FusedBatchNormV3/tensor_stats_5d", _bn("NDHWC", epsilon=0.01),
         [f32(1, 2, 3, 2, 3), f32(3), f32(3, low=0.5, high=2)], "FusedBatchNormV3"),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_op_regression(c):
    run_case(c)


def _unsupported(fn, inputs):
    from converter.errors import UnsupportedOpsError

    with pytest.raises(UnsupportedOpsError) as info:
        convert_case(case("unsupported", fn, inputs, ()))
    return info.value


def test_batch_matmul_v3_int8_result_is_rejected_by_the_support_check():
    # Tout=int16 (TensorRT has no int16) must not pass the check and fail in the engine build
    err = _unsupported(lambda a, b: tf.raw_ops.BatchMatMulV3(x=a, y=b, Tout=tf.int16), [_i8(2, 3, 4), _i8(2, 4, 5)])
    text = str(err)
    assert "BatchMatMulV3" in text and "Tout=int16" in text and "hint" in text


def test_cast_to_uint32_is_rejected_by_the_support_check():
    err = _unsupported(lambda x: tf.cast(tf.cast(x, tf.uint32), tf.float32), [f32(3, low=0, high=5)])
    assert "uint32" in str(err) and "int32" in str(err)


def test_uint32_input_is_rejected_by_the_support_check():
    err = _unsupported(lambda x: x + tf.constant(1, tf.uint32), [In((3,), "uint32", 0, 5)])
    assert "uint32" in str(err)


def test_reshape_to_an_empty_axis_is_not_a_placeholder():
    """A 0 in a TF target shape is an empty axis; TensorRT's shuffle reads 0 as "copy the input dimension"
    unless told otherwise (it refused the layer: "zero placeholder that refers to invalid axis")."""
    c = case("Reshape/to_empty_axis", lambda x: tf.reshape(tf.slice(x, [0, 0], [2, 0]), [0, 3, 2]) * 2.0,
             [f32(2, 6)], ("Reshape",))
    run_case(c)
