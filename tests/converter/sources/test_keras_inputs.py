"""Keras models take their inputs in the structure they were built with: dicts, nested dicts, unsorted keys.

Issue 8: freezing called every multi-input model with a flat list; a Keras 3
functional model built on a dict refuses one, so every keras-hub text model
(``token_ids``, ``segment_ids``, ``padding_mask``: not in sorted order) was an
internal error.  Also: tf_keras ``Embedding`` in ``.h5`` (its ResourceGather
became a GatherV2 without ``Taxis``), and unknown dimensions reported one
input per run.
"""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import EXIT_BAD_INPUT, FreezeError, classify
from converter.freeze import freeze, parse_input_spec

from ._check import as_numpy, check_end_to_end


def _feeds(model_inputs: dict[str, tuple], seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in model_inputs.items()}


def test_dict_inputs_in_unsorted_order(tmp_path):
    """Keys in non-sorted order with different widths, so a mix-up cannot go unnoticed."""
    import keras

    keras.utils.set_random_seed(0)
    widths = {"zeta": 3, "alpha": 5, "mid": 2}
    tensors = {k: keras.Input((w,), name=k) for k, w in widths.items()}
    x = keras.layers.Concatenate()([keras.layers.Dense(4, name=f"d_{k}")(t) for k, t in tensors.items()])
    model = keras.Model(tensors, keras.layers.Dense(2, name="score")(x))
    model.save(tmp_path / "dict.keras")
    frozen = freeze(tmp_path / "dict.keras")
    assert {s.name: s.shape for s in frozen.inputs} == {k: (1, w) for k, w in widths.items()}
    feeds = _feeds({k: (1, w) for k, w in widths.items()})
    check_end_to_end(frozen, {"score": as_numpy(model(feeds))}, feeds, tmp_path)


def test_nested_dict_inputs_and_dict_outputs(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    image = keras.Input((4, 4, 2), name="image")
    meta = {"weight": keras.Input((3,), name="weight"), "age": keras.Input((1,), name="age")}
    feat = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(3, 3, padding="same")(image))
    joined = keras.layers.Concatenate()([feat, meta["weight"], meta["age"]])
    outputs = {"risk": keras.layers.Dense(1, activation="sigmoid")(joined), "embedding": keras.layers.Dense(4)(joined)}
    model = keras.Model({"image": image, "meta": meta}, outputs)
    frozen = freeze(model)
    assert sorted(frozen.outputs) == ["embedding", "risk"]
    feeds = _feeds({"image": (1, 4, 4, 2), "weight": (1, 3), "age": (1, 1)}, seed=1)
    result = model({"image": feeds["image"], "meta": {"weight": feeds["weight"], "age": feeds["age"]}})
    check_end_to_end(frozen, {k: as_numpy(v) for k, v in result.items()}, feeds, tmp_path)


def test_list_inputs_in_unsorted_order(tmp_path):
    import keras

    keras.utils.set_random_seed(2)
    b = keras.Input((3,), name="b_first")
    a = keras.Input((6,), name="a_second")
    model = keras.Model([b, a], keras.layers.Concatenate(name="cat")([keras.layers.Dense(2)(b), a]))
    frozen = freeze(model)
    assert [s.name for s in frozen.inputs] == ["b_first", "a_second"]
    feeds = _feeds({"b_first": (1, 3), "a_second": (1, 6)}, seed=2)
    check_end_to_end(frozen, {"cat": as_numpy(model([feeds["b_first"], feeds["a_second"]]))}, feeds, tmp_path)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_tf_keras_dict_inputs_h5(tmp_path):
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    tensors = {"zeta": tf_keras.Input((3,), name="zeta"), "alpha": tf_keras.Input((5,), name="alpha")}
    joined = tf_keras.layers.Concatenate()([tensors["zeta"], tf_keras.layers.Dense(2)(tensors["alpha"])])
    model = tf_keras.Model(tensors, tf_keras.layers.Dense(2, name="out")(joined))
    model.save(tmp_path / "dict.h5")
    frozen = freeze(tmp_path / "dict.h5")
    feeds = _feeds({"zeta": (1, 3), "alpha": (1, 5)}, seed=3)
    check_end_to_end(frozen, {frozen.outputs[0]: as_numpy(model(feeds))}, feeds, tmp_path)


@pytest.mark.filterwarnings("ignore:You are saving your model as an HDF5 file")
def test_tf_keras_embedding_h5(tmp_path):
    """tf_keras reads an Embedding with ResourceGather: frozen, it must be a complete GatherV2."""
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    ids = tf_keras.Input((6,), dtype="int32", name="ids")
    x = tf_keras.layers.Embedding(30, 8, name="emb")(ids)
    model = tf_keras.Model(ids, tf_keras.layers.Dense(3, name="out")(tf_keras.layers.GlobalAveragePooling1D()(x)))
    model.save(tmp_path / "emb.h5")
    frozen = freeze(tmp_path / "emb.h5")
    gathers = [n for n in frozen.graph_def.node if n.op == "GatherV2"]
    assert len(gathers) == 1 and set(gathers[0].attr) >= {"Taxis", "Tindices", "Tparams", "batch_dims"}
    feeds = {"ids": np.random.default_rng(4).integers(0, 30, (1, 6)).astype(np.int32)}
    check_end_to_end(frozen, {frozen.outputs[0]: as_numpy(model(feeds["ids"]))}, feeds, tmp_path)


def test_keras_hub_backbone_reports_every_unknown_dim_at_once(bert_file):
    with pytest.raises(FreezeError) as info:
        freeze(bert_file)
    code, message, hint = classify(info.value)
    assert code == EXIT_BAD_INPUT
    for name in ("token_ids", "segment_ids", "padding_mask"):
        assert f"input '{name}' (shape ?x?, int32) has an unknown dimension 1" in message
    assert "--input padding_mask:1x16 --input segment_ids:1x16 --input token_ids:1x16" in hint
    assert "1 stands for the unknown batch size" in hint
    # the list in the hint is ready to paste: each option parses and the model freezes with them
    options = hint.split(": ", 1)[1].split(" (in Python")[0].split()
    shapes = dict(parse_input_spec(spec) for flag, spec in zip(options[::2], options[1::2]) if flag == "--input")
    assert set(shapes) == {"token_ids", "segment_ids", "padding_mask"}
    frozen = freeze(bert_file, inputs=shapes)
    assert all(s.shape == (1, 16) for s in frozen.inputs)


def test_keras_hub_backbone_converts(bert_file, tmp_path):
    """Every op of the BERT backbone converts; values agree with keras-hub's own forward pass."""
    import keras

    model = keras.models.load_model(bert_file, compile=False)
    shapes = {"token_ids": (1, 16), "segment_ids": (1, 16), "padding_mask": (1, 16)}
    frozen = freeze(bert_file, inputs=shapes)
    assert sorted(frozen.outputs) == ["pooled_output", "sequence_output"]
    feeds = {"token_ids": np.random.default_rng(5).integers(0, 50, (1, 16)).astype(np.int32),
             "segment_ids": (np.arange(16) >= 9).astype(np.int32)[None],
             "padding_mask": (np.arange(16) < 13).astype(np.int32)[None]}
    reference = {k: as_numpy(v) for k, v in model(feeds).items()}
    check_end_to_end(frozen, reference, feeds, tmp_path)
