"""Verification inputs that fit the model (issue 8).

Random integers 0–9 fed to every integer input make TensorFlow's Gather raise
on a 2-row segment embedding; the inputs are now derived from the graph
(gather/embedding table sizes, one-hot depths, segment counts, casts to bool,
comparisons with constants), explicit ranges/values override them, and a
TensorFlow error on the inputs is a :class:`VerificationError` (exit 2) that
names the inputs involved and how they were made.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from converter.construct import construct
from converter.errors import EXIT_BAD_INPUT, VerificationError, classify
from converter.freeze import freeze
from converter.graph import parse
from converter.verify import (ReferenceFailed, check_input_options, derive_input_domains, make_inputs,
                              padding_mask, parse_input_range, parse_input_value, plan_inputs, reference_failure,
                              verify)

from .text_models import SEQ, embedding_classifier, export_bert


@pytest.fixture(scope="module")
def embedding():
    frozen = freeze(embedding_classifier())
    return frozen, construct(parse(frozen)).snapshot


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    path = tmp_path_factory.mktemp("bert") / "saved_model"
    shapes = export_bert(path)
    frozen = freeze(path, inputs=shapes)
    return frozen, construct(parse(frozen)).snapshot


def _plans(frozen, **kw) -> dict:
    return {p.name: p for p in plan_inputs(frozen, **kw)}


# ------------------------------------------------------------------ real models

def test_embedding_model_is_fed_ids_its_tables_hold(embedding):
    frozen, snap = embedding
    plans = _plans(frozen)
    assert (plans["token_ids"].kind, plans["token_ids"].low, plans["token_ids"].high) == ("integers", 0, 50)
    assert (plans["segment_ids"].kind, plans["segment_ids"].low, plans["segment_ids"].high) == ("integers", 0, 2)
    assert "segment_embedding" in plans["segment_ids"].reason and plans["segment_ids"].source == "graph"
    assert plans["padding_mask"].kind == "mask"
    for feeds in make_inputs(frozen, samples=4):
        assert feeds["segment_ids"].min() >= 0 and feeds["segment_ids"].max() < 2
        assert feeds["token_ids"].min() >= 0 and feeds["token_ids"].max() < 50
        mask = feeds["padding_mask"]
        assert mask.dtype == np.bool_ and mask.all(axis=-1).shape == (1,) and mask.sum() >= SEQ // 2
    # the old inputs (integers 0-9) made TensorFlow's GatherV2 raise on the 2-row segment table
    report = verify(frozen, snap, samples=3)
    assert report.passed, report.render()
    described = {i["name"]: i for i in report.to_dict()["inputs"]}
    assert (described["segment_ids"]["low"], described["segment_ids"]["high"]) == (0, 2)
    assert "random integers in [0, 2)" in report.render()


def test_keras_hub_bert_verifies(bert):
    frozen, snap = bert
    plans = _plans(frozen)
    assert (plans["segment_ids"].low, plans["segment_ids"].high) == (0, 2)
    assert (plans["token_ids"].low, plans["token_ids"].high) == (0, 100)
    # keras-hub's padding_mask is int32, cast to bool inside: fed as a mask of 1s then 0s
    assert plans["padding_mask"].kind == "mask" and plans["padding_mask"].dtype == "int32"
    mask = make_inputs(frozen)[0]["padding_mask"]
    assert set(np.unique(mask)) <= {0, 1} and mask[..., 0].all()
    report = verify(frozen, snap, samples=2)
    assert report.passed, report.render()


def test_explicit_ranges_and_values_override_the_graph(embedding):
    frozen, snap = embedding
    feeds = make_inputs(frozen, samples=3, input_ranges={"token_ids": (3, 5)}, input_values={"padding_mask": True})
    for f in feeds:
        assert set(np.unique(f["token_ids"])) <= {3, 4} and f["padding_mask"].all()
        assert f["segment_ids"].max() < 2  # still derived
    report = verify(frozen, snap, input_ranges={"token_ids": (3, 5)}, input_values={"padding_mask": 1})
    assert report.passed
    by_name = {i["name"]: i for i in report.to_dict()["inputs"]}
    assert by_name["token_ids"]["source"] == "given" and by_name["token_ids"]["high"] == 5
    assert by_name["padding_mask"]["kind"] == "fixed" and by_name["padding_mask"]["value"] is True
    # floats are allowed: an integer input takes the integers in [LOW, HIGH)
    assert set(np.unique(make_inputs(frozen, input_ranges={"token_ids": (0.5, 2.5)})[0]["token_ids"])) <= {1, 2}


def test_inputs_the_model_rejects_are_a_verification_error(embedding):
    frozen, snap = embedding
    with pytest.raises(ReferenceFailed) as info:
        verify(frozen, snap, input_ranges={"segment_ids": (0, 5)})
    err = info.value
    assert classify(err)[0] == EXIT_BAD_INPUT and isinstance(err, VerificationError)
    assert "segment_embedding" in err.node and err.op == "GatherV2"
    assert "segment_ids" in err.message and "[0, 5)" in err.message and "not in [0, 2)" in err.message
    assert "token_ids" not in err.message  # the failing gather does not read it
    assert "--input-range" in err.hint and "--inputs-npz" in err.hint
    assert [i["name"] for i in err.inputs] == ["segment_ids"]


def test_npz_values_the_model_rejects_are_a_verification_error(embedding, tmp_path):
    frozen, snap = embedding
    np.savez(tmp_path / "bad.npz", token_ids=np.zeros((1, SEQ), np.int32), segment_ids=np.full((1, SEQ), 7, np.int32),
             padding_mask=np.ones((1, SEQ), bool))
    # before: TensorFlow's InvalidArgumentError escaped as an internal error (exit 3)
    with pytest.raises(ReferenceFailed) as info:
        verify(frozen, snap, inputs_npz=str(tmp_path / "bad.npz"))
    assert classify(info.value)[0] == EXIT_BAD_INPUT
    assert "given inputs" in info.value.message and "segment_ids" in info.value.message
    assert "npz" in info.value.hint


def test_missing_kernels_are_not_blamed_on_inputs(embedding):
    """A kernel TensorFlow lacks (not a value it rejects) is named as such, still exit 2."""
    frozen, _ = embedding
    plans = plan_inputs(frozen)
    node = next(n.name for n in frozen.graph_def.node if n.op == "GatherV2" and "segment" in n.name)
    exc = tf.errors.UnimplementedError(None, None, f"Graph execution error:\n\nNode: '{node}'\nThe GatherV2 op "
                                                   f"currently only supports the NHWC tensor format on the CPU.\n"
                                                   f"\t [[{{{{node {node}}}}}]]")
    err = reference_failure(exc, frozen, plans)
    assert classify(err)[0] == EXIT_BAD_INPUT and err.node == node and err.op == "GatherV2"
    assert "cannot run GatherV2 node" in err.message and "only supports the NHWC" in err.message
    assert "--input-range" not in err.hint and "without --verify" in err.hint
    err = reference_failure(tf.errors.InvalidArgumentError(None, None, f"Node: '{node}'\nindices[0,0] = 3 is not "
                                                                       f"in [0, 2)\n\t [[{{{{node {node}}}}}]]"),
                            frozen, plans)
    assert "rejects the generated inputs (indices[0,0] = 3 is not in [0, 2))" in err.message
    assert "--input-range" in err.hint


# ------------------------------------------------------------------ what the graph says

def _frozen(fn, *specs):
    return freeze(tf.function(fn, input_signature=list(specs), autograph=False))


def _spec(name, shape=(2, 4), dtype=tf.int32):
    return tf.TensorSpec(shape, dtype, name=name)


TABLE = tf.constant(np.arange(21, dtype=np.float32).reshape(7, 3))


@pytest.mark.parametrize("fn, high, why", [
    (lambda x: tf.gather(TABLE, tf.reshape(tf.cast(x, tf.int64), [-1])), 7, "GatherV2"),
    (lambda x: tf.gather(TABLE, tf.transpose(x), axis=1), 3, "along axis 1"),
    (lambda x: tf.gather(TABLE, tf.concat([x, x], 0)[:, 1:]), 7, "GatherV2"),
    (lambda x: tf.gather_nd(TABLE, tf.reshape(x, [4, 2])), 3, "GatherNd"),
    (lambda x: tf.one_hot(x, 6), 6, "OneHot"),
    (lambda x: tf.math.unsorted_segment_sum(tf.ones([2, 4]), x, 5), 5, "5 segments"),
    (lambda x: tf.gather(TABLE, tf.maximum(x, 0)), 7, "GatherV2"),  # max(x, 0) still indexes 7 rows
], ids=["cast_reshape", "axis1", "concat_slice", "gather_nd", "one_hot", "segments", "maximum"])
def test_index_bounds(fn, high, why):
    frozen = _frozen(fn, _spec("x"))
    dom = derive_input_domains(frozen)["x"]
    assert dom.high == high and why in dom.bound_reason
    plan = plan_inputs(frozen)[0]
    assert (plan.kind, plan.low, plan.high) == ("integers", 0, high)


def test_what_stops_a_bound():
    # x + 1 or min(x, 6) indexing the table says nothing simple about x: the default range stays
    for fn in (lambda x: tf.gather(TABLE, x + 1), lambda x: tf.gather(TABLE, tf.minimum(x, 6))):
        plan = plan_inputs(_frozen(fn, _spec("x")))[0]
        assert (plan.low, plan.high, plan.source) == (0, 10, "default")
    # gathered from (params), not gathering: no bound either
    plan = plan_inputs(_frozen(lambda x: tf.gather(x, [0, 1], axis=1), _spec("x")))[0]
    assert plan.high == 10


def test_masks_and_thresholds():
    frozen = _frozen(lambda m, n, f: (tf.where(tf.cast(m, tf.bool), 1.0, 0.0), tf.sequence_mask(n, 20),
                                       tf.where(tf.cast(f, tf.bool), 2.0, f)),
                     _spec("m"), _spec("n", (3,)), _spec("f", (2, 4), tf.float32))
    plans = _plans(frozen)
    assert plans["m"].kind == "mask" and "cast to bool" in plans["m"].reason
    assert plans["f"].kind == "mask"  # a float mask too
    # sequence lengths compared with range(20): lengths 0..20 so every position is both masked and not
    assert (plans["n"].low, plans["n"].high) == (0, 21) and "compared with constants" in plans["n"].reason
    # bool inputs are padding masks: mostly True, never an all-False row
    frozen = _frozen(lambda b: tf.where(b, 1.0, 0.0), _spec("b", (64, 5), tf.bool))
    mask = make_inputs(frozen)[0]["b"]
    assert mask.any(axis=-1).all() and mask.mean() > 0.6 and not mask.all()
    assert mask[:, 0].all() and (np.diff(mask.astype(int), axis=-1) <= 0).all()  # True then False, per row


def test_padding_mask_shapes():
    rng = np.random.default_rng(0)
    assert padding_mask(rng, ()).shape == () and padding_mask(rng, ()).item() is True
    assert padding_mask(rng, (1,)).all() and padding_mask(rng, (2, 3, 4)).shape == (2, 3, 4)


def test_input_options_are_checked():
    frozen = _frozen(lambda x, y: tf.gather(TABLE, x) + y, _spec("x"), _spec("y", (2, 4, 3), tf.float32))
    with pytest.raises(VerificationError, match=r"\['nope'\].*its inputs are \['x', 'y'\]"):
        check_input_options(frozen, {"nope": (0, 1)})
    with pytest.raises(VerificationError, match="both a range and a value"):
        check_input_options(frozen, {"x": (0, 2)}, {"x": 1})
    with pytest.raises(VerificationError, match="holds no integer"):
        check_input_options(frozen, {"x": (0.2, 0.7)})
    with pytest.raises(VerificationError, match="finite LOW < HIGH"):
        check_input_options(frozen, {"y": (1.0, 1.0)})
    with pytest.raises(VerificationError, match="both given"):
        check_input_options(frozen, {"x": (0, 2)}, npz="in.npz")
    with pytest.raises(VerificationError, match="does not fit"):
        check_input_options(frozen, input_values={"y": np.zeros(5)})
    unsigned = _frozen(lambda u: tf.cast(u, tf.float32) * 2.0, _spec("u", (2, 4), tf.uint8))
    with pytest.raises(VerificationError, match="does not fit its dtype uint8"):
        check_input_options(unsigned, {"u": (-1, 3)})
    feeds = make_inputs(frozen, input_ranges={"y": (-0.5, 0.5)})[0]
    assert feeds["y"].dtype == np.float32 and -0.5 <= feeds["y"].min() and feeds["y"].max() < 0.5


def test_cli_option_syntax():
    assert parse_input_range("segment_ids:0:2") == ("segment_ids", (0, 2))
    assert parse_input_range("x:-1.5:1e-1") == ("x", (-1.5, 0.1))
    assert parse_input_value("padding_mask:1") == ("padding_mask", 1)
    assert parse_input_value("flag:true") == ("flag", True)
    for bad in ("segment_ids:0", "segment_ids:a:2", ":0:2"):
        with pytest.raises(VerificationError, match="bad --input-range"):
            parse_input_range(bad)
    with pytest.raises(VerificationError, match="bad --input-value"):
        parse_input_value("padding_mask:yes")
