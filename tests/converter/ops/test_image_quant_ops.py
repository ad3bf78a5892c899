"""Image resizing (every coordinate convention) and simulated quantization ops."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, case, f32, i32, params, run_case

_RNG = np.random.default_rng(3)
K = tf.constant(_RNG.standard_normal((3, 3, 2, 3)).astype(np.float32))


def bilinear(size, align=False, half=False):
    return lambda x: tf.raw_ops.ResizeBilinear(images=x, size=size, align_corners=align, half_pixel_centers=half)


def nearest(size, align=False, half=False):
    return lambda x: tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=align,
                                                      half_pixel_centers=half)


TABLE = []
for op, fn in (("ResizeBilinear", bilinear), ("ResizeNearestNeighbor", nearest)):
    for mode, kw in (("legacy", {}), ("align_corners", {"align": True}), ("half_pixel", {"half": True})):
        TABLE += [
            case(f"{op}/{mode}_up2x", fn([8, 10], **kw), [f32(1, 4, 5, 3)], op),
            case(f"{op}/{mode}_up_odd", fn([7, 9], **kw), [f32(2, 3, 4, 2)], op),
            case(f"{op}/{mode}_down", fn([3, 4], **kw), [f32(1, 7, 9, 2)], op),
            case(f"{op}/{mode}_to_1x1", fn([1, 1], **kw), [f32(1, 3, 4, 2)], op),
        ]
TABLE += [
    case("ResizeBilinear/i32_input", bilinear([6, 6], half=True), [i32(1, 3, 3, 2)], "ResizeBilinear"),
    case("ResizeNearestNeighbor/i32_input", nearest([6, 5]), [i32(1, 3, 3, 2)], "ResizeNearestNeighbor"),
    case("ResizeBilinear/image_resize_v2", lambda x: tf.image.resize(x, [6, 9]), [f32(1, 4, 5, 3)],
         "ResizeBilinear"),
    case("ResizeBilinear/after_conv_layout", lambda x: bilinear([8, 8], half=True)(tf.nn.conv2d(x, K, 1, "SAME")),
         [f32(1, 4, 4, 2)], ("ResizeBilinear", "Conv2D")),
]

# ------------------------------------------------------------------ simulated quantization
TABLE += [
    case("FakeQuantWithMinMaxArgs/default", lambda x: tf.quantization.fake_quant_with_min_max_args(x),
         [f32(4, 50, low=-8, high=8)], "FakeQuantWithMinMaxArgs"),
    case("FakeQuantWithMinMaxArgs/asymmetric", lambda x: tf.quantization.fake_quant_with_min_max_args(
        x, -1.3, 2.7), [f32(4, 50, low=-3, high=4)], "FakeQuantWithMinMaxArgs"),
    case("FakeQuantWithMinMaxArgs/narrow_4bit", lambda x: tf.quantization.fake_quant_with_min_max_args(
        x, -0.7, 1.9, num_bits=4, narrow_range=True), [f32(4, 50, low=-2, high=3)], "FakeQuantWithMinMaxArgs"),
    case("FakeQuantWithMinMaxArgs/positive_range", lambda x: tf.quantization.fake_quant_with_min_max_args(
        x, 0.2, 1.0), [f32(4, 50, low=-1, high=2)], "FakeQuantWithMinMaxArgs"),
    case("FakeQuantWithMinMaxVars/const", lambda x: tf.quantization.fake_quant_with_min_max_vars(
        x, tf.constant(-2.1), tf.constant(3.3)), [f32(4, 50, low=-4, high=5)], "FakeQuantWithMinMaxVars"),
    case("FakeQuantWithMinMaxVars/narrow_6bit", lambda x: tf.quantization.fake_quant_with_min_max_vars(
        x, tf.constant(-0.5), tf.constant(0.9), num_bits=6, narrow_range=True), [f32(4, 50, low=-1, high=1)],
        "FakeQuantWithMinMaxVars"),
    case("FakeQuantWithMinMaxVars/zero_range", lambda x: tf.quantization.fake_quant_with_min_max_vars(
        x, tf.constant(0.0), tf.constant(0.0)) + x, [f32(2, 5)], "FakeQuantWithMinMaxVars"),
    case("FakeQuantWithMinMaxVarsPerChannel/last_axis",
         lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
             x, tf.constant([-1.0, -0.3, 0.0, -2.5]), tf.constant([1.0, 2.2, 0.0, 0.5])),
         [f32(3, 20, 4, low=-3, high=3)], "FakeQuantWithMinMaxVarsPerChannel"),
    case("FakeQuantWithMinMaxVarsPerChannel/asymmetric_channels",
         lambda x: tf.quantization.fake_quant_with_min_max_vars_per_channel(
             x, tf.constant([-1.0, -0.3, 0.0, -2.5]), tf.constant([1.0, 2.2, 0.7, 0.5])),
         [f32(3, 20, 4, low=-3, high=3)], "FakeQuantWithMinMaxVarsPerChannel"),
    case("FakeQuantWithMinMaxVarsPerChannel/symmetric_narrow_weights",
         lambda x: tf.nn.conv2d(x, tf.quantization.fake_quant_with_min_max_vars_per_channel(
             K, -tf.reduce_max(tf.abs(K), axis=[0, 1, 2]), tf.reduce_max(tf.abs(K), axis=[0, 1, 2]),
             narrow_range=True), 1, "SAME"),
         [f32(1, 5, 5, 2)], ("FakeQuantWithMinMaxVarsPerChannel", "Conv2D")),
    case("FakeQuantWithMinMaxVarsPerChannel/weights_with_a_zero_channel",
         lambda x: tf.nn.conv2d(x, tf.quantization.fake_quant_with_min_max_vars_per_channel(
             K * tf.constant([1.0, 0.0, 1.0]), tf.constant([-2.0, 0.0, -1.5]), tf.constant([1.7, 0.0, 2.5])),
             1, "SAME"),
         [f32(1, 5, 5, 2)], ("FakeQuantWithMinMaxVarsPerChannel", "Conv2D")),
]


def qdq_v2(lo, hi, **kw):
    return lambda x: tf.raw_ops.QuantizeAndDequantizeV2(input=x, input_min=lo, input_max=hi, range_given=True, **kw)


TABLE += [
    case("QuantizeAndDequantizeV2/signed", qdq_v2(-1.2, 2.5), [f32(4, 50, low=-3, high=3)], "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV2/signed_narrow", qdq_v2(-3.1, 0.7, narrow_range=True),
         [f32(4, 50, low=-4, high=2)], "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV2/unsigned_half_up", qdq_v2(0.0, 1.7, signed_input=False, round_mode="HALF_UP"),
         [f32(4, 50, low=-1, high=2)], "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV2/4bit", qdq_v2(-1.0, 1.0, num_bits=4), [f32(4, 50, low=-2, high=2)],
         "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV3/per_axis", lambda x: tf.raw_ops.QuantizeAndDequantizeV3(
        input=x, input_min=[-1.0, -0.2, -2.0], input_max=[1.5, 0.4, 0.1], num_bits=8, range_given=True, axis=1),
        [f32(2, 3, 30, low=-2, high=2)], "QuantizeAndDequantizeV3"),
    case("QuantizeAndDequantizeV2/half_to_even_ties", qdq_v2(-127.0, 127.0),
         [In((8,), values=(0.5, 1.5, 2.5, -0.5, -1.5, 126.5, -126.5, 3.49))], "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV3/num_bits_input", lambda x: tf.raw_ops.QuantizeAndDequantizeV3(
        input=x, input_min=-2.0, input_max=1.0, num_bits=5, range_given=True), [f32(4, 50, low=-3, high=3)],
        "QuantizeAndDequantizeV3"),
    case("QuantizeAndDequantizeV4/signed", lambda x: tf.raw_ops.QuantizeAndDequantizeV4(
        input=x, input_min=-0.6, input_max=0.9, range_given=True), [f32(4, 50, low=-1, high=1)],
        "QuantizeAndDequantizeV4"),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_image_quant_op(c):
    run_case(c)


def qdq_data_range(op, **kw):
    return lambda x: getattr(tf.raw_ops, op)(input=x, input_min=0.0, input_max=0.0, range_given=False, **kw)


DATA_RANGE = [
    case("QuantizeAndDequantizeV2/data_range", qdq_data_range("QuantizeAndDequantizeV2"), [f32(4, 50, low=-3, high=2)],
         "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV2/data_range_positive_only", qdq_data_range("QuantizeAndDequantizeV2"),
         [f32(4, 50, low=0.1, high=2)], "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV2/data_range_unsigned_half_up", qdq_data_range(
        "QuantizeAndDequantizeV2", signed_input=False, round_mode="HALF_UP"), [f32(4, 50, low=0, high=5)],
        "QuantizeAndDequantizeV2"),
    case("QuantizeAndDequantizeV4/data_range_narrow", qdq_data_range("QuantizeAndDequantizeV4", narrow_range=True,
                                                                     num_bits=6),
         [f32(4, 50, low=-1, high=4)], "QuantizeAndDequantizeV4"),
    case("QuantizeAndDequantizeV3/data_range_per_axis", lambda x: tf.raw_ops.QuantizeAndDequantizeV3(
        input=x, input_min=[0.0, 0.0, 0.0], input_max=[0.0, 0.0, 0.0], num_bits=8, range_given=False, axis=1),
        [f32(2, 3, 30, low=-2, high=3)], "QuantizeAndDequantizeV3"),
]
TABLE += DATA_RANGE


@pytest.mark.parametrize("c", params(DATA_RANGE))
def test_quantize_data_range(c):
    run_case(c)


# ------------------------------------------------------------------ int8 mode: the same rows as Q/DQ layers
#: rows the int8 mode keeps emulated (logged): min == max == 0 has no scale (last_axis has such a channel), data
#: ranges are not build-time scales
INT8_EMULATED = {"FakeQuantWithMinMaxVars/zero_range", "FakeQuantWithMinMaxVarsPerChannel/last_axis"} | \
    {c.id for c in DATA_RANGE}
INT8_WEIGHTS = {"FakeQuantWithMinMaxVarsPerChannel/symmetric_narrow_weights",
                "FakeQuantWithMinMaxVarsPerChannel/weights_with_a_zero_channel"}
QUANT_TABLE = [c for c in TABLE if c.ops[0].startswith(("FakeQuant", "QuantizeAndDequantize"))]


@pytest.mark.parametrize("c", params(QUANT_TABLE))
def test_quant_op_int8(c):
    """quantization="int8": TensorRT int8 QUANTIZE/DEQUANTIZE, same tolerance as the emulation, engine builds."""
    from converter.construct import construct
    from converter.engine import optimize_network
    from converter.graph import parse
    from converter.reference import ReferenceExecutor
    from converter.verify import compare

    from .harness import feeds_for, freeze_case, tf_outputs

    frozen, func = freeze_case(c)
    network = construct(parse(frozen), quantization="int8")
    types = {layer["type"] for layer in network.snapshot.layers}
    if c.id in INT8_EMULATED:
        assert not types & {"QUANTIZE", "DEQUANTIZE"}, types
    elif c.id in INT8_WEIGHTS:  # a constant input: TF's levels as an int8 constant, DEQUANTIZE only
        assert "DEQUANTIZE" in types and "QUANTIZE" not in types, types
        assert any(layer["type"] == "CONSTANT" and layer["outputs"][0]["dtype"] == "INT8"
                   for layer in network.snapshot.layers)
    else:
        assert {"QUANTIZE", "DEQUANTIZE"} <= types, types
        qtypes = {layer["params"]["to_type"] for layer in network.snapshot.layers if layer["type"] == "QUANTIZE"}
        assert qtypes == {"INT8"}
    feeds = feeds_for(c)
    got = ReferenceExecutor(network.snapshot).run(feeds)[frozen.outputs[0]]
    expected = tf_outputs(c, frozen, func, feeds)[0]
    cmp = compare(frozen.outputs[0], got, expected, c.rtol, c.atol)
    assert cmp.passed, f"{cmp.message} max_abs_err={cmp.max_abs_err}"
    assert optimize_network(network)
