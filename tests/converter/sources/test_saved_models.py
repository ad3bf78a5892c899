"""SavedModels convert whatever their signatures' shapes: static, dynamic, several signatures, variables.

Issue 8: a signature with fully static input shapes never converted: outputs
were looked up by the signature's output *key* (a loaded signature's
structured outputs are TensorSpecs named after the keys, not graph tensors),
so freezing failed with "outputs ['probs'] are not in the graph".  A shape
override that disagrees with a static signature was an internal error.
"""

from __future__ import annotations

import numpy as np
import pytest

from converter.errors import EXIT_BAD_INPUT, FreezeError, classify
from converter.freeze import freeze

from ._check import as_numpy, check_end_to_end


def _scorer_module(batch):
    """A tf.Module with variables and two signatures (one returning two outputs)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Scorer(tf.Module):
        def __init__(self):
            self.w = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32), name="w")
            self.b = tf.Variable(rng.standard_normal((4,)).astype(np.float32), name="b")

        @tf.function(input_signature=[tf.TensorSpec([batch, 6], tf.float32, name="features")])
        def score(self, features):
            logits = tf.matmul(features, self.w) + self.b
            return {"probs": tf.nn.softmax(logits), "logits": logits}

        @tf.function(input_signature=[tf.TensorSpec([batch, 6], tf.float32, name="features")])
        def embed(self, features):
            return {"embedding": tf.math.l2_normalize(tf.nn.relu(features), axis=-1)}

    return Scorer()


@pytest.fixture(scope="module", params=[2, None], ids=["static", "dynamic"])
def scorer(request, tmp_path_factory):
    import tensorflow as tf

    module = _scorer_module(request.param)
    path = tmp_path_factory.mktemp("sm") / "scorer"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.score, "embed": module.embed})
    return request.param, module, path


def test_signatures_static_and_dynamic(scorer, tmp_path):
    batch, module, path = scorer
    x = np.random.default_rng(1).standard_normal((2, 6)).astype(np.float32)
    inputs = None if batch else {"features": (2, 6)}
    frozen = freeze(path, inputs=inputs)  # the default signature: serving_default
    assert [(s.name, s.shape) for s in frozen.inputs] == [("features", (2, 6))]
    reference = {k: as_numpy(v) for k, v in module.score(x).items()}
    check_end_to_end(frozen, reference, {"features": x}, tmp_path)
    # the variables became constants, the second signature is selectable (--signature embed)
    assert not {n.op for n in frozen.graph_def.node} & {"ReadVariableOp", "VarHandleOp"}
    embed = freeze(path, signature="embed", inputs=inputs)
    assert embed.outputs == ["embedding"]
    check_end_to_end(embed, {"embedding": as_numpy(module.embed(x)["embedding"])}, {"features": x}, tmp_path)


def test_output_selection_by_key(scorer):
    _, _, path = scorer
    frozen = freeze(path, inputs={"features": (2, 6)}, outputs=["logits"])
    assert frozen.outputs == ["logits"]
    assert "Softmax" not in {n.op for n in frozen.graph_def.node}
    with pytest.raises(FreezeError, match=r"unknown output name\(s\) \['prob'\].*\['logits', 'probs'\]"):
        freeze(path, inputs={"features": (2, 6)}, outputs=["prob"])


def test_plain_module_with_a_tf_function_and_static_shapes(tmp_path):
    """tf.saved_model.save of a tf.Module whose tf.function has a static signature; several inputs."""
    import tensorflow as tf

    class Mixer(tf.Module):
        def __init__(self):
            self.scale = tf.Variable(np.float32(1.5))

        @tf.function(input_signature=[tf.TensorSpec([3, 4], tf.float32, name="zeta"),
                                      tf.TensorSpec([3, 2], tf.float32, name="alpha")])
        def __call__(self, zeta, alpha):
            return {"mixed": tf.concat([zeta * self.scale, tf.tanh(alpha)], axis=1), "total": tf.reduce_sum(zeta)}

    module = Mixer()
    tf.saved_model.save(module, str(tmp_path / "mixer"), signatures=module.__call__)
    frozen = freeze(tmp_path / "mixer")
    # inputs keep their names whatever the order the signature lists them in
    assert {s.name: s.shape for s in frozen.inputs} == {"zeta": (3, 4), "alpha": (3, 2)}
    rng = np.random.default_rng(2)
    feeds = {"zeta": rng.standard_normal((3, 4)).astype(np.float32),
             "alpha": rng.standard_normal((3, 2)).astype(np.float32)}
    reference = {k: as_numpy(v) for k, v in module(**feeds).items()}
    check_end_to_end(frozen, reference, feeds, tmp_path)


@pytest.mark.parametrize("static", [False, True], ids=["export", "export-static-signature"])
def test_keras3_model_export(tmp_path, static):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((5,), name="feat")
    hidden = keras.layers.Dense(8, activation="relu")(inp)
    model = keras.Model(inp, keras.layers.Dense(3, activation="softmax", name="probs")(hidden))
    kwargs = {"input_signature": [tf.TensorSpec((2, 5), tf.float32, name="feat")]} if static else {}
    model.export(str(tmp_path / "exported"), verbose=False, **kwargs)
    frozen = freeze(tmp_path / "exported")
    assert [s.shape for s in frozen.inputs] == [(1, 5) if not static else (2, 5)]
    x = np.random.default_rng(3).standard_normal(frozen.inputs[0].shape).astype(np.float32)
    check_end_to_end(frozen, {frozen.outputs[0]: as_numpy(model(x))}, {frozen.inputs[0].name: x}, tmp_path)


@pytest.mark.parametrize("shape,match", [
    ((1, 6), r"input 'features': the model's shape is 2x6, the given shape 1x6 differs in dimension 0"),
    ((2, 6, 1), r"input 'features': the model's shape is 2x6 \(rank 2\), the given shape 2x6x1 has rank 3"),
])
def test_override_that_disagrees_with_a_static_signature(scorer, shape, match):
    batch, _, path = scorer
    if batch is None:
        if len(shape) == 2:  # any batch size fits a dynamic signature
            assert freeze(path, inputs={"features": shape}).inputs[0].shape == shape
            return
        match = match.replace("2x6 \\(rank", "\\?x6 \\(rank")
    with pytest.raises(FreezeError, match=match) as info:
        freeze(path, inputs={"features": shape})
    code, _, hint = classify(info.value)
    assert code == EXIT_BAD_INPUT
    assert f"--input features:{'2x6' if batch else '1x6'}" in hint  # ready to paste
