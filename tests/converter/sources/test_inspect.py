"""``tf2trt inspect``: a model's interface and ops without provoking an error, through converter.cli_inspect."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from converter.cli_inspect import add_inspect_parser
from converter.errors import EXIT_BAD_INPUT, EXIT_OK


def run_inspect(capsys, *argv):
    """Run ``tf2trt inspect`` in-process; return (exit code, JSON object, rendered stderr/stdout text)."""
    parser = argparse.ArgumentParser(prog="tf2trt")
    add_inspect_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["inspect", *map(str, argv)])
    code = args.func(args)
    out, err = capsys.readouterr()
    payload = None
    if args.json:
        payload = json.loads(out.strip().splitlines()[-1],
                             parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    return code, payload, out + err


def test_keras_hub_model_with_unknown_dims(capsys, bert_file):
    code, info, _ = run_inspect(capsys, bert_file, "--json")
    assert code == EXIT_OK and info["error"] is None
    assert info["kind"] == "keras"
    assert [(i["name"], i["shape"], i["display"], i["dtype"]) for i in info["inputs"]] == [
        ("padding_mask", [None, None], "?x?", "int32"), ("segment_ids", [None, None], "?x?", "int32"),
        ("token_ids", [None, None], "?x?", "int32")]
    outputs = {o["name"]: o for o in info["outputs"]}
    assert outputs["sequence_output"]["display"] == "?x?x32" and outputs["pooled_output"]["display"] == "?x32"
    assert info["input_args"] == "--input padding_mask:1x16 --input segment_ids:1x16 --input token_ids:1x16"
    # the support check ran at 1 for every unknown dimension, and says so
    assert info["check_shapes"] == {"padding_mask": [1, 1], "segment_ids": [1, 1], "token_ids": [1, 1]}
    assert {"input": "token_ids", "axis": 1} in info["substituted"]
    assert any("use 1 for the unknown dimensions" in note for note in info["notes"])
    assert info["op_counts"]["Placeholder"] == 3 and info["op_counts"]["Softmax"] == 2
    assert info["unsupported"] == {}


def test_rendered_tables_show_unknown_dims(capsys, bert_file):
    code, _, text = run_inspect(capsys, bert_file, "--input", "token_ids:1x8", "--input", "segment_ids:1x8",
                                "--input", "padding_mask:1x8")
    assert code == EXIT_OK
    assert "token_ids" in text and "?x?" in text and "int32" in text
    assert "convert with: --input padding_mask:1x8 --input segment_ids:1x8 --input token_ids:1x8" in text
    assert "every op is supported" in text
    assert "\x1b[" not in text  # captured output is not a terminal: no colour codes


def test_saved_model_signatures(capsys, tmp_path):
    import tensorflow as tf

    class Two(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([2, 3], tf.float32, name="x")])
        def double(self, x):
            return {"y": x * 2.0}

        @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.int32, name="ids")])
        def count(self, ids):
            return {"n": tf.reduce_sum(ids, axis=1), "hot": tf.cast(ids > 2, tf.float32)}

    module = Two()
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"serving_default": module.double,
                                                                  "count": module.count})
    code, info, _ = run_inspect(capsys, tmp_path / "sm", "--json")
    assert code == EXIT_OK
    assert info["signature"] == "serving_default" and sorted(info["signatures"]) == ["count", "serving_default"]
    assert info["signatures"]["count"]["inputs"] == [{"name": "ids", "shape": [None, 5], "display": "?x5",
                                                      "dtype": "int32"}]
    assert [o["name"] for o in info["signatures"]["count"]["outputs"]] == ["hot", "n"]
    assert info["inputs"][0]["display"] == "2x3" and info["substituted"] == []
    code, info, text = run_inspect(capsys, tmp_path / "sm", "--signature", "count", "--json")
    assert code == EXIT_OK and info["signature"] == "count"
    assert info["input_args"] == "--input ids:1x5" and info["substituted"] == [{"input": "ids", "axis": 0}]
    assert "count *" in text  # the signatures table marks the one detailed


def test_frozen_pb_lists_unsupported_ops_optional_and_unread_placeholders(capsys, tmp_path):
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [3, 3], name="x")
        tf.compat.v1.placeholder(tf.float32, [None, 7], name="unused")
        gain = tf.compat.v1.placeholder_with_default(np.float32(1.0), [], name="gain")
        tf.identity(tf.linalg.det(x) * gain + tf.reduce_sum(tf.math.special.bessel_j0(x)), name="y")
    (tmp_path / "g.pb").write_bytes(graph.as_graph_def().SerializeToString())
    code, info, text = run_inspect(capsys, tmp_path / "g.pb", "--json")
    assert code == EXIT_OK  # inspecting is not converting: unsupported ops are reported, not an error
    assert [i["name"] for i in info["inputs"]] == ["x"]
    assert [i["name"] for i in info["optional_inputs"]] == ["gain"]
    assert info["unused_placeholders"] == ["unused"]
    assert info["outputs"][0]["name"] == "y" and info["outputs"][0]["frozen_shape"] == []
    assert info["unsupported"] == {"MatrixDeterminant": 1, "BesselJ0": 1}
    assert "not supported by tf2trt" in text and "MatrixDeterminant" in text


@pytest.mark.parametrize("case", ["missing", "bad_shape", "unknown_name"])
def test_errors_exit_2_with_json(capsys, tmp_path, case):
    import keras

    if case == "missing":
        argv = [tmp_path / "nope.keras"]
    else:
        keras.utils.set_random_seed(0)
        inp = keras.Input((4,), name="feat")
        keras.Model(inp, keras.layers.Dense(2)(inp)).save(tmp_path / "m.keras")
        argv = [tmp_path / "m.keras", "--input", "feat:1x5" if case == "bad_shape" else "nope:1x4"]
    code, info, text = run_inspect(capsys, *argv, "--json")
    assert code == EXIT_BAD_INPUT
    assert info["error"] and "hint" in info["error"]
    assert "Traceback" not in text
    if case == "bad_shape":
        assert "input 'feat': the model's shape is ?x4, the given shape 1x5 differs in dimension 1" in info["error"]


def test_model_that_cannot_take_the_substituted_size_still_shows_its_interface(capsys, tmp_path):
    """A reshape into pairs needs an even length: at the substituted 1 freezing fails, inspecting does not."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 3), name="frames")
    model = keras.Model(inp, keras.layers.Reshape((-1, 2), name="pairs")(inp))
    model.save(tmp_path / "pairs.keras")
    code, info, _ = run_inspect(capsys, tmp_path / "pairs.keras", "--json")
    assert code == EXIT_OK
    assert info["inputs"][0]["display"] == "?x?x3" and info["op_counts"] is None
    assert info["freeze_error"]
    code, info, _ = run_inspect(capsys, tmp_path / "pairs.keras", "--input", "frames:1x4x3", "--json")
    assert code == EXIT_OK and info["freeze_error"] is None and info["unsupported"] == {}
