"""Diagonal, segment, scatter and counting ops (converter/ops/matrix.py, converter/ops/segments.py).

Every case is compared with TensorFlow's CPU kernel: k as one diagonal and as ranges (sub-, super- and
mixed), all four align values, non-square matrices, explicit num_rows/num_cols and padding values, rank 1
and batched inputs, int and float dtypes, empty segments and duplicate scatter indices.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from .harness import In, case, f32, i32, params, run_case

R = tf.raw_ops


def _k(k):
    return tf.constant(k, tf.int32)


def _mdiag(k, rows=-1, cols=-1, pad=0, align="RIGHT_LEFT", v2=False):
    def fn(d):
        pad_t = tf.constant(pad, d.dtype)
        if v2:
            return R.MatrixDiagV2(diagonal=d, k=_k(k), num_rows=rows, num_cols=cols, padding_value=pad_t)
        return R.MatrixDiagV3(diagonal=d, k=_k(k), num_rows=rows, num_cols=cols, padding_value=pad_t, align=align)

    return fn


def _mpart(k, pad=0, align="RIGHT_LEFT", v2=False):
    def fn(x):
        pad_t = tf.constant(pad, x.dtype)
        if v2:
            return R.MatrixDiagPartV2(input=x, k=_k(k), padding_value=pad_t)
        return R.MatrixDiagPartV3(input=x, k=_k(k), padding_value=pad_t, align=align)

    return fn


def _mset(k, align="RIGHT_LEFT", v2=False):
    def fn(x, d):
        if v2:
            return R.MatrixSetDiagV2(input=x, diagonal=d, k=_k(k))
        return R.MatrixSetDiagV3(input=x, diagonal=d, k=_k(k), align=align)

    return fn


#: TensorFlow's max/min reducers drop or keep a NaN depending on where it sits (vectorised max); TensorRT's Reduce
#: propagates it, so NaN is left out of the Max/Min segment cases
_SPECIAL_NO_NAN = In((6,), "float32", values=(-np.inf, np.inf, -np.inf, -0.0, 1.5, -2.0))
_SEG_OPS = ("SegmentSum", "SegmentMax", "SegmentMin", "SegmentMean", "SegmentProd")
_IDS = [0, 0, 3, 3, 3, 5]


def _seg(op, ids):
    return lambda d: getattr(R, op)(data=d, segment_ids=tf.constant(ids, tf.int32))


def _sparse_seg(op, ids, num, indices):
    ids = tf.constant(ids, tf.int32)

    def fn(d, *rest):
        idx = rest[0] if indices is None else tf.constant(indices, tf.int32)
        if num is None:
            return getattr(R, op)(data=d, indices=idx, segment_ids=ids)
        return getattr(R, op)(data=d, indices=idx, segment_ids=ids, num_segments=tf.constant(num))

    return fn


def _sparse_segment_cases():
    cases = []
    for base in ("SparseSegmentSum", "SparseSegmentMean", "SparseSegmentSqrtN"):
        rows = [("tensor_indices", [0, 0, 2, 2, 2], None, [f32(6, 3), i32(5, low=0, high=6)]),
                ("const_indices_rank1", [0, 1, 1, 3], [5, 0, 5, 2], [f32(6)]),
                ("repeated_rows_rank3", [0, 0, 0], [1, 1, 0], [f32(2, 2, 3)]),
                ("special_values", [0, 0, 1, 2, 2, 2], [0, 1, 2, 3, 4, 5], [_SPECIAL])]
        if base == "SparseSegmentSum":
            rows.append(("int", [0, 0, 2], None, [i32(4, 2), i32(3, low=0, high=4)]))
        for name, ids, indices, ins in rows:
            cases.append(case(f"{base}/{name}", _sparse_seg(base, ids, None, indices), ins, base))
            op = base + "WithNumSegments"
            cases.append(case(f"{op}/{name}", _sparse_seg(op, ids, max(ids) + 3, indices), ins, op))
    return cases


_SPECIAL = In((6,), "float32", values=(np.nan, np.inf, -np.inf, -0.0, 1.5, -2.0))

TABLE = [
    # ---- MatrixDiag
    case("MatrixDiag/v1_rank1", lambda d: R.MatrixDiag(diagonal=d), [f32(4)], "MatrixDiag"),
    case("MatrixDiag/v1_batched_int", lambda d: R.MatrixDiag(diagonal=d), [i32(2, 3, 4)], "MatrixDiag"),
    case("MatrixDiag/v1_special_values", lambda d: R.MatrixDiag(diagonal=d), [_SPECIAL], "MatrixDiag"),
    case("MatrixDiag/linalg_diag", tf.linalg.diag, [f32(2, 5)], "MatrixDiagV3"),
    case("MatrixDiag/v3_super_k", _mdiag(2), [f32(3, 4)], "MatrixDiagV3"),
    case("MatrixDiag/v3_sub_k_padded", _mdiag(-1, pad=9.5), [f32(3)], "MatrixDiagV3"),
    case("MatrixDiag/v3_range_right_left", _mdiag([-1, 2], pad=-1), [f32(2, 4, 3)], "MatrixDiagV3"),
    case("MatrixDiag/v3_range_left_right", _mdiag([-2, 1], align="LEFT_RIGHT"), [f32(4, 3)], "MatrixDiagV3"),
    case("MatrixDiag/v3_range_right_right_rect", _mdiag([-1, 1], rows=3, cols=5, align="RIGHT_RIGHT"),
         [f32(3, 3)], "MatrixDiagV3"),
    case("MatrixDiag/v3_range_left_left_int", _mdiag([0, 2], rows=4, cols=3, align="LEFT_LEFT", pad=7),
         [i32(2, 3, 3)], "MatrixDiagV3"),
    case("MatrixDiag/v3_only_rows", _mdiag(1, rows=5), [f32(4)], "MatrixDiagV3"),
    case("MatrixDiag/v3_only_cols", _mdiag(-2, cols=3), [f32(1, 3)], "MatrixDiagV3"),
    case("MatrixDiag/v2_range", _mdiag([-1, 1], v2=True, pad=3), [f32(3, 3)], "MatrixDiagV2"),
    # ---- MatrixDiagPart
    case("MatrixDiagPart/v1_square", lambda x: R.MatrixDiagPart(input=x), [f32(5, 5)], "MatrixDiagPart"),
    case("MatrixDiagPart/v1_rect_batched_int", lambda x: R.MatrixDiagPart(input=x), [i32(2, 3, 3, 5)],
         "MatrixDiagPart"),
    case("MatrixDiagPart/linalg_diag_part", tf.linalg.diag_part, [f32(2, 4, 3)], "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_super", _mpart(1), [f32(3, 4)], "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_sub", _mpart(-2), [f32(2, 4, 3)], "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_range_right_left", _mpart([-1, 2], pad=-5.5), [f32(3, 4, 5)], "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_range_left_right", _mpart([-2, 0], align="LEFT_RIGHT"), [f32(5, 4)],
         "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_range_right_right_int", _mpart([-1, 1], pad=4, align="RIGHT_RIGHT"), [i32(2, 4, 4)],
         "MatrixDiagPartV3"),
    case("MatrixDiagPart/v3_range_left_left", _mpart([1, 3], align="LEFT_LEFT"), [f32(4, 6)], "MatrixDiagPartV3"),
    case("MatrixDiagPart/v2_range", _mpart([-1, 1], v2=True, pad=2), [f32(3, 4)], "MatrixDiagPartV2"),
    # ---- MatrixSetDiag
    case("MatrixSetDiag/v1_square", lambda x, d: R.MatrixSetDiag(input=x, diagonal=d), [f32(4, 4), f32(4)],
         "MatrixSetDiag"),
    case("MatrixSetDiag/v1_rect_batched_int", lambda x, d: R.MatrixSetDiag(input=x, diagonal=d),
         [i32(2, 3, 5), i32(2, 3)], "MatrixSetDiag"),
    case("MatrixSetDiag/linalg_set_diag", tf.linalg.set_diag, [f32(2, 3, 3), f32(2, 3)], "MatrixSetDiagV3"),
    case("MatrixSetDiag/v3_super", _mset(2), [f32(3, 5), f32(3)], "MatrixSetDiagV3"),
    case("MatrixSetDiag/v3_range_right_left", _mset([-1, 1]), [f32(2, 4, 4), f32(2, 3, 4)], "MatrixSetDiagV3"),
    case("MatrixSetDiag/v3_range_left_right_rect", _mset([-2, 1], align="LEFT_RIGHT"), [f32(4, 3), f32(4, 3)],
         "MatrixSetDiagV3"),
    case("MatrixSetDiag/v3_range_right_right_int", _mset([0, 2], align="RIGHT_RIGHT"),
         [i32(2, 3, 4), i32(2, 3, 3)], "MatrixSetDiagV3"),
    case("MatrixSetDiag/v3_range_left_left", _mset([-2, -1], align="LEFT_LEFT"), [f32(4, 4), f32(2, 3)],
         "MatrixSetDiagV3"),
    case("MatrixSetDiag/v2_range", _mset([-1, 0], v2=True), [f32(3, 3), f32(2, 3)], "MatrixSetDiagV2"),
    # ---- Diag / DiagPart
    case("Diag/rank1", lambda x: R.Diag(diagonal=x), [f32(5)], "Diag"),
    case("Diag/rank2_int", lambda x: R.Diag(diagonal=x), [i32(2, 3)], "Diag"),
    case("DiagPart/rank2", lambda x: R.DiagPart(input=x), [f32(4, 4)], "DiagPart"),
    case("DiagPart/rank4_int", lambda x: R.DiagPart(input=x), [i32(2, 3, 2, 3)], "DiagPart"),
    # ---- Segment* (constant sorted ids; segments 1, 2 and 4 empty in _IDS)
    *[case(f"{op}/{name}", _seg(op, ids), [spec], op)
      for op in _SEG_OPS
      for name, ids, spec in [("rank1", _IDS, f32(6)), ("rank3_empty_segments", _IDS, f32(6, 2, 3)),
                              ("int_negative", _IDS, i32(6, 4, low=-20, high=20)),
                              ("one_segment", [0, 0, 0], f32(3, 2)), ("leading_empty", [2, 2, 3], i32(3, 2)),
                              ("special_values", [0, 0, 1, 1, 1, 3],
                               _SPECIAL if op not in ("SegmentMax", "SegmentMin") else _SPECIAL_NO_NAN)]],
    # ---- SparseSegment* (constant ids; segment 1 empty; WithNumSegments: trailing empty segments)
    *_sparse_segment_cases(),
    # ---- Bincount
    case("Bincount/counts", lambda a: R.Bincount(arr=a, size=tf.constant(6), weights=tf.constant([], tf.float32)),
         [i32(20, low=0, high=9)], "Bincount"),
    case("Bincount/int_weights_counts", lambda a: R.Bincount(arr=a, size=tf.constant(4),
                                                             weights=tf.constant([], tf.int32)),
         [i32(3, 5, low=0, high=6)], "Bincount"),
    case("Bincount/float_weights", lambda a, w: R.Bincount(arr=a, size=tf.constant(5), weights=w),
         [i32(2, 7, low=0, high=7), f32(2, 7)], "Bincount"),
    case("Bincount/int_weights", lambda a, w: R.Bincount(arr=a, size=tf.constant(3), weights=w),
         [i32(9, low=0, high=4), i32(9)], "Bincount"),
    case("Bincount/const_arr_weights", lambda w: R.Bincount(arr=tf.constant([0, 2, 2, 5]), size=tf.constant(4),
                                                            weights=w), [f32(4)], "Bincount"),
    # ---- ScatterNd
    case("ScatterNd/rank1_unique", lambda u: tf.scatter_nd(tf.constant([[4], [0], [2]]), u, [6]), [f32(3)],
         "ScatterNd"),
    case("ScatterNd/duplicates_add", lambda u: tf.scatter_nd(tf.constant([[1], [3], [1], [1], [0]]), u, [5, 3]),
         [f32(5, 3)], "ScatterNd"),
    case("ScatterNd/int_duplicates_2d_index", lambda u: tf.scatter_nd(
        tf.constant([[[0, 1], [2, 2]], [[0, 1], [1, 0]]]), u, [3, 3, 2]), [i32(2, 2, 2)], "ScatterNd"),
    case("ScatterNd/full_index_every_position", lambda u: tf.scatter_nd(
        tf.constant([[1, 1], [0, 0], [0, 1], [1, 0]]), u, [2, 2]), [f32(4)], "ScatterNd"),
    case("ScatterNd/rank5_output", lambda u: tf.scatter_nd(tf.constant([[1], [0], [1]]), u, [2, 1, 2, 3, 2]),
         [f32(3, 1, 2, 3, 2)], "ScatterNd"),
    case("ScatterNd/special_values", lambda u: tf.scatter_nd(tf.constant([[0], [0], [1], [2], [2], [3]]), u, [5]),
         [_SPECIAL], "ScatterNd"),
    # ---- InvertPermutation
    case("InvertPermutation/tensor", lambda p: R.InvertPermutation(x=p),
         [In((7,), "int32", values=(3, 0, 6, 1, 5, 2, 4))], "InvertPermutation"),
    case("InvertPermutation/computed", lambda x: R.InvertPermutation(x=tf.argsort(x)), [f32(9)],
         "InvertPermutation", layers=False),
    case("InvertPermutation/const_folds", lambda x: tf.gather(x, R.InvertPermutation(x=tf.constant([2, 0, 1]))),
         [f32(3, 2)], "InvertPermutation", layers=False, raw=True),
]


@pytest.mark.parametrize("c", params(TABLE))
def test_matrix_op(c):
    run_case(c)


# ------------------------------------------------------------------ support-check errors
def _unsupported(fn, inputs):
    from converter.errors import UnsupportedOpsError

    from .harness import convert_case

    with pytest.raises(UnsupportedOpsError) as info:
        convert_case(case("unsupported", fn, inputs, ()))
    return str(info.value)


@pytest.mark.parametrize("fn, inputs, op, words", [
    (lambda d, i: tf.math.segment_sum(d, i), [f32(4, 2), i32(4, low=0, high=3)], "SegmentSum", "segment_ids"),
    (lambda d: tf.math.segment_max(d, tf.constant([0, 2, 1, 1])), [f32(4, 2)], "SegmentMax", "sorted"),
    (lambda u, i: tf.scatter_nd(i, u, [5]), [f32(3), In((3, 1), "int32", values=(0, 1, 2))], "ScatterNd",
     "indices"),
    (lambda u: tf.scatter_nd(tf.constant([[5]]), u, [5]), [f32(1)], "ScatterNd", "out of range"),
    (lambda d, k: R.MatrixDiagPartV3(input=d, k=k, padding_value=0.0), [f32(3, 3), i32(low=0, high=2)],
     "MatrixDiagPartV3", "k"),
    (lambda x, y: R.TruncateMod(x=x, y=y), [In((3,), "float16"), In((3,), "float16")], "TruncateMod", "float16"),
    (lambda a: R.Bincount(arr=a, size=tf.reduce_max(a), weights=tf.constant([], tf.float32)),
     [i32(5, low=0, high=4)], "Bincount", "size"),
    (lambda x, n: R.NthElement(input=x, n=n), [f32(2, 4), i32(low=0, high=3)], "NthElement", "n must be a constant"),
])
def test_unsupported_forms_are_reported_by_the_support_check(fn, inputs, op, words):
    text = _unsupported(fn, inputs)
    assert op in text and words in text, text
