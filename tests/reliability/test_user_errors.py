"""User errors: shapes, damaged or mislabelled model files, graphs TensorFlow refuses — exit 2 with a fix.

Each probe runs ``tf2trt convert … --json`` in this process (TensorFlow is
imported once) or loads a pipeline config, and checks the exit code, that no
engine was written and nothing was built, and that the message says what
happened (not a misleading guess) without terminal colour codes.  The
``before`` column is what the same command printed on the code before this
change (run by hand against it).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

ANSI = "\x1b["


def convert(capsys, *args) -> tuple[int, dict, str]:
    """``tf2trt convert … --json`` in this process: exit code, the JSON object, everything printed."""
    from converter.cli_convert import main

    code = main(["convert", *map(str, args), "--json"])
    captured = capsys.readouterr()
    payload = json.loads(captured.out.strip().splitlines()[-1])
    return code, payload, captured.out + captured.err


def assert_bad_input(code, out, printed, engine: Path, *needles, absent=()):
    assert code == 2, out
    assert out["engine"] is None and not engine.exists()
    assert ANSI not in printed and "Traceback" not in printed
    assert "(hint: " in out["error"], out["error"]
    for needle in needles:
        assert needle in out["error"], out["error"]
    for needle in absent:
        assert needle not in out["error"], out["error"]


def _save_graph(path: Path, build) -> Path:
    import tensorflow as tf

    g = tf.Graph()
    with g.as_default():
        build(tf)
    path.write_bytes(g.as_graph_def().SerializeToString())
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Small models for the probes, made once."""
    import keras
    import tensorflow as tf

    sys.path.insert(0, str(REPO))
    from tests.converter.models import small_cnn

    d = tmp_path_factory.mktemp("user-errors")
    out = {"cnn": d / "cnn.keras"}
    small_cnn().save(out["cnn"])
    # a graph that accepts any image size: nothing in the model bounds the shapes asked for
    out["agnostic"] = _save_graph(d / "agnostic.pb", lambda tf: tf.identity(
        tf.nn.relu(tf.compat.v1.placeholder(tf.float32, [None, None, None, 3], name="x")) * 2.0, name="y"))
    out["any_rank"] = _save_graph(d / "any_rank.pb", lambda tf: tf.identity(
        tf.compat.v1.placeholder(tf.float32, None, name="x") * 2.0, name="y"))
    # a Keras model whose layers fix a dimension its input leaves unknown
    seq = keras.Input((None, 3), name="seq")
    keras.Model(seq, keras.layers.Dense(2)(keras.layers.Reshape((4, 3))(seq))).save(d / "reshape.keras")
    out["reshape"] = d / "reshape.keras"

    def nan_consts(tf):
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        c = tf.constant(np.array([[np.nan, np.inf, -np.inf, 1.0]], np.float32))
        w = tf.constant(np.full((4, 4), np.nan, np.float32))
        gate = tf.cast(x > tf.constant([np.nan, np.inf, 0.0, -np.inf]), tf.float32)
        tf.identity(tf.matmul(x + c, w) + gate, name="y")

    out["nan"] = _save_graph(d / "nan.pb", nan_consts)

    # a SavedModel with a variable, then a copy without its variables/ directory
    class M(tf.Module):
        def __init__(self):
            self.v = tf.Variable(tf.ones((4,)))

        @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
        def __call__(self, x):
            return {"y": x * self.v}

    import shutil

    tf.saved_model.save(M(), str(d / "sm"))
    shutil.copytree(d / "sm", d / "sm_no_variables")
    shutil.rmtree(d / "sm_no_variables" / "variables")
    out["sm_no_variables"] = d / "sm_no_variables"
    return out


# ----------------------------------------------------------------------------- shapes


@pytest.mark.parametrize("model,args,needle", [
    ("cnn", ["--input", "image:0x16x16x3"], "dimension 0 is 0"),
    ("agnostic", ["--input", "x:1x0x4x3"], "dimension 1 is 0"),
    ("agnostic", ["--profile", "x:1x1x1x3,1x4x4x3,1x0x8x3"], "every dimension must be at least 1"),
], ids=["keras-batch", "pb-spatial", "profile-max"])
def test_a_zero_dimension_is_refused(models, tmp_path, capsys, probe, model, args, needle):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models[model], "--engine", engine, *args)
    assert_bad_input(code, out, printed, engine, needle)
    assert out["timings"]["freeze"] == 0.0  # refused before anything was traced
    probe("user errors", f"`tf2trt convert {models[model].name} {' '.join(args)}` (a zero dimension)",
          f"exit 2, no engine: `{out['error']}`",
          before="exit 0: an engine with a zero-sized input was written" if "--input" in args else
          "exit 2 (profiles already required dims ≥ 1)")


@pytest.mark.parametrize("args", [["--input", "image:99999999999999999999x16x16x3"],
                                  ["--profile", "image:1x16x16x3,1x16x16x3,99999999999999999999x16x16x3"]],
                         ids=["input", "profile-max"])
def test_an_absurd_dimension_is_a_user_error(models, tmp_path, capsys, probe, args):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models["cnn"], "--engine", engine, *args)
    assert_bad_input(code, out, printed, engine, "99999999999999999999", "largest supported dimension",
                     absent=("internal error",))
    probe("user errors", f"`tf2trt convert cnn.keras {' '.join(args)}`", f"exit 2, no engine: `{out['error']}`",
          before="exit 3: `internal error: ValueError: Value out of range: 99999999999999999999`")


def test_a_rank_over_tensorrts_limit_is_refused(models, tmp_path, capsys, probe):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models["any_rank"], "--engine", engine, "--input", "x:" + "x".join(["1"] * 9))
    assert_bad_input(code, out, printed, engine, "rank 9", "limit of 8")
    probe("user errors", "`--input x:1x1x1x1x1x1x1x1x1` (rank 9) on a placeholder of unknown rank",
          f"exit 2, no engine: `{out['error']}`", before="not probed before")


@pytest.mark.parametrize("args,what", [
    (["--input", "x:1x100000x100000x3"], "the inputs take 112 GiB"),
    (["--profile", "x:1x8x8x3,1x64x64x3,1x100000x100000x3"], "the inputs at the profile's max take 112 GiB"),
], ids=["static", "profile-max"])
def test_a_huge_shape_on_a_shape_agnostic_graph_fails_before_freezing(models, tmp_path, capsys, probe, args, what):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models["agnostic"], "--engine", engine, "--verify", *args)
    assert_bad_input(code, out, printed, engine, what, "over the limit of 4 GiB", "--max-input-size",
                     "TF2TRT_MAX_INPUT_BYTES")
    assert all(t == 0.0 for t in out["timings"].values()), out["timings"]  # no stage ran
    probe("user errors", f"`tf2trt convert agnostic.pb --verify {' '.join(args)}` (a graph that takes any size)",
          f"exit 2 before freezing (every stage timing 0): `{out['error']}`",
          before="freeze, parse, construct and optimize ran; verification died with `MemoryError: 224 GiB` "
                 "(in the pipeline: four stages built and cached first)" if "--input" in args else
          "built an engine whose profile admits 112 GiB inputs")


def test_the_input_size_limit_is_configurable(models, tmp_path, capsys, monkeypatch, probe):
    engine = tmp_path / "m.plan"
    # 1x16x16x3 float32 is 3 KiB: over a 1 KiB limit given on the command line, then in the environment
    code, out, printed = convert(capsys, models["agnostic"], "--engine", engine, "--input", "x:1x16x16x3",
                                 "--max-input-size", "1KiB")
    assert_bad_input(code, out, printed, engine, "3 KiB", "limit of 1 KiB")
    monkeypatch.setenv("TF2TRT_MAX_INPUT_BYTES", "1KiB")
    code, out, printed = convert(capsys, models["agnostic"], "--engine", engine, "--input", "x:1x16x16x3")
    assert_bad_input(code, out, printed, engine, "limit of 1 KiB")
    # the option wins over the environment
    code, out, _ = convert(capsys, models["agnostic"], "--engine", engine, "--input", "x:1x16x16x3",
                           "--max-input-size", "4KiB")
    assert code == 0 and engine.is_file(), out["error"]
    monkeypatch.setenv("TF2TRT_MAX_INPUT_BYTES", "lots")
    code, out, printed = convert(capsys, models["agnostic"], "--engine", tmp_path / "n.plan", "--input", "x:1x4x4x3")
    assert_bad_input(code, out, printed, tmp_path / "n.plan", "TF2TRT_MAX_INPUT_BYTES='lots'")
    probe("user errors", "1x16x16x3 (3 KiB) with `--max-input-size 1KiB`, with `TF2TRT_MAX_INPUT_BYTES=1KiB`, "
          "with both 4KiB/1KiB, with `TF2TRT_MAX_INPUT_BYTES=lots`",
          "exit 2, exit 2, built (the option wins), exit 2 naming the variable", before="(no limit)")


def test_the_api_checks_shapes_too(models, probe):
    from converter import freeze
    from converter.errors import FreezeError

    for shape, needle in [((0, 16, 16, 3), "is 0"), ((-1, 16, 16, 3), "negative"),
                          ((1, 100000, 100000, 3), "over the limit")]:
        with pytest.raises(FreezeError, match=needle) as info:
            freeze(models["agnostic"], inputs={"x": shape})
        assert info.value.exit_code == 2 and info.value.hint
    frozen = freeze(models["agnostic"], inputs={"x": (1, 64, 64, 3)}, max_input_bytes=64 * 64 * 3 * 4)
    assert frozen.inputs[0].shape == (1, 64, 64, 3)
    probe("user errors", "`converter.freeze(…, inputs={'x': shape})` with a 0, a -1 and a 112 GiB shape; then "
          "exactly at `max_input_bytes`", "FreezeError (exit 2) each time; the shape at the limit freezes",
          before="0 and 112 GiB accepted; -1 an internal error (`traced with unknown dimensions`)")


def test_pipeline_configs_with_impossible_shapes_fail_when_loaded(tmp_path, probe, monkeypatch):
    from pipeline.config import ConfigError, load_config

    (tmp_path / "m.pb").write_bytes(b"x")
    cfg = tmp_path / "big.yaml"
    cfg.write_text("model:\n  path: m.pb\ninputs:\n  - name: x\n    shape: [1, 100000, 100000, 3]\n"
                   "  - name: t\n    dtype: int32\n    profiles:\n"
                   "      - {min: [1, 4], opt: [1, 4], max: [99999999999999999999, 4]}\noutput: m.engine\n")
    with pytest.raises(ConfigError) as info:
        load_config(cfg)
    text = str(info.value)
    assert "profiles[0].max" in text and "largest supported dimension" in text
    assert "112 GiB" in text and "TF2TRT_MAX_INPUT_BYTES" in text
    # every input fine, but together over the limit of the environment
    cfg.write_text("model:\n  path: m.pb\ninputs:\n  - name: x\n    shape: [1, 256]\n"
                   "  - name: t\n    dtype: int32\n    profiles:\n      - {min: [1, 4], opt: [1, 4], max: [8, 64]}\n"
                   "output: m.engine\n")
    assert load_config(cfg).spec.inputs[1].profiles[0].max == [8, 64]
    monkeypatch.setenv("TF2TRT_MAX_INPUT_BYTES", "2KiB")  # 1 KiB + 2 KiB at the profile's max
    with pytest.raises(ConfigError, match="the inputs at the profiles' max take 3 KiB"):
        load_config(cfg)
    probe("user errors", "a build config with `shape: [1, 100000, 100000, 3]` and a profile max of "
          "99999999999999999999; then inputs that fit alone but not together under TF2TRT_MAX_INPUT_BYTES=2KiB",
          "config error when the config is loaded (before any stage runs or anything is cached), one issue per "
          "problem with its fix", before="accepted: freeze, parse, construct, optimize built and cached, then "
          "verify died with MemoryError (the huge dim: exit 3 in freeze)")


# ----------------------------------------------------------------------------- shapes the model refuses


def test_wrong_rank_or_shape_on_a_keras_file(models, tmp_path, capsys, probe):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models["cnn"], "--engine", engine, "--input", "image:1x16x16")
    assert_bad_input(code, out, printed, engine, "rank 3")
    code2, out2, printed2 = convert(capsys, models["reshape"], "--engine", engine, "--input", "seq:1x5x3")
    assert_bad_input(code2, out2, printed2, engine, "does not accept the input shapes seq 1x5x3",
                     "The total size of the tensor must be unchanged", absent=("internal error", "Arguments received"))
    probe("user errors", "`.keras` given a shape of the wrong rank, and a shape its Reshape layer refuses "
          "(`--input seq:1x5x3`, the model reshapes to 4x3)", f"exit 2, no ANSI codes: `{out2['error']}`",
          before="exit 3 with Keras's multi-line `Exception encountered when calling Reshape.call()` dump "
                 "(ANSI-coloured in a terminal)")


def test_nan_and_inf_constants_verify(models, tmp_path, capsys, probe):
    engine = tmp_path / "m.plan"
    code, out, _ = convert(capsys, models["nan"], "--engine", engine, "--verify", "--check-intermediates")
    assert code == 0, out["error"]
    v = out["verification"]
    assert v["passed"] is True and v["outputs"][0]["nonfinite_matched"] > 0
    probe("user errors", "a .pb with NaN/±inf constants (an added vector, an all-NaN MatMul weight, comparisons "
          "with NaN/inf) with --verify --check-intermediates",
          f"exit 0: NaN/inf compared by position ({v['outputs'][0]['nonfinite_matched']} matched), strict JSON",
          before="`TypeError` exit 3 in the issue's report; already held when this probe was written")


# ----------------------------------------------------------------------------- misleading messages


def test_a_pb_over_the_protobuf_limit_names_it(tmp_path, capsys, probe):
    big = tmp_path / "big.pb"
    with open(big, "wb") as fh:  # sparse: 2 GiB of apparent size, no disk used
        fh.truncate(2**31 + 10)
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, big, "--engine", engine)
    assert_bad_input(code, out, printed, engine, "protobuf", "2 GiB", absent=("wire format",))
    probe("user errors", "a 2 GiB (+10 bytes) .pb", f"exit 2 before reading it: `{out['error']}`",
          before="`Error parsing message … wire format was corrupt` (after reading 2 GiB into memory)")


@pytest.mark.parametrize("name,content,needle", [
    ("notes.keras", b"hello, not a model", "a .keras file is a zip archive"),
    ("empty.keras", b"", "is empty"),
    ("legacy.keras", b"\x89HDF\r\n\x1a\n" + b"\0" * 64, "HDF5 (legacy .h5) Keras file named .keras"),
    ("weights.h5", b"PK\x05\x06" + b"\0" * 18, "Keras 3 (.keras zip) file named .h5"),
], ids=["text", "empty", "hdf5-as-keras", "zip-as-h5"])
def test_a_keras_file_that_exists_but_is_not_one(tmp_path, capsys, probe, name, content, needle):
    model = tmp_path / name
    model.write_bytes(content)
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, model, "--engine", engine)
    assert_bad_input(code, out, printed, engine, needle, absent=("File not found", "not found"))
    probe("user errors", f"`{name}` that exists but holds {content[:8]!r}…", f"exit 2: `{out['error']}`",
          before="`keras: ValueError: File not found: filepath=….keras` (the file exists)" if name.endswith(".keras")
          else "`Unable to synchronously open file (file signature not found)`")


def test_a_saved_model_missing_its_variables(models, tmp_path, capsys, probe):
    engine = tmp_path / "m.plan"
    code, out, printed = convert(capsys, models["sm_no_variables"], "--engine", engine)
    assert_bad_input(code, out, printed, engine, "missing its variables", "variables/",
                     absent=("check the TensorFlow version",))
    probe("user errors", "a SavedModel directory copied without `variables/`", f"exit 2: `{out['error']}`",
          before="`Unsuccessful TensorSliceReader constructor …` with the hint `check the TensorFlow version`")


def _edited_graphs(tmp_path: Path) -> dict[str, Path]:
    """GraphDefs that do not import: a shape mismatch, and tf.cond's Switch/Merge nodes that lost inputs."""
    import tensorflow as tf

    out = {}
    g = tf.Graph()
    with g.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [1, 4], name="x")
        tf.identity(x + tf.constant(np.ones((1, 4), np.float32)), name="y")
    gd = g.as_graph_def()
    for n in gd.node:
        if n.op == "Const":
            n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.ones((3, 5), np.float32)))
    (tmp_path / "mismatch.pb").write_bytes(gd.SerializeToString())
    out["shape mismatch"] = tmp_path / "mismatch.pb"

    from tensorflow.core.framework import graph_pb2  # v1 control flow: Switch/Merge nodes in the GraphDef

    gd = graph_pb2.GraphDef()
    for name, op, inputs, attrs in [
            ("x", "Placeholder", [], {"dtype": tf.float32, "shape": [1, 4]}),
            ("p", "Placeholder", [], {"dtype": tf.bool, "shape": []}),
            ("sw", "Switch", ["x", "p"], {"T": tf.float32}),
            ("m", "Merge", ["sw", "sw:1"], {"T": tf.float32, "N": 2}),
            ("y", "Identity", ["m"], {"T": tf.float32})]:
        node = gd.node.add(name=name, op=op, input=inputs)
        for key, value in attrs.items():
            if key == "shape":
                node.attr[key].shape.CopyFrom(tf.TensorShape(value).as_proto())
            elif key == "N":
                node.attr[key].i = value
            else:
                node.attr[key].type = value.as_datatype_enum
    merge = next(n for n in gd.node if n.name == "m")
    del merge.input[:]  # the Merge lost both inputs (a pruned or hand-edited graph)
    (tmp_path / "merge.pb").write_bytes(gd.SerializeToString())
    out["a Merge that lost its inputs"] = tmp_path / "merge.pb"
    return out


def test_graphs_that_do_not_import_say_why(tmp_path, capsys, probe):
    graphs = _edited_graphs(tmp_path)
    engine = tmp_path / "m.plan"
    seen = {}
    for what, needle in [("shape mismatch", "shapes disagree"), ("a Merge that lost its inputs", "malformed")]:
        code, out, printed = convert(capsys, graphs[what], "--engine", engine)
        assert_bad_input(code, out, printed, engine, needle, absent=("ops this TensorFlow build lacks",))
        seen[what] = out["error"].split("(hint: ", 1)[1].rstrip(")")
    probe("user errors", "a .pb whose Add mixes 1x4 and 3x5; a .pb whose Merge node lost its inputs",
          f"exit 2; hints: `{seen['shape mismatch']}`; `{seen['a Merge that lost its inputs']}`",
          before="both: the hint `the model may use ops this TensorFlow build lacks`")


def test_an_op_missing_from_tensorflow_still_says_so():
    from converter.freeze import import_failure_hint

    hint = import_failure_hint(Exception("Op type not registered 'FancyOp' in binary running on vm."))
    assert "FancyOp" in hint and "not registered" in hint
