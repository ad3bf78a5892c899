"""Meta tests: every registered op has conformance cases, unsupported ops and restrictions are reported before
any layer is built, and docs/ops.md matches the registry."""

from __future__ import annotations

import pytest
import tensorflow as tf

from converter.errors import UnsupportedOpsError
from converter.graph import parse

from . import (test_array_ops, test_control_flow_ops, test_image_ops2, test_image_quant_ops, test_indexing_ops,
               test_math_ops, test_math_ops2, test_matrix_ops, test_nn_ops, test_op_regressions, test_patterns)
from .harness import case, f32, freeze_case, i32

TABLES = [test_array_ops.TABLE, test_image_quant_ops.TABLE, test_math_ops.TABLE, test_nn_ops.TABLE,
          test_patterns.TABLE, test_indexing_ops.TABLE, test_image_ops2.TABLE, test_math_ops2.TABLE,
          test_matrix_ops.TABLE, test_op_regressions.TABLE, test_control_flow_ops.TABLE]


def test_every_registered_op_has_a_conformance_case():
    import converter.ops  # noqa: F401 - registers every converter
    from converter.registry import REGISTRY

    covered = {op for table in TABLES for c in table for op in c.ops}
    missing = sorted(set(REGISTRY) - covered)
    assert not missing, f"registered ops without a conformance case in tests/converter/ops: {missing}"


def test_case_ids_are_unique_across_tables():
    ids = [c.id for table in TABLES for c in table]
    assert len(ids) == len(set(ids))


@pytest.fixture
def no_network(monkeypatch):
    """Fail if anything tries to create a TensorRT network."""
    from converter import trt as trtshim

    built = []
    monkeypatch.setattr(trtshim, "create_network", lambda *a, **k: built.append(1))
    return built


def _parse_error(c) -> UnsupportedOpsError:
    frozen, _ = freeze_case(c)
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)
    return info.value


def test_ops_without_converter_are_all_listed_with_counts(no_network):
    c = case("unsupported", lambda x: (tf.linalg.det(x) + tf.math.special.bessel_j0(x)[0, 0]
                                       + tf.math.special.bessel_j0(x * 2.0)[0, 0]
                                       + tf.reduce_sum(tf.math.cumulative_logsumexp(x, axis=0))), [f32(3, 3)], ())
    err = _parse_error(c)
    assert err.counts["BesselJ0"] == 2
    assert err.counts["MatrixDeterminant"] == 1 and err.counts["CumulativeLogsumexp"] == 1
    assert "Unsupported ops" in str(err) and "BesselJ0 ×2" in str(err)
    assert not no_network


def test_combined_nms_is_reported_not_converted(no_network):
    def nms(boxes, scores):
        return tf.image.combined_non_max_suppression(boxes, scores, 3, 3).nmsed_boxes

    err = _parse_error(case("nms", nms, [f32(1, 6, 1, 4), f32(1, 6, 2, low=0, high=1)], ()))
    assert err.counts["CombinedNonMaxSuppression"] == 1
    assert not no_network


# one row per restriction: the graph, and the text the support check must report
RESTRICTED = [
    case("DepthwiseConv2dNative/tensor_filter", lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME"),
         [f32(1, 4, 4, 3), f32(3, 3, 3, 2)], "the filter must be a constant"),
    case("Round/i32", lambda x: tf.raw_ops.Round(x=x), [i32(2, 3)], "float32/float16 only"),
    case("BatchMatMulV3/int16_result", lambda a, b: tf.raw_ops.BatchMatMulV3(
        x=tf.cast(a, tf.int8), y=tf.cast(b, tf.int8), Tout=tf.int16), [i32(2, 3), i32(3, 2)], "Tout=int16"),
    case("Reshape/data_dependent_shape", lambda x, s: tf.reshape(x, s), [f32(2, 3), i32(2, low=1, high=2)],
         "the target shape must be a constant"),
    case("QuantizeAndDequantizeV2/range_from_tensor", lambda x, lo: tf.quantization.quantize_and_dequantize_v2(
        x, lo, 1.0, range_given=True), [f32(2, 3), f32()], "input_min/input_max must be a constant"),
    case("Einsum/diagonal", lambda a: tf.einsum("ii->i", a), [f32(3, 3)], "repeated subscripts"),
    case("LRN/radius8", lambda x: tf.nn.local_response_normalization(x, 8), [f32(1, 2, 2, 20)], "depth_radius"),
    case("Cast/uint8_inside_the_network", lambda x: tf.cast(tf.cast(x, tf.uint8), tf.int32) * 2,
         [i32(2, 3, low=0, high=200)], "uint8 tensor inside the network"),
    case("Roll/tensor_shift", lambda x, s: tf.roll(x, s, 0), [f32(4, 3), i32(low=0, high=3)],
         "shift and axis must be a constant"),
    case("TopKV2/k_too_large", lambda x: tf.math.top_k(x, 4000)[0], [f32(1, 4001)], "k > 3840"),
    case("TopKV2/unsorted", lambda x: tf.math.top_k(x, 3, sorted=False)[0], [f32(2, 8)], "sorted=False"),
    case("FusedBatchNormV3/training", lambda x: tf.raw_ops.FusedBatchNormV3(
        x=x, scale=tf.ones(3), offset=tf.zeros(3), mean=tf.zeros(0), variance=tf.zeros(0), is_training=True)[0],
        [f32(1, 2, 2, 3)], "training-mode"),
    case("AvgPool/float64", lambda x: tf.cast(tf.nn.avg_pool2d(tf.cast(x, tf.float64), 2, 2, "VALID"), tf.float32),
         [f32(1, 4, 4, 1)], "TensorRT has no float64"),
    case("Add/float64", lambda x: tf.cast(tf.cast(x, tf.float64) * 2.0, tf.float32), [f32(2, 2)],
         "TensorRT has no float64"),
]


@pytest.mark.parametrize("c", [c.param() for c in RESTRICTED])
def test_restrictions_are_reported_before_any_layer(c, no_network):
    err = _parse_error(c)
    text = str(err) + " " + " ".join(e.message for e in err.errors)
    assert c.ops[0] in text, text
    assert not no_network


def test_float64_rejection_has_a_hint(no_network):
    err = _parse_error(RESTRICTED[-1])
    assert any("float32" in (e.hint or "") for e in err.errors)


def test_docs_ops_md_is_up_to_date():
    from converter.opdocs import DOC_PATH, render

    text = render()
    current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
    assert current == text, "docs/ops.md is stale: regenerate it with `python -m converter.opdocs`"


@pytest.mark.slow  # freezes every table case (~10 s); the full run checks it
def test_docs_ops_tested_json_is_up_to_date():
    """docs/ops_tested.json (the dtypes and case ids per op that docs/ops.md shows) matches the tables: every case
    frozen, its ops' dtypes read from the graph."""
    from .tested_matrix import DATA_PATH, REGENERATE, collect, dumps, sweep_tables

    text = dumps(collect(TABLES, sweep_tables()))
    current = DATA_PATH.read_text(encoding="utf-8") if DATA_PATH.exists() else ""
    assert current == text, (f"docs/ops_tested.json is stale (an op table changed): regenerate it and docs/ops.md "
                             f"with `{REGENERATE}`")


def test_docs_list_every_op_with_layers_and_a_count():
    import converter.ops  # noqa: F401
    from converter.opdocs import render
    from converter.registry import REGISTRY

    text = render()
    assert f"**{len(REGISTRY)} TensorFlow ops**" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    names = [row.split("`")[1] for row in rows]
    assert names == sorted(REGISTRY, key=lambda n: (n.lower(), n))
    conv = next(row for row in rows if row.startswith("| `Conv2D`"))
    assert "Convolution" in conv and "constant filter" in conv
    # the tested dtypes and the link to the op's tested variants, which list its case ids grouped by dtype
    assert "float32" in conv.split(" | ")[1] and "](#conv2d)" in conv
    assert [line[4:] for line in text.splitlines() if line.startswith("### ")] == names
    conv_variants = text.split("\n### Conv2D\n")[1].split("\n### ")[0]
    assert "- float32: " in conv_variants and "`dilated`" in conv_variants
    cast = next(row for row in rows if row.startswith("| `Cast`"))
    assert "float32→int32" in cast and "bool→float32" in cast


def test_opdocs_main_check_mode(tmp_path):
    from converter.opdocs import main

    out = tmp_path / "ops.md"
    assert main(["--check", "--output", str(out)]) == 1
    assert main(["--output", str(out)]) == 0
    assert main(["--check", "--output", str(out)]) == 0


def test_registering_an_op_twice_fails():
    import converter.ops  # noqa: F401
    from converter.registry import DuplicateConverterError, tf_op

    with pytest.raises(DuplicateConverterError):
        tf_op("Conv2D")(lambda ctx, node, inputs: None)
