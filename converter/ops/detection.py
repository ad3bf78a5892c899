"""Detection-model ops: CropAndResize (RoI crops) with TensorFlow's exact sampling, and padded greedy non-max
suppression (NonMaxSuppressionV4/V5) unrolled into plain layers with TensorFlow's selection order.

TensorRT's INMSLayer is not used: its tie order and output order are not TensorFlow's (TF picks by score, equal
scores by the lower box index) and the reference executor cannot run it.  CombinedNonMaxSuppression stays
unregistered: its per-class candidate queue orders equal scores by heap position (``std::priority_queue`` compared
on the score only), so its tie order is an artefact of the heap, not a rule a construction could follow
(measured: 12 disjoint boxes of equal score come out as boxes 0, 2, 6, 11, 10, 9, 8, 5; NonMaxSuppressionV4 gives
0, 1, …, 7).
Unpadded NonMaxSuppression outputs (V2, V3, and V4/V5 without pad_to_max_output_size) have a data-dependent
length and stay unsupported.
"""

from __future__ import annotations

import numpy as np

from .. import layers
from ..context import Value
from ..errors import ConversionError
from .helpers import (cast, concat, const_int_list, const_scalar, elementwise, reduce, register, reshape, select,
                      slice_value, static_inputs, unary)

_IMAGE_DTYPES = ("float32", "float16", "int32", "int64", "uint8")


def _check_crop_and_resize(node, graph):
    problems = [static_inputs(3, what="crop_size")(node, graph)]
    shape = graph.shape(node.inputs[0])
    if shape is None or len(shape) != 4 or any(int(d) < 0 for d in shape[1:]):
        problems.append(ConversionError(node.name, node.op, "the image needs a static height, width and depth",
                                        "give the model static image shapes"))
    if node.attr("method", "bilinear") not in ("bilinear", "nearest"):
        problems.append(ConversionError(node.name, node.op, f"method {node.attr('method')} is not supported",
                                        "use bilinear or nearest"))
    dtype = node.attr("T", "float32")
    if dtype not in _IMAGE_DTYPES:
        problems.append(ConversionError(node.name, node.op, f"T={dtype} images are not supported",
                                        "cast the image to float32 in the model"))
    return [p for p in problems if p]


def _f32(number) -> Value:
    return Value(const=np.asarray(number, np.float32))


def _coords(ctx, lo: Value, hi: Value, size: int, crop: int, axis: str):
    """TensorFlow's source coordinates for one axis, [N, crop], in float32 as its kernel computes them:
    ``lo * (size - 1) + i * ((hi - lo) * (size - 1) / (crop - 1))``, or the box centre for a single sample."""
    if crop > 1:
        scale = elementwise(ctx, elementwise(ctx, elementwise(ctx, hi, lo, "SUB", f"{axis}_extent"),
                                             _f32(size - 1), "PROD", f"{axis}_extent_px"),
                            _f32(crop - 1), "DIV", f"{axis}_scale")
        start = elementwise(ctx, lo, _f32(size - 1), "PROD", f"{axis}_start")
        steps = elementwise(ctx, Value(const=np.arange(crop, dtype=np.float32)[None, :]), scale, "PROD",
                            f"{axis}_steps")
        return elementwise(ctx, start, steps, "SUM", f"{axis}_coords")
    centre = elementwise(ctx, elementwise(ctx, lo, hi, "SUM", f"{axis}_sum"), _f32(0.5), "PROD", f"{axis}_centre")
    return elementwise(ctx, centre, _f32(size - 1), "PROD", f"{axis}_coords")


def _inside(ctx, coord: Value, size: int, axis: str) -> Value:
    """``not (coord < 0 or coord > size - 1)``: where TensorFlow samples instead of extrapolating."""
    outside = elementwise(ctx, elementwise(ctx, coord, _f32(0), "LESS", f"{axis}_below"),
                          elementwise(ctx, coord, _f32(size - 1), "GREATER", f"{axis}_above"), "OR",
                          f"{axis}_outside")
    return unary(ctx, outside, "NOT", f"{axis}_inside")


def _index(ctx, coord: Value, suffix: str) -> Value:
    return cast(ctx, coord, np.int32, suffix)


def _gather(ctx, flat: Value, idx: Value, suffix: str) -> Value:
    """``flat[idx]`` along axis 0: [N, ch, cw] indices into [B*H*W, C] pixels give [N, ch, cw, C]."""
    params = flat if not flat.is_const else Value(tensor=ctx.constant(flat.const))
    indices = ctx.constant(idx.const) if idx.is_const else ctx.logical(idx)
    layer = ctx.add(layers.gather, [ctx.logical(params), indices], layers.gather.Params(axis=0), suffix=suffix)
    return ctx.out(layer.get_output(0))


@register("CropAndResize", layers=("ElementWise", "Unary", "Cast", "Gather", "Select"),
          check=_check_crop_and_resize,
          restrictions="static crop_size and image height/width/depth; boxes and box indices may be tensors or "
                       "constants; bilinear (TensorFlow's lerp order) or nearest (round half away from zero); "
                       "samples outside the image take extrapolation_value; box indices must be in range "
                       "(TensorFlow's CPU kernel errors otherwise)")
def convert_crop_and_resize(ctx, node, inputs):
    """Coordinates per box row/column as TensorFlow's CPU kernel computes them, clamped into the image (only
    in-image samples are kept), pixels gathered from the flattened image and blended in its order."""
    image, boxes, box_index, crop_size = inputs
    ch, cw = const_int_list(ctx, crop_size, "crop_size")
    _, h, w, c = image.shape
    if np.dtype(image.dtype) != np.float32:
        image = cast(ctx, image, np.float32, "to_float")
    flat = reshape(ctx, image, (-1, c), "pixels")
    n = boxes.shape[0]
    y1, x1, y2, x2 = (slice_value(ctx, boxes, [0, k], [n, 1], suffix=f"box_{k}") for k in range(4))
    in_y = _coords(ctx, y1, y2, h, ch, "y")  # [N, ch]
    in_x = _coords(ctx, x1, x2, w, cw, "x")  # [N, cw]
    inside = elementwise(ctx, reshape(ctx, _inside(ctx, in_y, h, "y"), (n, ch, 1, 1), "y_inside_4d"),
                         reshape(ctx, _inside(ctx, in_x, w, "x"), (n, 1, cw, 1), "x_inside_4d"), "AND", "inside")
    # clamped coordinates equal the true ones wherever a sample is kept, and keep every gather in range
    cy = elementwise(ctx, elementwise(ctx, in_y, _f32(0), "MAX", "y_low"), _f32(h - 1), "MIN", "y_clamped")
    cx = elementwise(ctx, elementwise(ctx, in_x, _f32(0), "MAX", "x_low"), _f32(w - 1), "MIN", "x_clamped")
    base = elementwise(ctx, reshape(ctx, box_index, (n, 1, 1), "box_index_3d"),
                       Value(const=np.asarray(h * w, np.int32)), "PROD", "image_offset")

    def pixel_index(rows: Value, cols: Value, suffix: str) -> Value:
        r = reshape(ctx, elementwise(ctx, _index(ctx, rows, f"{suffix}_row"),
                                     Value(const=np.asarray(w, np.int32)), "PROD", f"{suffix}_row_offset"),
                    (n, ch, 1), f"{suffix}_row_3d")
        col = reshape(ctx, _index(ctx, cols, f"{suffix}_col"), (n, 1, cw), f"{suffix}_col_3d")
        return elementwise(ctx, elementwise(ctx, base, r, "SUM", f"{suffix}_at_row"), col, "SUM", f"{suffix}_index")

    if node.attr("method", "bilinear") == "nearest":
        def rounded(coord: Value, axis: str) -> Value:
            # roundf(coord) for coord >= 0: floor, plus one from a fraction of one half (exact, unlike floor(x+0.5))
            low = unary(ctx, coord, "FLOOR", f"{axis}_floor")
            frac = elementwise(ctx, coord, low, "SUB", f"{axis}_frac")
            up = select(ctx, elementwise(ctx, frac, _f32(0.5), "LESS", f"{axis}_below_half"), _f32(0), _f32(1),
                        f"{axis}_round_up")
            return elementwise(ctx, low, up, "SUM", f"{axis}_round")

        out = _gather(ctx, flat, pixel_index(rounded(cy, "y"), rounded(cx, "x"), "nearest"), "nearest")
    else:
        top, bottom = unary(ctx, cy, "FLOOR", "y_top"), unary(ctx, cy, "CEIL", "y_bottom")
        left, right = unary(ctx, cx, "FLOOR", "x_left"), unary(ctx, cx, "CEIL", "x_right")
        y_lerp = reshape(ctx, elementwise(ctx, cy, top, "SUB", "y_lerp"), (n, ch, 1, 1), "y_lerp_4d")
        x_lerp = reshape(ctx, elementwise(ctx, cx, left, "SUB", "x_lerp"), (n, 1, cw, 1), "x_lerp_4d")
        tl = _gather(ctx, flat, pixel_index(top, left, "top_left"), "top_left")
        tr = _gather(ctx, flat, pixel_index(top, right, "top_right"), "top_right")
        bl = _gather(ctx, flat, pixel_index(bottom, left, "bottom_left"), "bottom_left")
        br = _gather(ctx, flat, pixel_index(bottom, right, "bottom_right"), "bottom_right")

        def lerp(a: Value, b: Value, t: Value, suffix: str) -> Value:
            return elementwise(ctx, a, elementwise(ctx, elementwise(ctx, b, a, "SUB", f"{suffix}_diff"), t, "PROD",
                                                   f"{suffix}_step"), "SUM", suffix)

        out = lerp(lerp(tl, tr, x_lerp, "top"), lerp(bl, br, x_lerp, "bottom"), y_lerp, "blend")
    extrapolation = _f32(float(node.attr("extrapolation_value", 0.0)))
    return select(ctx, inside, out, extrapolation, None)


# ------------------------------------------------------------------ non-max suppression
#: unrolled selection steps at most (each is ~15 small layers)
MAX_NMS_STEPS = 256


def _check_nms(node, graph):
    problems = [static_inputs(2, what="max_output_size")(node, graph)]
    if not node.attr("pad_to_max_output_size", False):
        problems.append(ConversionError(node.name, node.op, "unpadded output (pad_to_max_output_size=False): its "
                                        "length depends on the data",
                                        "use pad_to_max_output_size=True (tf.image.non_max_suppression_padded or "
                                        "the raw op) and slice by valid_outputs after the engine"))
    if node.attr("T", "float32") != "float32" or node.attr("T_threshold", "float32") != "float32":
        problems.append(ConversionError(node.name, node.op, "boxes, scores and thresholds must be float32",
                                        "cast them to float32 in the model"))
    if node.op == "NonMaxSuppressionV5":
        sigma = graph.const(node.inputs[5])
        if sigma is None:
            problems.append(ConversionError(node.name, node.op, "soft_nms_sigma must be a constant",
                                            "use a constant 0.0 (hard NMS)"))
        elif float(np.asarray(sigma).reshape(-1)[0]) > 0:
            problems.append(ConversionError(node.name, node.op, "soft NMS (soft_nms_sigma > 0) is not supported",
                                            "use soft_nms_sigma=0.0 (hard NMS)"))
    shape = graph.shape(node.inputs[0])
    if shape is None or len(shape) != 2 or int(shape[0]) < 0:
        problems.append(ConversionError(node.name, node.op, "the number of boxes must be static",
                                        "give the boxes a static shape"))
    else:
        limit = graph.const(node.inputs[2])
        max_out = int(np.asarray(limit).reshape(-1)[0]) if limit is not None else 1
        steps = min(max_out, int(shape[0]))
        if max_out < 1:
            problems.append(ConversionError(node.name, node.op, "max_output_size < 1 (an empty output)",
                                            "TensorRT has no empty constants; drop the op or select at least one box"))
        if steps > MAX_NMS_STEPS:
            problems.append(ConversionError(node.name, node.op, f"{steps} selection steps (at most "
                                            f"{MAX_NMS_STEPS}: each is unrolled into layers)",
                                            "lower max_output_size"))
    return [p for p in problems if p]


def _suppression_matrix(ctx, boxes: Value, n: int, threshold: Value) -> Value:
    """[N, N] booleans: IoU(i, j) > threshold, with TensorFlow's IOU (corners in any order, 0 when an area is
    not positive); the IoU is symmetric in float arithmetic, so rows serve as candidates or as selections."""
    y1, x1, y2, x2 = (slice_value(ctx, boxes, [0, k], [n, 1], suffix=f"box_{k}") for k in range(4))
    ymin, ymax = elementwise(ctx, y1, y2, "MIN", "ymin"), elementwise(ctx, y1, y2, "MAX", "ymax")
    xmin, xmax = elementwise(ctx, x1, x2, "MIN", "xmin"), elementwise(ctx, x1, x2, "MAX", "xmax")
    area = elementwise(ctx, elementwise(ctx, ymax, ymin, "SUB", "height"), elementwise(ctx, xmax, xmin, "SUB", "width"),
                       "PROD", "area")  # [N, 1]

    def across(v: Value, suffix: str) -> Value:
        return reshape(ctx, v, (1, n), suffix)

    def overlap(lo: Value, hi: Value, axis: str) -> Value:
        top = elementwise(ctx, lo, across(lo, f"{axis}min_row"), "MAX", f"inter_{axis}min")
        bottom = elementwise(ctx, hi, across(hi, f"{axis}max_row"), "MIN", f"inter_{axis}max")
        return elementwise(ctx, elementwise(ctx, bottom, top, "SUB", f"inter_{axis}"), _f32(0), "MAX",
                           f"inter_{axis}_clamped")

    inter = elementwise(ctx, overlap(ymin, ymax, "y"), overlap(xmin, xmax, "x"), "PROD", "intersection")
    area_row = across(area, "area_row")
    union = elementwise(ctx, elementwise(ctx, area, area_row, "SUM", "area_sum"), inter, "SUB", "union")
    iou = elementwise(ctx, inter, union, "DIV", "iou")
    degenerate = elementwise(ctx, elementwise(ctx, area, _f32(0), "GREATER", "area_positive"),
                             elementwise(ctx, area_row, _f32(0), "GREATER", "area_row_positive"), "AND",
                             "areas_positive")
    iou = select(ctx, degenerate, iou, _f32(0), "iou_defined")
    return elementwise(ctx, iou, threshold, "GREATER", "suppresses")


@register("NonMaxSuppressionV4", "NonMaxSuppressionV5", layers=("ElementWise", "Reduce", "Select", "Gather"),
          check=_check_nms,
          restrictions="pad_to_max_output_size=True; hard NMS (V5: soft_nms_sigma = 0); static box count and "
                       "max_output_size (at most 256 selection steps, unrolled); TensorFlow's greedy order: the "
                       "highest remaining score, equal scores by the lower box index; padding indices and scores "
                       "are 0")
def convert_non_max_suppression(ctx, node, inputs):
    """Greedy selection unrolled over min(max_output_size, N) steps: each step picks the highest alive score (the
    lowest index among equals) and retires every box it suppresses — the box TensorFlow's queue would select
    next, since a candidate survives exactly when no earlier selection overlaps it beyond the threshold."""
    boxes, scores, limit, iou_threshold, score_threshold = inputs[:5]
    n = boxes.shape[0]
    max_out = int(const_scalar(ctx, limit, "max_output_size"))
    steps = min(max_out, n)
    suppresses = _suppression_matrix(ctx, boxes, n, iou_threshold) if steps > 1 else None
    alive = elementwise(ctx, scores, score_threshold, "GREATER", "candidates")
    positions = Value(const=np.arange(n, dtype=np.int32))
    picks, picked_scores, valids = [], [], []
    for k in range(steps):
        masked = select(ctx, alive, scores, _f32(-np.inf), f"step{k}_alive_scores")
        best = reduce(ctx, masked, [0], True, "MAX", f"step{k}_best")  # [1]
        valid = elementwise(ctx, best, _f32(-np.inf), "GREATER", f"step{k}_valid")
        tied = elementwise(ctx, alive, elementwise(ctx, masked, best, "EQUAL", f"step{k}_is_best"), "AND",
                           f"step{k}_tied")
        pick = reduce(ctx, select(ctx, tied, positions, Value(const=np.asarray(n, np.int32)), f"step{k}_positions"),
                      [0], True, "MIN", f"step{k}_pick")  # [1]; n when nothing is alive
        picks.append(select(ctx, valid, pick, Value(const=np.zeros(1, np.int32)), f"step{k}_index"))
        picked_scores.append(select(ctx, valid, best, _f32(np.zeros(1)), f"step{k}_score"))
        valids.append(cast(ctx, valid, np.int32, f"step{k}_count"))
        if k + 1 < steps:
            row_index = elementwise(ctx, pick, Value(const=np.asarray(n - 1, np.int32)), "MIN", f"step{k}_row")
            layer = ctx.add(layers.gather, [ctx.logical(suppresses), ctx.logical(row_index)],
                            layers.gather.Params(axis=0), suffix=f"step{k}_suppressed")
            retired = elementwise(ctx, reshape(ctx, ctx.out(layer.get_output(0)), (n,), f"step{k}_suppressed_1d"),
                                  elementwise(ctx, positions, pick, "EQUAL", f"step{k}_picked"), "OR",
                                  f"step{k}_retired")
            alive = elementwise(ctx, alive, unary(ctx, retired, "NOT", f"step{k}_kept"), "AND", f"step{k}_alive")
    if not steps:  # no boxes: nothing to select
        zeros = (ctx.constant(np.zeros(max_out, np.int32), "selected_indices"),
                 ctx.constant(np.zeros(max_out, np.float32), "selected_scores"),
                 ctx.constant(np.zeros((), np.int32), "valid_outputs"))
        indices, values, count = (Value(tensor=t) for t in zeros)
    else:
        padding = max_out - steps
        if padding:
            picks.append(Value(const=np.zeros(padding, np.int32)))
            picked_scores.append(_f32(np.zeros(padding)))
        indices = concat(ctx, picks, 0, "selected_indices")
        values = concat(ctx, picked_scores, 0, "selected_scores") if node.op == "NonMaxSuppressionV5" else None
        count = valids[0]
        for k, v in enumerate(valids[1:], 1):
            count = elementwise(ctx, count, v, "SUM", f"count_{k}")
        count = reshape(ctx, count, (), "valid_outputs")
    if node.op == "NonMaxSuppressionV4":
        return [indices, count]
    return [indices, values, count]
