"""Network snapshots: read back, rebuild, save/load, digest."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from onnx import helper

from converter import snapshot as snapshot_mod
from converter import trt as trtshim
from converter.reference import ReferenceExecutor, UnsupportedLayerError
from converter.snapshot import FORMAT, Snapshot, SnapshotError
from tests.converter.onnx_cases import OnnxCase, case, parse, rand_pos, randn
from tests.converter.test_reference_conformance import API_CASES, ONNX_CASES, _api_snapshot


def _trt():
    return trtshim.module()


def _mixed_network():
    """A network with many layer types built through the API (plus a parsed ONNX part)."""
    trt = _trt()
    builder, net = trtshim.create_network()
    keep = []

    def const(arr):
        arr = np.ascontiguousarray(arr)
        keep.append(arr)
        return net.add_constant(arr.shape, trt.Weights(arr))

    x = net.add_input("x", trt.float32, (1, 4, 8, 8))
    w = randn(8, 2, 3, 3, seed=1)
    b = randn(8, seed=2)
    keep += [w, b]
    conv = net.add_convolution_nd(x, 8, (3, 3), trt.Weights(w), trt.Weights(b))
    conv.num_groups = 2
    conv.pre_padding, conv.post_padding = (1, 0), (1, 2)
    conv.stride_nd, conv.dilation_nd = (1, 1), (1, 1)
    conv.name = "conv"
    act = net.add_activation(conv.get_output(0), trt.ActivationType.CLIP)
    act.alpha, act.beta = -float(np.finfo(np.float32).max), 6.0  # TensorRT refuses a non-finite alpha
    act.name = "clip"
    pool = net.add_pooling_nd(act.get_output(0), trt.PoolingType.AVERAGE, (2, 2))
    pool.stride_nd = (2, 2)
    pool.average_count_excludes_padding = False
    sc_w = randn(8, seed=3)
    keep.append(sc_w)
    scale = net.add_scale_nd(pool.get_output(0), trt.ScaleMode.CHANNEL, trt.Weights(trt.float32), trt.Weights(sc_w),
                             trt.Weights(trt.float32), 1)
    dw = randn(8, 3, 2, 2, seed=4)
    keep.append(dw)
    deconv = net.add_deconvolution_nd(scale.get_output(0), 3, (2, 2), trt.Weights(dw), trt.Weights(trt.float32))
    deconv.stride_nd = (2, 2)
    pad = net.add_padding_nd(deconv.get_output(0), (0, 1), (0, 2))
    shuffle = net.add_shuffle(pad.get_output(0))
    shuffle.first_transpose = (0, 2, 3, 1)
    shuffle.reshape_dims = (0, -1, 3)
    mm = net.add_matrix_multiply(shuffle.get_output(0), trt.MatrixOperation.NONE,
                                 const(randn(1, 3, 5, seed=5)).get_output(0), trt.MatrixOperation.NONE)
    sm = net.add_softmax(mm.get_output(0))
    sm.axes = 1 << 2
    red = net.add_reduce(sm.get_output(0), trt.ReduceOperation.MAX, 1 << 1, True)
    ew = net.add_elementwise(red.get_output(0), const(randn(1, 1, 5, seed=6)).get_output(0),
                             trt.ElementWiseOperation.SUB)
    un = net.add_unary(ew.get_output(0), trt.UnaryOperation.ABS)
    sl = net.add_slice(un.get_output(0), (0, 0, -1), (1, 1, 7), (1, 1, 1))
    sl.mode = trt.SampleMode.REFLECT
    cat = net.add_concatenation([sl.get_output(0), un.get_output(0)])
    cat.axis = 2
    rs = net.add_resize(cat.get_output(0))
    rs.scales = [1.0, 2.0, 0.5]
    rs.resize_mode = trt.InterpolationMode.LINEAR
    rs.coordinate_transformation = trt.ResizeCoordinateTransformation.HALF_PIXEL
    cast = net.add_cast(rs.get_output(0), trt.int32)
    ident = net.add_identity(rs.get_output(0))
    topk = net.add_topk(ident.get_output(0), trt.TopKOperation.MAX, 2, 1 << 2)
    shape = net.add_shape(ident.get_output(0))
    idx = const(np.array([1, 0], np.int32))
    gather = net.add_gather(ident.get_output(0), idx.get_output(0), 2)
    fill = net.add_fill((2, 3), trt.FillOperation.LINSPACE, trt.float32)
    fill.alpha, fill.beta = 0.5, 2.0
    lrn_in = net.add_input("z", trt.float32, (1, 6, 4, 4))
    lrn = net.add_lrn(lrn_in, 3, 1e-3, 0.75, 1.0)
    norm = net.add_normalization(lrn.get_output(0), const(np.ones((1, 6, 1, 1), np.float32)).get_output(0),
                                 const(np.zeros((1, 6, 1, 1), np.float32)).get_output(0), 0b1100)
    norm.epsilon = 1e-4
    ein = net.add_einsum([norm.get_output(0)], "nchw->nhwc")
    for i, layer in enumerate([cast, topk, shape, gather, fill, ein]):
        for j in range(layer.num_outputs):
            layer.get_output(j).name = f"out{i}_{j}"
            net.mark_output(layer.get_output(j))
    return builder, net, keep


def test_mixed_network_round_trip():
    _, net, keep = _mixed_network()
    snap = Snapshot.from_network(net)
    assert snap.topology["format"] == FORMAT
    assert snap.layer_count == net.num_layers
    types = snap.layer_types()
    assert len(types) >= 20
    _, net2 = snap.to_network()
    again = Snapshot.from_network(net2)
    assert again == snap
    assert again.digest() == snap.digest()
    # same layer names, tensor names and outputs
    assert [net2.get_layer(i).name for i in range(net2.num_layers)] == [r["name"] for r in snap.layers]
    assert [net2.get_output(i).name for i in range(net2.num_outputs)] == snap.outputs
    # conv kernel stored with its logical shape
    conv = next(r for r in snap.layers if r["type"] == "CONVOLUTION")
    assert snap.weights[conv["weights"]["kernel"]].shape == (8, 2, 3, 3)
    deconv = next(r for r in snap.layers if r["type"] == "DECONVOLUTION")
    assert snap.weights[deconv["weights"]["kernel"]].shape == (8, 3, 2, 2)
    clip = next(r for r in snap.layers if r["name"] == "clip")
    assert clip["params"]["alpha"] == -float(np.finfo(np.float32).max)
    del keep


def test_rebuilt_network_builds_an_engine():
    _, net, keep = _mixed_network()
    snap = Snapshot.from_network(net)
    builder, net2 = snap.to_network()
    engine = builder.build_serialized_network(net2, builder.create_builder_config())
    assert engine is not None and engine.nbytes > 0
    del keep


def test_rebuilt_network_runs_the_same():
    _, net, keep = _mixed_network()
    snap = Snapshot.from_network(net)
    _, net2 = snap.to_network()
    snap2 = Snapshot.from_network(net2)
    feeds = {"x": randn(1, 4, 8, 8, seed=9), "z": randn(1, 6, 4, 4, seed=10)}
    a = ReferenceExecutor(snap).run(feeds)
    b = ReferenceExecutor(snap2).run(feeds)
    assert set(a) == set(snap.outputs)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    del keep


_ROUND_TRIP_IDS = [c.id for c in ONNX_CASES]


@pytest.mark.parametrize("c", ONNX_CASES, ids=_ROUND_TRIP_IDS)
def test_round_trip_parsed_networks(c):
    _, net, _ = parse(c.model())
    snap = Snapshot.from_network(net)
    _, net2 = snap.to_network()
    assert Snapshot.from_network(net2) == snap


@pytest.mark.parametrize("c", API_CASES, ids=[c.id for c in API_CASES])
def test_round_trip_api_networks(c):
    snap = _api_snapshot(c)
    _, net2 = snap.to_network()
    assert Snapshot.from_network(net2) == snap


def test_save_load_and_digest(tmp_path):
    _, net, keep = _mixed_network()
    snap = Snapshot.from_network(net)
    d = tmp_path / "snap"
    snap.save(d)
    assert sorted(os.listdir(d)) == ["network.json", "weights.npz"]
    text = (d / "network.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict JSON constant {name}"))
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    loaded = Snapshot.load(d)
    assert loaded == snap
    assert loaded.digest() == snap.digest()
    # stable across rebuilds and saves
    snap.save(d)
    assert Snapshot.load(d).digest() == snap.digest()
    assert Snapshot.from_network(net).digest() == snap.digest()
    # any weight change changes digest and equality
    changed = Snapshot.load(d)
    key = sorted(changed.weights)[0]
    changed.weights[key] = changed.weights[key].copy()
    changed.weights[key].flat[0] += 1
    assert changed != snap
    assert changed.digest() != snap.digest()
    # a topology change too
    other = Snapshot.load(d)
    other.topology["layers"][0]["name"] = "renamed"
    assert other != snap and other.digest() != snap.digest()
    # meta annotations are saved but are not part of the identity
    annotated = Snapshot.load(d)
    annotated.meta["tensor_map"] = {"conv": ["tf/conv", [0]]}
    annotated.save(tmp_path / "annotated")
    back = Snapshot.load(tmp_path / "annotated")
    assert back.meta == annotated.meta and back == snap and back.digest() == snap.digest()
    # rebuilt from the loaded copy, TensorFlow-free
    _, net3 = loaded.to_network()
    assert Snapshot.from_network(net3) == snap
    del keep


def test_digest_is_hex_and_deterministic():
    _, net, keep = _mixed_network()
    d1 = Snapshot.from_network(net).digest()
    _, net_b, keep_b = _mixed_network()
    d2 = Snapshot.from_network(net_b).digest()
    assert d1 == d2
    int(d1, 16)
    assert len(d1) == 64
    del keep, keep_b


def test_unsupported_layer_raises_clear_error():
    trt = _trt()
    _, net = trtshim.create_network()
    x = net.add_input("x", trt.float32, (2, 3))
    cond = net.add_elementwise(x, x, trt.ElementWiseOperation.EQUAL)
    reduce = net.add_reduce(cond.get_output(0) if False else x, trt.ReduceOperation.SUM, 0b11, False)
    assertion_in = net.add_elementwise(reduce.get_output(0), reduce.get_output(0), trt.ElementWiseOperation.EQUAL)
    assertion = net.add_assertion(assertion_in.get_output(0), "must hold")
    assertion.name = "my_assert"
    net.mark_output(reduce.get_output(0))
    with pytest.raises(SnapshotError, match=r"my_assert.*ASSERTION"):
        Snapshot.from_network(net)


def test_non_finite_floats_are_strict_json():
    assert [snapshot_mod.encode_float(v) for v in (float("inf"), -float("inf"), float("nan"), 1.5)] == [
        "inf", "-inf", "nan", 1.5]
    assert [snapshot_mod.decode_float(v) for v in ("inf", "-inf", 2.0)] == [float("inf"), -float("inf"), 2.0]
    with pytest.raises(ValueError):
        snapshot_mod.canonical_json({"a": float("nan")})


def test_format_checked(tmp_path):
    with pytest.raises(SnapshotError, match="format"):
        Snapshot({"format": "something-else"}, {})


def test_supported_types_cover_executor():
    from converter import reference

    assert set(reference.SUPPORTED_LAYER_TYPES) <= set(snapshot_mod.SUPPORTED_LAYER_TYPES)


#: layers the reference executor does not run, whose snapshots are still checked
SNAPSHOT_ONLY_CASES = [
    case("grid_sample", "GridSample", {"x": randn(1, 2, 4, 4), "g": randn(1, 3, 3, 2, seed=1)},
         attrs=dict(mode="bilinear", padding_mode="border", align_corners=1)),
    case("nms", "NonMaxSuppression", {"b": rand_pos(1, 4, 4), "s": rand_pos(1, 1, 4, seed=1)},
         {"m": np.array([2], np.int64), "iou": np.array([0.5], np.float32)}, out_dtypes=[np.int64]),
]


@pytest.mark.parametrize("c", SNAPSHOT_ONLY_CASES, ids=lambda c: c.id)
def test_round_trip_snapshot_only_layers(c):
    """Layer types the parser emits that snapshots support but the executor does not run."""
    _, net, _ = parse(c.model())
    snap = Snapshot.from_network(net)
    _, net2 = snap.to_network()
    assert Snapshot.from_network(net2) == snap
    ex = ReferenceExecutor(snap)
    assert ex.unsupported_layers()
    with pytest.raises(UnsupportedLayerError):
        ex.run({k: v for k, v in c.feeds.items()})


def test_snapshot_of_multi_node_onnx_graph():
    """A small multi-node ONNX graph (conv -> relu -> pool -> flatten -> gemm)."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "g"], ["y"], transB=1),
    ]
    c = OnnxCase("multi", nodes, {"x": randn(1, 3, 8, 8)}, {"w": randn(4, 3, 3, 3, seed=1),
                                                            "g": randn(10, 64, seed=2)}, [("y", np.float32)])
    _, net, _ = parse(c.model())
    snap = Snapshot.from_network(net)
    assert {"CONVOLUTION", "ACTIVATION", "POOLING", "SHUFFLE", "MATRIX_MULTIPLY"} <= set(snap.layer_types())
    _, net2 = snap.to_network()
    assert Snapshot.from_network(net2) == snap


_V1 = os.path.join(os.path.dirname(__file__), "data", "snapshot_v1")


@pytest.mark.parametrize("how", ["directory", "blob"])
def test_format_1_snapshots_still_load_rebuild_and_run(how):
    """Snapshots stored by tf2trt before the per-kind layer modules (format 1) load as format 2.

    The fixture was written by the format-1 code from a small TF model (conv, bias, relu, pool, resize,
    reduce, concat, exp, leaky relu, matmul, top-k, softmax, gather) together with its executor outputs.
    """
    if how == "directory":
        snap = Snapshot.load(_V1)
    else:
        with open(os.path.join(_V1, "snapshot.bin"), "rb") as fh:
            snap = Snapshot.from_bytes(fh.read())
    with open(os.path.join(_V1, "network.json"), encoding="utf-8") as fh:
        assert json.load(fh)["format"] == "tf2trt-snapshot/1"
    assert snap.topology["format"] == FORMAT
    rebuilt = Snapshot.from_network(snap.to_network()[1])
    assert rebuilt == snap, "a format-1 snapshot must rebuild into the network it describes"
    io = np.load(os.path.join(_V1, "io.npz"))
    got = ReferenceExecutor(snap).run({"x0": io["x0"]})
    for i, name in enumerate(snap.outputs):
        np.testing.assert_allclose(got[name], io[f"out_{i}"], rtol=1e-6, atol=1e-6, err_msg=name)


def test_unknown_parameter_in_a_stored_snapshot_is_a_damaged_snapshot():
    with open(os.path.join(_V1, "network.json"), encoding="utf-8") as fh:
        topology = json.load(fh)
    conv = next(rec for rec in topology["layers"] if rec["type"] == "CONVOLUTION")
    conv["params"]["kernel_sizes"] = conv["params"].pop("kernel_size")
    with pytest.raises(SnapshotError, match="unknown parameter.*kernel_sizes"):
        Snapshot(topology, {})
