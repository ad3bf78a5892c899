"""Transposed convolutions on spatial sizes known only when the engine runs (issue 10).

Keras's ``Conv2DTranspose`` on a ``(None, None, C)`` input computes ``Conv2DBackpropInput``'s ``input_sizes``
from ``tf.shape`` (Shape/StridedSlice/Mul/Pack), which the support check used to refuse.  The converter now builds
the unpadded deconvolution and crops it with a FILL slice whose start and size are shape tensors.  Each row is
frozen with an optimization profile of odd, non-square sizes, verified against TensorFlow at the profile's
min/opt/max on the reference executor, and built into an engine; the refusals that remain are checked before any
layer exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from converter import construct, freeze  # noqa: E402
from converter.engine import optimize_network  # noqa: E402
from converter.errors import UnsupportedOpsError  # noqa: E402
from converter.graph import parse  # noqa: E402
from converter.profiles import ShapeRange  # noqa: E402
from converter.verify import verify  # noqa: E402

#: height and width differ and are odd at min/opt, so SAME's uneven padding and the layout are both exercised
IMAGE = ShapeRange((1, 5, 6, 3), (1, 9, 7, 3), (2, 16, 13, 3))
VOLUME = ShapeRange((1, 3, 4, 5, 2), (1, 5, 5, 6, 2), (2, 7, 6, 8, 2))


@dataclass(frozen=True)
class Deconv:
    id: str
    filters: int = 4
    kernel: int = 3
    strides: int = 1
    padding: str = "same"
    dilation: int = 1
    output_padding: int | None = None

    def param(self):
        return pytest.param(self, id=self.id)

    def model(self):
        import keras

        keras.utils.set_random_seed(0)
        inp = keras.Input((None, None, 3), name="img")
        x = keras.layers.Conv2D(5, 3, padding="same")(inp)
        x = keras.layers.Conv2DTranspose(self.filters, self.kernel, strides=self.strides, padding=self.padding,
                                         dilation_rate=self.dilation, output_padding=self.output_padding)(x)
        return keras.Model(inp, x)


KERAS_CASES = [
    Deconv("same_s1_k3"),
    Deconv("same_s2_k3", strides=2),
    Deconv("same_s2_k4", kernel=4, strides=2),
    Deconv("same_s3_k3", strides=3),
    Deconv("same_s3_k4", kernel=4, strides=3),
    Deconv("valid_s1_k3", padding="valid"),
    Deconv("valid_s2_k3", strides=2, padding="valid"),
    Deconv("valid_s2_k4", kernel=4, strides=2, padding="valid"),
    Deconv("valid_s3_k4", kernel=4, strides=3, padding="valid"),
    Deconv("same_s2_k3_output_padding_0", strides=2, output_padding=0),
    Deconv("same_s3_k4_output_padding_2", kernel=4, strides=3, output_padding=2),
    Deconv("valid_s2_k3_output_padding_1", strides=2, padding="valid", output_padding=1),  # a zero row past F
    Deconv("valid_s3_k3_output_padding_2", strides=3, padding="valid", output_padding=2),
    Deconv("same_s1_k3_dilation_2", dilation=2),
    Deconv("valid_s1_k3_dilation_2", padding="valid", dilation=2),
]


def _dense_twin(case: Deconv, model):
    """The same function with the dilated filter spelled out densely (dilation 1), for the reference.

    TF's CPU Conv2DBackpropInput kernel refuses dilation rates > 1 on some CPUs (AMD EPYC among them), so a
    dilated case is checked against TensorFlow running this twin, which exists on every CPU: SAME/VALID padding
    depends only on the effective filter size, the same for both (as tests/converter/ops' ``dilated_deconv_ref``).
    """
    import keras

    from .ops.test_nn_ops import dilate_filter

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="img")
    conv = keras.layers.Conv2D(5, 3, padding="same")
    x = conv(inp)
    deconv = keras.layers.Conv2DTranspose(case.filters, (case.kernel - 1) * case.dilation + 1, strides=case.strides,
                                          padding=case.padding, output_padding=case.output_padding)
    twin = keras.Model(inp, deconv(x))
    conv.set_weights(model.layers[1].get_weights())
    kernel, bias = model.layers[2].get_weights()
    deconv.set_weights([dilate_filter(kernel, case.dilation), bias])
    return twin


def _check_dilated_against_twin(case: Deconv, model, frozen, net):
    """The dilated network on the executor at the profile's min/opt/max against TensorFlow running the dense twin."""
    from converter.reference import ReferenceExecutor
    from converter.verify import DEFAULT_ATOL, DEFAULT_RTOL

    twin = _dense_twin(case, model)
    executor = ReferenceExecutor(net.snapshot)
    rng = np.random.default_rng(0)
    for shape in (IMAGE.min, IMAGE.opt, IMAGE.max):
        x = rng.standard_normal(shape).astype(np.float32)
        got = executor.run({"img": x})[frozen.outputs[0]]
        np.testing.assert_allclose(got, twin(x).numpy(), rtol=DEFAULT_RTOL, atol=DEFAULT_ATOL, err_msg=str(shape))
    assert len(optimize_network(net.snapshot)) > 0


def _check_network(frozen, net, op="Conv2DBackpropInput"):
    """The frozen graph has the op with a computed input_sizes; the network an unpadded deconvolution and a
    FILL slice of computed size."""
    nodes = {n.name: n for n in frozen.graph_def.node}
    (deconv,) = [n for n in nodes.values() if n.op == op]
    assert nodes[deconv.input[0].split(":")[0]].op != "Const"
    types = net.snapshot.layer_types()
    assert types.get("SHAPE") and types.get("DECONVOLUTION") == 1, types
    (layer,) = [ly for ly in net.snapshot.layers if ly["type"] == "DECONVOLUTION"]
    assert not any(layer["params"]["pre_padding"]) and not any(layer["params"]["post_padding"])
    assert any(ly["type"] == "SLICE" and ly["params"]["mode"] == "FILL" for ly in net.snapshot.layers)


def _verify_and_build(frozen, net, name, shape_range, **kwargs):
    report = verify(frozen, net.snapshot, **kwargs)
    assert report.passed, report.render()
    assert [row["inputs"][name] for row in report.shapes] == [list(shape_range.min), list(shape_range.opt),
                                                              list(shape_range.max)]
    assert len(optimize_network(net.snapshot)) > 0
    return report


@pytest.mark.parametrize("case", [c.param() for c in KERAS_CASES])
def test_keras_conv2d_transpose_on_dynamic_sizes(case, tmp_path):
    model = case.model()
    path = tmp_path / "deconv.keras"
    model.save(path)
    frozen = freeze(str(path), profiles=[{"img": IMAGE}])
    assert [s.shape for s in frozen.inputs] == [(-1, -1, -1, 3)]
    net = construct(parse(frozen))
    _check_network(frozen, net)
    if case.dilation > 1:
        _check_dilated_against_twin(case, model, frozen, net)
    else:
        _verify_and_build(frozen, net, "img", IMAGE, intermediates=True)


def test_keras_conv3d_transpose_on_dynamic_sizes():
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, None, 2), name="vol")
    model = keras.Model(inp, keras.layers.Conv3DTranspose(3, 3, strides=2, padding="same")(inp))
    frozen = freeze(model, profiles=[{"vol": VOLUME}])
    net = construct(parse(frozen))
    _check_network(frozen, net, "Conv3DBackpropInputV2")
    _verify_and_build(frozen, net, "vol", VOLUME)


# ------------------------------------------------------------------ tf.nn.conv2d_transpose with computed shapes
_W = np.random.RandomState(1).standard_normal((3, 3, 4, 3)).astype(np.float32)  # [kh, kw, out, in]


def _tf():
    import tensorflow as tf

    return tf


def _dims(x):
    s = _tf().shape(x)
    return s[0], s[1], s[2]


def _odd_same(x):
    """SAME at stride 2 with out = 2·in - 1 (TF accepts it: ceil(out / 2) == in)."""
    n, h, w = _dims(x)
    return _tf().nn.conv2d_transpose(x, _W, _tf().stack([n, 2 * h - 1, 2 * w, 4]), 2, "SAME")


def _valid_extra_rows(x):
    """VALID at stride 2 with one row and column more than the deconvolution covers: zeros there."""
    n, h, w = _dims(x)
    return _tf().nn.conv2d_transpose(x, _W, _tf().stack([n, 2 * h + 2, 2 * w + 2, 4]), 2, "VALID")


def _explicit(x):
    """EXPLICIT paddings (1, 2) on the height, (0, 1) on the width; out = 2·h - 1 and 2·w + 1."""
    n, h, w = _dims(x)
    return _tf().raw_ops.Conv2DBackpropInput(input_sizes=_tf().stack([n, 2 * h - 1, 2 * w + 1, 4]), filter=_W,
                                             out_backprop=x, strides=[1, 2, 2, 1], padding="EXPLICIT",
                                             explicit_paddings=[0, 0, 1, 2, 0, 1, 0, 0])


def _channels_from_shape(x):
    """Every element of input_sizes read from a shape, the channels too (not a constant)."""
    s = _tf().shape(x)
    return _tf().nn.conv2d_transpose(x, _W, _tf().stack([s[0], 3 * s[1], 3 * s[2], s[3] + 1]), 3, "SAME")


RAW_CASES = [
    pytest.param(_odd_same, id="same_odd_output"),
    pytest.param(_valid_extra_rows, id="valid_extra_rows"),
    pytest.param(_explicit, id="explicit_paddings"),
    pytest.param(_channels_from_shape, id="channels_from_shape"),
]


def _freeze_fn(fn):
    tf = _tf()
    func = tf.function(fn, input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="x")],
                       autograph=False)
    return freeze(func, profiles=[{"x": IMAGE}])


@pytest.mark.parametrize("fn", RAW_CASES)
def test_tf_conv2d_transpose_with_output_shape_from_tf_shape(fn):
    frozen = _freeze_fn(fn)
    net = construct(parse(frozen))
    _check_network(frozen, net)
    _verify_and_build(frozen, net, "x", IMAGE)


# ------------------------------------------------------------------ a small U-Net on (None, None, 3) images
def test_keras_unet_encoder_decoder_on_dynamic_sizes():
    """Two down- and two up-sampling levels with skip connections: the decoder's Conv2DTranspose outputs must
    match the encoder's run-time sizes for the concatenations."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((None, None, 3), name="img")
    e1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    e2 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(e1))
    b = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(keras.layers.MaxPooling2D()(e2))
    d2 = keras.layers.Conv2DTranspose(16, 2, strides=2, padding="same")(b)
    d2 = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(keras.layers.Concatenate()([d2, e2]))
    d1 = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same")(d2)
    d1 = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(keras.layers.Concatenate()([d1, e1]))
    model = keras.Model(inp, keras.layers.Conv2D(2, 1, activation="sigmoid")(d1))
    sizes = ShapeRange((1, 8, 12, 3), (1, 32, 24, 3), (2, 64, 48, 3))
    frozen = freeze(model, profiles=[{"img": sizes}])
    graph = parse(frozen)
    assert sum(n.op == "Conv2DBackpropInput" for n in graph.nodes) == 2
    net = construct(graph)
    assert net.snapshot.layer_types()["DECONVOLUTION"] == 2
    report = _verify_and_build(frozen, net, "img", sizes, intermediates=True)
    assert report.intermediates["failed"] == 0 and report.intermediates["checked"] > 10


# ------------------------------------------------------------------ static shapes keep the static conversion
def test_static_sizes_keep_the_padded_deconvolution():
    """A profile fixing every dimension gives a constant input_sizes: the deconvolution crops by its padding, as
    before computed sizes were supported, and no shape layer exists."""
    case = Deconv("static", kernel=4, strides=2)
    fixed = ShapeRange((1, 9, 7, 3), (1, 9, 7, 3), (1, 9, 7, 3))
    frozen = freeze(case.model(), profiles=[{"img": fixed}])
    net = construct(parse(frozen))
    types = net.snapshot.layer_types()
    assert "SHAPE" not in types and "SLICE" not in types, types
    (layer,) = [ly for ly in net.snapshot.layers if ly["type"] == "DECONVOLUTION"]
    assert list(layer["params"]["pre_padding"]) == [1, 1] and list(layer["params"]["post_padding"]) == [1, 1]
    assert verify(frozen, net.snapshot).passed


# ------------------------------------------------------------------ what is still refused, before any layer
def _from_data(x):
    n, h, w = _dims(x)
    rows = _tf().cast(_tf().reduce_max(_tf().abs(x)), _tf().int32) + 2 * h
    return _tf().nn.conv2d_transpose(x, _W, _tf().stack([n, rows, 2 * w, 4]), 2, "SAME")


def _fixed_batch(x):
    _, h, w = _dims(x)
    return _tf().nn.conv2d_transpose(x, _W, _tf().stack([1, 2 * h, 2 * w, 4]), 2, "SAME")


def _grouped(x):
    n, h, w = _dims(x)
    return _tf().nn.conv2d_transpose(x, _W[:, :, :2], _tf().stack([n, 2 * h, 2 * w, 4]), 2, "SAME")


def _spatial_only(x):
    """TF's two-element form: only the spatial sizes, the batch and channels implied."""
    _, h, w = _dims(x)
    return _tf().raw_ops.Conv2DBackpropInput(input_sizes=_tf().stack([2 * h, 2 * w]), filter=_W, out_backprop=x,
                                             strides=[1, 2, 2, 1], padding="SAME")


REFUSED = [
    pytest.param(_from_data, "input_sizes must be a constant or computed from tensor shapes", id="from_data"),
    pytest.param(_fixed_batch, "input_sizes fixes the batch to 1 while the input's batch is dynamic",
                 id="fixed_batch_on_dynamic_batch"),
    pytest.param(_spatial_only, "input_sizes has 2 elements, not 4", id="spatial_sizes_only"),
    pytest.param(_grouped, "grouped transposed convolutions are not supported", id="computed_sizes_grouped"),
]


@pytest.mark.parametrize("fn, message", REFUSED)
def test_still_refused_in_the_support_check(fn, message):
    frozen = _freeze_fn(fn)
    with pytest.raises(UnsupportedOpsError) as info:
        parse(frozen)  # the support check runs here, before construct creates any layer
    text = str(info.value)
    assert "Conv2DBackpropInput" in text and message in text, text
    assert info.value.exit_code == 2 and info.value.hint
