"""Image and pooling ops, round two: patches, argmax pooling, integer max pooling, crops, area and antialiased
resizing, and convolutions whose filters are tensors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, case, f32, i32, params, run_case

_RNG = np.random.default_rng(7)


def patches(k, s, r, padding):
    return lambda x: tf.image.extract_patches(x, [1, k[0], k[1], 1], [1, s[0], s[1], 1], [1, r[0], r[1], 1], padding)


TABLE = [
    case("ExtractImagePatches/valid_3x3", patches((3, 3), (1, 1), (1, 1), "VALID"), [f32(2, 5, 6, 3)],
         "ExtractImagePatches"),
    case("ExtractImagePatches/same_2x3_stride2", patches((2, 3), (2, 2), (1, 1), "SAME"), [f32(1, 7, 6, 2)],
         "ExtractImagePatches"),
    case("ExtractImagePatches/valid_rates", patches((2, 2), (1, 2), (2, 3), "VALID"), [f32(1, 7, 9, 2)],
         "ExtractImagePatches"),
    case("ExtractImagePatches/same_rates_stride3", patches((3, 2), (3, 2), (2, 2), "SAME"), [f32(2, 8, 7, 1)],
         "ExtractImagePatches"),
    case("ExtractImagePatches/int32_same", patches((2, 2), (2, 2), (1, 1), "SAME"), [i32(1, 5, 5, 3)],
         "ExtractImagePatches"),
    case("ExtractImagePatches/1x1", patches((1, 1), (2, 2), (1, 1), "VALID"), [f32(1, 5, 4, 3)],
         "ExtractImagePatches"),
]


def argmax_pool(k, s, padding, with_batch=False, which=None):
    def fn(x):
        out = tf.nn.max_pool_with_argmax(x, k, s, padding, include_batch_in_index=with_batch)
        return out if which is None else out[which]
    return fn


TABLE += [
    case("MaxPoolWithArgmax/valid_2x2", argmax_pool(2, 2, "VALID"), [f32(2, 6, 6, 3)], "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/same_3x3_s2", argmax_pool(3, 2, "SAME"), [f32(2, 7, 6, 2)], "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/same_3x3_s2_batch", argmax_pool(3, 2, "SAME", True), [f32(3, 7, 6, 2)],
         "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/valid_3x2_s1_batch", argmax_pool([3, 2], [1, 2], "VALID", True), [f32(2, 5, 6, 3)],
         "MaxPoolWithArgmax"),
    # small integers: many ties, which the first in row-major window order wins
    case("MaxPoolWithArgmax/int32_ties", argmax_pool(3, 1, "SAME", True), [i32(2, 5, 5, 2, low=0, high=3)],
         "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/float_ties", argmax_pool(2, 1, "VALID"),
         [In((1, 3, 4, 1), values=(1, 1, 0, 2, 1, 1, 2, 2, -1, 3, 3, -1))], "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/argmax_only", argmax_pool(2, 2, "SAME", which=1), [f32(1, 5, 5, 4)],
         "MaxPoolWithArgmax"),
    case("MaxPoolWithArgmax/1x1_window", argmax_pool(1, 2, "VALID", True), [f32(2, 4, 4, 2)], "MaxPoolWithArgmax"),
]


def max_pool(k, s, padding):
    return lambda x: tf.nn.max_pool2d(x, k, s, padding)


TABLE += [
    case("MaxPool/int32_valid_2x2", max_pool(2, 2, "VALID"), [i32(2, 6, 6, 3, low=-2**31, high=2**31 - 1)],
         "MaxPool"),
    case("MaxPool/int32_same_3x3_s2", max_pool(3, 2, "SAME"), [i32(2, 7, 5, 2, low=-2**31, high=2**31 - 1)],
         "MaxPool"),
    case("MaxPool/int32_same_at_int_min", max_pool(2, 1, "SAME"), [In((1, 2, 2, 1), "int32",
                                                                      values=(-2**31, -2**31, -2**31, 5))],
         "MaxPool"),
    case("MaxPool/int32_same_3x2_s1", max_pool([3, 2], [1, 1], "SAME"), [i32(1, 4, 5, 2)], "MaxPool"),
]


# ------------------------------------------------------------------ CropAndResize
BOXES = tf.constant(_RNG.uniform(-0.3, 1.3, (5, 4)).astype(np.float32))
BOX_INDEX = tf.constant([0, 1, 1, 0, 1], tf.int32)


def crop(size, method="bilinear", extrapolation=0.0):
    return lambda image, boxes, index: tf.image.crop_and_resize(image, boxes, index, size, method, extrapolation)


def crop_const_boxes(size, method="bilinear", extrapolation=0.0):
    return lambda image: tf.image.crop_and_resize(image, BOXES, BOX_INDEX, size, method, extrapolation)


BOX_INPUTS = [f32(6, 4, low=-0.3, high=1.3), i32(6, low=0, high=2)]
TABLE += [
    case("CropAndResize/bilinear_inputs", crop([4, 5]), [f32(2, 7, 8, 3)] + BOX_INPUTS, "CropAndResize"),
    case("CropAndResize/nearest_inputs", crop([5, 3], "nearest"), [f32(2, 7, 8, 3)] + BOX_INPUTS, "CropAndResize"),
    case("CropAndResize/bilinear_extrapolation", crop([6, 6], extrapolation=-2.5), [f32(2, 5, 6, 2)] + BOX_INPUTS,
         "CropAndResize"),
    case("CropAndResize/nearest_extrapolation", crop([6, 4], "nearest", 7.0), [f32(2, 5, 6, 2)] + BOX_INPUTS,
         "CropAndResize"),
    case("CropAndResize/bilinear_const_boxes", crop_const_boxes([3, 4]), [f32(2, 6, 6, 3)], "CropAndResize"),
    case("CropAndResize/nearest_const_boxes", crop_const_boxes([4, 4], "nearest", 1.5), [f32(2, 6, 6, 3)],
         "CropAndResize"),
    case("CropAndResize/single_sample_rows", crop([1, 4]), [f32(2, 7, 8, 3)] + BOX_INPUTS, "CropAndResize"),
    case("CropAndResize/single_sample", crop([1, 1], "nearest"), [f32(2, 7, 8, 3)] + BOX_INPUTS, "CropAndResize"),
    case("CropAndResize/int32_image", crop([4, 4]), [i32(2, 6, 5, 2, low=-100, high=100)] + BOX_INPUTS,
         "CropAndResize"),
    # whole-image boxes hit integer source coordinates, half-way nearest roundings and the image edge exactly
    case("CropAndResize/exact_grid", crop([9, 5], "nearest"),
         [f32(1, 5, 3, 2), In((3, 4), values=(0, 0, 1, 1, 1, 1, 0, 0, 0.25, 0, 0.75, 1)),
          In((3,), "int32", values=(0, 0, 0))], "CropAndResize"),
    case("CropAndResize/exact_grid_bilinear", crop([9, 5]),
         [f32(1, 5, 3, 2), In((3, 4), values=(0, 0, 1, 1, 1, 1, 0, 0, 0.25, 0, 0.75, 1)),
          In((3,), "int32", values=(0, 0, 0))], "CropAndResize"),
]


# ------------------------------------------------------------------ area and antialiased resizing
def area(size, align=False):
    return lambda x: tf.raw_ops.ResizeArea(images=x, size=size, align_corners=align)


def scale_translate(size, scale, translation, kernel="lanczos3", antialias=True):
    return lambda x: tf.raw_ops.ScaleAndTranslate(images=x, size=size, scale=scale, translation=translation,
                                                  kernel_type=kernel, antialias=antialias)


TABLE += [
    case("ResizeArea/down_uneven", area([3, 4]), [f32(2, 7, 9, 3)], "ResizeArea"),
    case("ResizeArea/down_integer", area([2, 3]), [f32(1, 6, 9, 2)], "ResizeArea"),
    case("ResizeArea/up", area([9, 7]), [f32(1, 4, 5, 2)], "ResizeArea"),
    case("ResizeArea/align_corners_down", area([3, 4], True), [f32(2, 7, 9, 3)], "ResizeArea"),
    case("ResizeArea/align_corners_up", area([8, 11], True), [f32(1, 4, 5, 1)], "ResizeArea"),
    case("ResizeArea/align_corners_to_1", area([1, 1], True), [f32(1, 4, 5, 2)], "ResizeArea"),
    case("ResizeArea/int32_image", area([3, 2]), [i32(1, 5, 5, 2, low=-50, high=50)], "ResizeArea"),
    case("ResizeArea/image_resize_area", lambda x: tf.image.resize(x, [5, 3], method="area"), [f32(1, 8, 7, 3)],
         "ResizeArea"),
]
for method in ("bilinear", "bicubic", "lanczos3", "lanczos5", "gaussian", "mitchellcubic"):
    TABLE += [
        case(f"ScaleAndTranslate/resize_antialias_{method}_down",
             lambda x, m=method: tf.image.resize(x, [5, 4], method=m, antialias=True), [f32(2, 13, 9, 3)],
             "ScaleAndTranslate"),
        case(f"ScaleAndTranslate/resize_antialias_{method}_up",
             lambda x, m=method: tf.image.resize(x, [9, 11], method=m, antialias=True), [f32(1, 4, 5, 2)],
             "ScaleAndTranslate"),
    ]
TABLE += [
    case("ScaleAndTranslate/lanczos1_translated", scale_translate([6, 7], [0.7, 1.3], [0.8, -1.5], "lanczos1"),
         [f32(1, 8, 6, 2)], "ScaleAndTranslate"),
    case("ScaleAndTranslate/box_no_antialias", scale_translate([4, 5], [0.5, 0.6], [0.0, 0.3], "box", False),
         [f32(2, 8, 8, 2)], "ScaleAndTranslate"),
    case("ScaleAndTranslate/triangle_outside", scale_translate([7, 7], [2.0, 0.5], [3.0, 2.0], "triangle"),
         [f32(1, 5, 6, 2)], "ScaleAndTranslate"),
    case("ScaleAndTranslate/keyscubic_no_antialias", scale_translate([5, 3], [0.45, 0.4], [0.2, 0.0],
                                                                     "keyscubic", False),
         [f32(1, 11, 8, 3)], "ScaleAndTranslate"),
    case("ScaleAndTranslate/int32_image", scale_translate([4, 4], [0.5, 0.5], [0.0, 0.0], "gaussian"),
         [i32(1, 8, 8, 1, low=0, high=255)], "ScaleAndTranslate"),
]


# ------------------------------------------------------------------ convolution filters fed as tensors
def conv2d(strides=1, padding="SAME", dilations=1):
    return lambda x, w: tf.nn.conv2d(x, w, strides, padding, dilations=dilations)


def conv2d_transpose(output_shape, strides, padding):
    return lambda x, w: tf.nn.conv2d_transpose(x, w, output_shape, strides, padding)


def conv3d_transpose(output_shape, strides, padding):
    return lambda x, w: tf.nn.conv3d_transpose(x, w, output_shape, strides, padding)


TABLE += [
    case("Conv2D/filter_input_same", conv2d(), [f32(2, 6, 7, 3), f32(3, 3, 3, 4)], "Conv2D"),
    case("Conv2D/filter_input_valid_strided_dilated", conv2d(2, "VALID", 1), [f32(1, 9, 8, 2), f32(2, 3, 2, 5)],
         "Conv2D"),
    case("Conv2D/filter_input_dilated", conv2d(1, "SAME", 2), [f32(1, 8, 8, 2), f32(3, 3, 2, 3)], "Conv2D"),
    case("Conv2D/filter_input_grouped", conv2d(), [f32(1, 5, 5, 4), f32(3, 3, 2, 6)], "Conv2D"),
    case("Conv2D/filter_computed_with_bias", lambda x, w: tf.nn.bias_add(tf.nn.conv2d(x, w * 0.5 + 1.0, 1, "SAME"),
                                                                      tf.constant([0.5, -1.0, 2.0])),
         [f32(1, 5, 6, 2), f32(3, 3, 2, 3)], ("Conv2D", "BiasAdd")),
    case("Conv3D/filter_input", lambda x, w: tf.nn.conv3d(x, w, [1, 1, 2, 1, 1], "SAME"),
         [f32(1, 4, 6, 5, 2), f32(2, 3, 3, 2, 3)], "Conv3D"),
    case("Conv2DBackpropInput/filter_input_same", conv2d_transpose([2, 10, 12, 3], 2, "SAME"),
         [f32(2, 5, 6, 4), f32(3, 3, 3, 4)], "Conv2DBackpropInput"),
    case("Conv2DBackpropInput/filter_input_valid", conv2d_transpose([1, 11, 9, 2], [2, 1], "VALID"),
         [f32(1, 5, 7, 3), f32(3, 3, 2, 3)], "Conv2DBackpropInput"),
    case("Conv3DBackpropInputV2/filter_input", conv3d_transpose([1, 4, 8, 6, 2], [1, 1, 2, 2, 1], "SAME"),
         [f32(1, 4, 4, 3, 3), f32(2, 3, 3, 2, 3)], "Conv3DBackpropInputV2"),
]


# ------------------------------------------------------------------ padded non-max suppression
def nms_v4(max_out, iou=0.5, score=float("-inf")):
    return lambda boxes, scores: tf.raw_ops.NonMaxSuppressionV4(
        boxes=boxes, scores=scores, max_output_size=max_out, iou_threshold=iou, score_threshold=score,
        pad_to_max_output_size=True)


def nms_v5(max_out, iou=0.5, score=float("-inf")):
    return lambda boxes, scores: tf.raw_ops.NonMaxSuppressionV5(
        boxes=boxes, scores=scores, max_output_size=max_out, iou_threshold=iou, score_threshold=score,
        soft_nms_sigma=0.0, pad_to_max_output_size=True)


def clustered_boxes(n, seed):
    """Boxes in a few clusters (so suppression happens), corners in either order, some degenerate."""
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 1, (4, 2))[rng.integers(0, 4, n)] + rng.normal(0, 0.05, (n, 2))
    half = rng.uniform(0.0, 0.2, (n, 2))
    boxes = np.concatenate([centres - half, centres + half], axis=1)
    flip = rng.random(n) < 0.3
    boxes[flip] = boxes[flip][:, [2, 3, 0, 1]]
    boxes[:2, 2:] = boxes[:2, :2]  # zero area
    return In((n, 4), values=tuple(boxes.astype(np.float32).reshape(-1)))


# scores from a few levels: many ties, broken by the lower index
TIED_SCORES = In((24,), values=tuple(np.random.default_rng(5).integers(0, 4, 24).astype(np.float32) / 4))
TABLE += [
    case("NonMaxSuppressionV4/padded", nms_v4(10), [clustered_boxes(24, 1), f32(24)], "NonMaxSuppressionV4"),
    case("NonMaxSuppressionV4/score_threshold", nms_v4(12, 0.3, 0.2), [clustered_boxes(24, 2), f32(24, low=0, high=1)],
         "NonMaxSuppressionV4"),
    case("NonMaxSuppressionV4/ties", nms_v4(8, 0.4), [clustered_boxes(24, 3), TIED_SCORES], "NonMaxSuppressionV4"),
    case("NonMaxSuppressionV4/more_than_boxes", nms_v4(9, 0.6), [clustered_boxes(6, 4), f32(6)],
         "NonMaxSuppressionV4"),
    case("NonMaxSuppressionV4/no_boxes", nms_v4(3), [In((0, 4)), In((0,))], "NonMaxSuppressionV4", layers=False),
    case("NonMaxSuppressionV5/hard", nms_v5(10, 0.45, 0.1), [clustered_boxes(24, 6), f32(24, low=0, high=1)],
         "NonMaxSuppressionV5"),
    case("NonMaxSuppressionV5/ties_all_suppressed_early", nms_v5(6, 0.0, 0.3), [clustered_boxes(12, 7),
                                                                            In((12,), values=(0.5,) * 12)],
         "NonMaxSuppressionV5"),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_image_op2(c):
    run_case(c)


def unpadded_nms(boxes, scores):
    return tf.raw_ops.NonMaxSuppressionV4(boxes=boxes, scores=scores, max_output_size=4, iou_threshold=0.5,
                                          score_threshold=0.0, pad_to_max_output_size=False)[0]


def soft_nms(boxes, scores):
    return tf.raw_ops.NonMaxSuppressionV5(boxes=boxes, scores=scores, max_output_size=4, iou_threshold=0.5,
                                          score_threshold=0.0, soft_nms_sigma=0.5, pad_to_max_output_size=True)[0]


# one row per restriction: the graph, and the text the support check must report (before any layer exists)
RESTRICTED = [
    case("NonMaxSuppressionV4/unpadded", unpadded_nms, [f32(6, 4), f32(6)], ("NonMaxSuppressionV4", "unpadded")),
    case("NonMaxSuppressionV5/soft", soft_nms, [f32(6, 4), f32(6)], ("NonMaxSuppressionV5", "soft NMS")),
    case("NonMaxSuppressionV4/zero_outputs", nms_v4(0), [f32(6, 4), f32(6)],
         ("NonMaxSuppressionV4", "max_output_size < 1")),
    case("NonMaxSuppressionV4/too_many_steps", nms_v4(300), [f32(400, 4), f32(400)],
         ("NonMaxSuppressionV4", "selection steps")),
    case("MaxPool/int32_nchw", lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID", data_format="NCHW"), [i32(1, 2, 4, 4)],
         ("MaxPool", "integer MaxPool in NCHW")),
    case("MaxPool/uint8", lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), [In((1, 4, 4, 2), "uint8")],
         ("MaxPool", "float32/float16 only")),
    case("MaxPool/int32_dynamic_width", lambda x: tf.nn.max_pool2d(x, 2, 2, "VALID"), [In((1, 4, None, 2), "int32")],
         ("MaxPool", "static height, width and depth")),
    case("Conv2D/filter_of_unknown_shape", lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"),
         [f32(1, 4, 4, 3), In((None, 3, 3, 2))], ("Conv2D", "filter tensor of unknown shape")),
    case("MaxPoolWithArgmax/dynamic_batch_in_index", lambda x: tf.nn.max_pool_with_argmax(
        x, 2, 2, "VALID", include_batch_in_index=True)[1], [In((None, 4, 4, 2))],
        ("MaxPoolWithArgmax", "include_batch_in_index with a dynamic batch")),
    case("ExtractImagePatches/dynamic_height", patches((2, 2), (1, 1), (1, 1), "VALID"), [In((1, None, 4, 2))],
         ("ExtractImagePatches", "static height, width and depth")),
    case("CropAndResize/data_dependent_crop_size", lambda x, b, i, s: tf.image.crop_and_resize(x, b, i, s),
         [f32(1, 4, 4, 1), f32(2, 4), i32(2, low=0, high=1), i32(2, low=1, high=3)],
         ("CropAndResize", "crop_size must be a constant")),
    case("ResizeArea/dynamic_image", area([2, 2]), [In((1, None, None, 2))], ("ResizeArea", "static height and width")),
    case("ScaleAndTranslate/scale_tensor", lambda x, s: tf.raw_ops.ScaleAndTranslate(
        images=x, size=[3, 3], scale=s, translation=[0.0, 0.0]), [f32(1, 4, 4, 1), f32(2, low=0.5, high=1)],
        ("ScaleAndTranslate", "the size, scale and translation must be a constant")),
]


def _freeze_dynamic(c):
    """The case frozen with its unknown dimensions kept dynamic (an optimization profile of 2..8 for each)."""
    from converter.freeze import freeze
    from converter.profiles import ShapeRange

    specs = [tf.TensorSpec(spec.shape, tf.dtypes.as_dtype(spec.dtype), name=f"x{i}") for i, spec in enumerate(c.inputs)]
    func = tf.function(c.fn, input_signature=specs, autograph=False)

    def at(shape, size):
        return tuple(size if d is None else d for d in shape)

    profile = {f"x{i}": ShapeRange(at(spec.shape, 2), at(spec.shape, 4), at(spec.shape, 8))
               for i, spec in enumerate(c.inputs) if None in spec.shape}
    return freeze(func, profiles=[profile])


@pytest.mark.parametrize("c", [c.param() for c in RESTRICTED])
def test_restriction_is_reported_before_any_layer(c, monkeypatch):
    from converter import trt as trtshim
    from converter.errors import UnsupportedOpsError
    from converter.graph import parse

    from .harness import freeze_case

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    frozen = _freeze_dynamic(c) if any(None in spec.shape for spec in c.inputs) else freeze_case(c)[0]
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    op, message = c.ops
    found = [e for e in info.value.errors if e.op == op and message in e.message]
    assert found, str(info.value)
    assert all(e.hint for e in found), "every restriction comes with a hint"
    assert not built
