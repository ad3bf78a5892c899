"""Dynamic shapes: optimization profiles from the API, unknown dimensions kept as -1, shape tensors,
verification at every profile's min/opt/max — on real libraries' models (Keras 3 layers, keras-hub,
keras.applications), built offline with random weights and fixed seeds."""

from __future__ import annotations

import numpy as np
import pytest

from converter import construct, freeze
from converter.engine import optimize_network
from converter.errors import FeedError, FreezeError
from converter.freeze import open_model
from converter.graph import parse
from converter.profiles import (ShapeRange, dynamic_shape, in_profiles, parse_profile_arg, parse_verify_shape_arg,
                                profiles_from_args, shapes_to_check, verification_shape_problems)
from converter.reference import ReferenceExecutor
from converter.snapshot import Snapshot
from converter.verify import verify

from .models import small_cnn


# ------------------------------------------------------------------ the profile rules
def test_profile_arguments():
    name, rng = parse_profile_arg("token_ids:1x16,8x128,32x512")
    assert name == "token_ids" and rng == ShapeRange((1, 16), (8, 128), (32, 512))
    profiles = profiles_from_args(["a:1x4,2x4,8x4", "b:1,1,1", "a:8x4,16x4,32x4"])
    # naming an input again starts a further profile; an input with fewer ranges keeps its last one
    assert [p["a"].max for p in profiles] == [(8, 4), (32, 4)] and [p["b"].max for p in profiles] == [(1,), (1,)]
    assert dynamic_shape("a", profiles) == (-1, 4) and dynamic_shape("b", profiles) == (1,)
    assert shapes_to_check(profiles[:1]) == [{"a": (1, 4), "b": (1,)}, {"a": (2, 4), "b": (1,)},
                                             {"a": (8, 4), "b": (1,)}]
    assert in_profiles(profiles, {"a": (20, 4), "b": (1,)}) and not in_profiles(profiles, {"a": (40, 4), "b": (1,)})


@pytest.mark.parametrize("text, message", [
    ("x:1x4,2x4", "bad --profile"),
    ("x:4x4,2x4,8x4", "min ≤ opt ≤ max"),
    ("x:1x4,2x4,8x4x1", "differ in rank"),
    ("x:0x4,2x4,8x4", "at least 1"),
])
def test_bad_profile_arguments(text, message):
    with pytest.raises(FreezeError, match=message) as info:
        parse_profile_arg(text)
    assert info.value.exit_code == 2


@pytest.fixture(scope="module")
def cnn():
    # Keras's Flatten reshapes to (batch, -1) with the batch read from tf.shape: a computed reshape
    return small_cnn(seed=1)


def test_profile_problems_are_reported_at_once(cnn):
    profiles = [{"image": ShapeRange((1, 8, 8, 3), (1, 16, 16, 3), (4, 16, 16, 3)),
                 "nope": ShapeRange((1,), (1,), (2,))}]
    with pytest.raises(FreezeError) as info:
        freeze(cnn, profiles=profiles)
    text = str(info.value)
    assert "2 profile problems" in text and "'nope'" in text and "profile of input 'image'" in text
    with pytest.raises(FreezeError, match="both a static shape"):
        freeze(cnn, inputs={"image": (1, 16, 16, 3)},
               profiles=[{"image": ShapeRange((1, 16, 16, 3), (1, 16, 16, 3), (2, 16, 16, 3))}])


def test_unknown_dimensions_suggest_a_profile():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, 8), name="seq")
    model = keras.Model(inp, keras.layers.Dense(4, name="proj")(inp))
    with pytest.raises(FreezeError) as info:
        freeze(model)
    assert "--profile seq:1x8x8,1x16x8,8x32x8" in info.value.hint


def test_verify_shape_arguments():
    assert parse_verify_shape_arg("input_ids:4x77") == {"input_ids": (4, 77)}
    assert parse_verify_shape_arg("a:4x77, b:4") == {"a": (4, 77), "b": (4,)}
    for text, message in (("a=4", "bad --verify-shape"), ("a:4x0", "at least 1"), ("a:4,a:5", "twice"),
                          ("", "bad --verify-shape")):
        with pytest.raises(FreezeError, match=message):
            parse_verify_shape_arg(text)


def test_verification_shape_problems():
    profiles = [{"a": ShapeRange((1, 8), (4, 64), (8, 128)), "b": ShapeRange((1,), (4,), (8,))},
                {"a": ShapeRange((16, 8), (16, 64), (16, 128)), "b": ShapeRange((16,), (16,), (16,))}]
    declared = {"a": (-1, -1), "b": (-1,), "c": (3,)}
    assert verification_shape_problems(declared, profiles, {"a": (4, 77), "b": (4,)}) == []
    assert verification_shape_problems(declared, profiles, {"a": (16, 9), "b": (16,), "c": (3,)}) == []
    # each input fits some profile, but not the same one: TensorRT runs one profile at a time
    (problem,) = verification_shape_problems(declared, profiles, {"a": (16, 9), "b": (4,)})
    assert "not inside an optimization profile" in problem[1] and "profile 1: a 16x8..16x128" in problem[1]
    problems = verification_shape_problems(declared, profiles, {"a": (4, 9), "c": (2,), "d": (1,)})
    assert [p[0] for p in problems] == ["d", "c", None]
    assert "add b: [4]" in problems[-1][2]
    assert "all static" in verification_shape_problems({"c": (3,)}, [], {"c": (3,)})[0][1]


def test_verification_shapes_name_the_missing_input(dynamic_cnn):
    _, frozen, net = dynamic_cnn
    with pytest.raises(Exception, match="'imgae' is not an input of the model"):
        verify(frozen, net.snapshot, shapes=[{"imgae": (5, 16, 16, 3)}])


# ------------------------------------------------------------------ a dynamic batch, end to end
@pytest.fixture(scope="module")
def dynamic_cnn(cnn):
    frozen = freeze(cnn, batch_range=(1, 2, 8))
    net = construct(parse(frozen))
    return cnn, frozen, net


def test_batch_range_keeps_the_batch_dynamic(dynamic_cnn):
    model, frozen, net = dynamic_cnn
    assert [s.shape for s in frozen.inputs] == [(-1, 16, 16, 3)]
    assert net.profiles == [{"image": {"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}}]
    snap = net.snapshot
    assert snap.inputs[0]["shape"] == [-1, 16, 16, 3] and snap.profiles == net.profiles
    executor = ReferenceExecutor(Snapshot.from_bytes(snap.to_bytes()))  # profiles survive the round trip
    rng = np.random.default_rng(0)
    for batch in (1, 3, 8):
        x = rng.standard_normal((batch, 16, 16, 3)).astype(np.float32)
        got = executor.run({"image": x})["probs"]
        np.testing.assert_allclose(got, model(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(FeedError, match="outside every optimization profile") as info:
        executor.run({"image": np.zeros((9, 16, 16, 3), np.float32)})
    assert info.value.exit_code == 2


def test_verification_runs_at_min_opt_and_max(dynamic_cnn):
    _, frozen, net = dynamic_cnn
    report = verify(frozen, net.snapshot, intermediates=True, shapes=[{"image": (5, 16, 16, 3)}])
    assert report.passed and report.intermediates["failed"] == 0
    assert [row["inputs"]["image"][0] for row in report.shapes] == [1, 2, 8, 5]
    assert all(row["passed"] and set(row["outputs"]) == {"probs"} for row in report.shapes)
    assert report.samples == 4
    assert "at image 8x16x16x3" in report.render()
    with pytest.raises(Exception, match="not inside an optimization profile"):
        verify(frozen, net.snapshot, shapes=[{"image": (9, 16, 16, 3)}])


def test_the_engine_is_built_with_the_profile(dynamic_cnn):
    _, _, net = dynamic_cnn
    engine = optimize_network(net.snapshot)
    assert len(engine) > 0


def test_static_shapes_build_exactly_the_static_network(cnn):
    """A profile that fixes every dimension (1,1,1), or none at all, gives the network tf2trt always built."""
    plain = construct(parse(freeze(cnn))).snapshot
    fixed = construct(parse(freeze(cnn, batch_range=(1, 1, 1)))).snapshot
    assert plain.profiles == [] and "profiles" not in plain.topology
    assert plain.digest() == fixed.digest()


# ------------------------------------------------------------------ a transformer: batch 1-8, sequence 8-128
@pytest.fixture(scope="module")
def bert():
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    return keras_hub.models.BertBackbone(vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
                                         intermediate_dim=64, max_sequence_length=128)


def test_keras_hub_text_encoder_with_dynamic_batch_and_sequence(bert):
    text = {n: ShapeRange((1, 8), (4, 64), (8, 128)) for n in ("token_ids", "segment_ids", "padding_mask")}
    frozen = freeze(bert, profiles=[text])
    assert {s.name: s.shape for s in frozen.inputs} == {n: (-1, -1) for n in text}
    net = construct(parse(frozen))
    layer_types = net.snapshot.layer_types()
    assert layer_types["SHAPE"] >= 1  # the position embedding's slice length comes from the sequence length
    report = verify(frozen, net.snapshot, intermediates=True, input_ranges={"segment_ids": (0, 2)})
    assert report.passed, report.render()
    assert report.intermediates["failed"] == 0 and report.intermediates["checked"] > 100
    assert [row["inputs"]["token_ids"] for row in report.shapes] == [[1, 8], [4, 64], [8, 128]]
    assert len(optimize_network(net)) > 0


# ------------------------------------------------------------------ keras.applications (model-sized: slow tier)
@pytest.mark.slow
def test_mobilenet_v3_small_with_unknown_image_size():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(None, None, 3))
    name = open_model(model).inputs[0].name
    frozen = freeze(model, profiles=[{name: ShapeRange((1, 96, 96, 3), (1, 224, 224, 3), (2, 320, 320, 3))}])
    net = construct(parse(frozen))
    # TensorFlow's SAME padding on a size known only at run time is TensorRT's SAME_UPPER
    modes = {layer["params"].get("padding_mode") for layer in net.snapshot.layers if layer["type"] == "CONVOLUTION"}
    assert "SAME_UPPER" in modes
    report = verify(frozen, net.snapshot, intermediates=True)
    assert report.passed and report.intermediates["failed"] == 0, report.render()
    assert [row["inputs"][name][1] for row in report.shapes] == [96, 224, 320]


@pytest.mark.slow
def test_efficientnet_b0_at_batch_1_8_and_32():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.EfficientNetB0(weights=None)
    name = open_model(model).inputs[0].name
    frozen = freeze(model, profiles=[{name: ShapeRange((1, 224, 224, 3), (8, 224, 224, 3), (32, 224, 224, 3))}])
    net = construct(parse(frozen))
    report = verify(frozen, net.snapshot, intermediates=True)
    assert report.passed and report.intermediates["failed"] == 0, report.render()
    assert [row["inputs"][name][0] for row in report.shapes] == [1, 8, 32]


# ------------------------------------------------------------------ a vision transformer: the class token is tiled by the batch
def test_keras_hub_vit_tiles_its_class_token_by_the_run_time_batch():
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    model = keras_hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
                                         hidden_dim=16, mlp_dim=32)
    frozen = freeze(model, batch_range=(1, 2, 4))
    graph = parse(frozen)
    assert any(node.op == "Tile" for node in graph.nodes)
    net = construct(graph)
    report = verify(frozen, net.snapshot, intermediates=True)
    assert report.passed and report.intermediates["failed"] == 0, report.render()
    assert [row["inputs"][frozen.inputs[0].name][0] for row in report.shapes] == [1, 2, 4]
