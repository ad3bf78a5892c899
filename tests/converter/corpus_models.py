"""The real-world corpus: models from libraries people use, saved the ways people save them.

Each entry is one model file a user would have: built offline from the
library's own constructors with random weights and a fixed seed (small
configs: tiny vocabularies, 1-2 layers), saved in one format.  ``flags`` are
the only ``--input`` options ``tf2trt convert`` gets: the shapes the model
leaves unknown.  ``expect`` is what converting it does today: ``"pass"`` or
``(exit_code, text in the error)`` for a model that fails with a documented,
clean error; failures stay in the corpus (and in docs/zoo.md), not hidden.

Builders run in a fresh interpreter (``python -m tests.converter.corpus_models
NAME PATH``) so Keras 3 and tf_keras never share a process, as for a user.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SEQ = 8
TEXT = ("token_ids", "segment_ids", "padding_mask")


def _shapes(names, shape="1x8") -> list[str]:
    return [arg for name in names for arg in ("--input", f"{name}:{shape}")]


#: the small text configuration every keras-hub text backbone here uses
TEXT_CONFIG = dict(vocabulary_size=64, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32)


def _keras_hub_seed():
    import keras

    keras.utils.set_random_seed(0)
    import keras_hub

    return keras_hub


def bert_backbone(path: Path) -> None:
    kh = _keras_hub_seed()
    kh.models.BertBackbone(**TEXT_CONFIG, max_sequence_length=16).save(path)


def bert_classifier(path: Path) -> None:
    kh = _keras_hub_seed()
    backbone = kh.models.BertBackbone(**TEXT_CONFIG, max_sequence_length=16)
    kh.models.BertTextClassifier(backbone, num_classes=3, preprocessor=None).save(path)


def gpt2_export(path: Path) -> None:
    kh = _keras_hub_seed()
    kh.models.GPT2Backbone(**TEXT_CONFIG, max_sequence_length=16).export(str(path), verbose=False)


def bart_backbone(path: Path) -> None:
    kh = _keras_hub_seed()
    kh.models.BartBackbone(**TEXT_CONFIG, max_sequence_length=16).save(path)


def t5_backbone(path: Path) -> None:
    kh = _keras_hub_seed()
    kh.models.T5Backbone(**TEXT_CONFIG, key_value_dim=8).save(path)


def vit_backbone(path: Path) -> None:
    kh = _keras_hub_seed()
    kh.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2, hidden_dim=16,
                          mlp_dim=32).save(path)


def resnet_classifier_export(path: Path) -> None:
    kh = _keras_hub_seed()
    backbone = kh.models.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[3],
                                        stackwise_num_filters=[64, 32], stackwise_num_blocks=[1, 1],
                                        stackwise_num_strides=[1, 2], block_type="basic_block",
                                        image_shape=(32, 32, 3))
    kh.models.ImageClassifier(backbone, num_classes=4).export(str(path), verbose=False)


def keras_lstm(path: Path) -> None:
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((SEQ,), dtype="int32", name="ids")
    x = keras.layers.LSTM(8)(keras.layers.Embedding(32, 8)(ids))
    keras.Model(ids, keras.layers.Dense(2, name="out")(x)).save(path)


def _tf_keras_cnn():
    import tf_keras

    tf_keras.utils.set_random_seed(0)
    ids = tf_keras.Input((SEQ,), dtype="int32", name="ids")
    x = tf_keras.layers.Embedding(32, 8, name="emb")(ids)
    x = tf_keras.layers.Conv1D(8, 3, padding="same", activation="relu")(x)
    x = tf_keras.layers.GlobalMaxPooling1D()(x)
    return tf_keras.Model(ids, tf_keras.layers.Dense(3, activation="softmax", name="out")(x))


def tf_keras_h5(path: Path) -> None:
    _tf_keras_cnn().save(path)


def tf_keras_saved_model(path: Path) -> None:
    _tf_keras_cnn().save(str(path), save_format="tf")


def _module():
    import tensorflow as tf

    rng = np.random.default_rng(0)

    class Scorer(tf.Module):
        def __init__(self):
            super().__init__()
            self.w = tf.Variable(rng.standard_normal((6, 4)).astype(np.float32))
            self.b = tf.Variable(rng.standard_normal((4,)).astype(np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, 6], tf.float32, name="x")])
        def __call__(self, x):
            return {"scores": tf.nn.softmax(tf.nn.gelu(x @ self.w + self.b))}

    return Scorer()


def tf_module(path: Path) -> None:
    import tensorflow as tf

    module = _module()
    tf.saved_model.save(module, str(path))


def concrete_function(path: Path) -> None:
    """A concrete function of a tf.function over variables, saved as the SavedModel's one signature."""
    import tensorflow as tf

    rng = np.random.default_rng(1)
    w = tf.Variable(rng.standard_normal((5, 3)).astype(np.float32))

    @tf.function
    def layer(x):
        return tf.math.erf(x @ w)

    holder = tf.Module()
    holder.w = w
    fn = layer.get_concrete_function(tf.TensorSpec([2, 5], tf.float32, name="x"))
    tf.saved_model.save(holder, str(path), signatures=fn)


def tf1_frozen_pb(path: Path) -> None:
    """A TF1 graph with a PlaceholderWithDefault, frozen by TensorFlow's convert_variables_to_constants."""
    import tensorflow as tf

    rng = np.random.default_rng(2)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        scale = tf.compat.v1.placeholder_with_default(np.full((4,), 0.5, np.float32), [4], name="scale")
        w = tf.compat.v1.get_variable("w", initializer=rng.standard_normal((4, 3)).astype(np.float32))
        tf.identity(tf.nn.sigmoid(tf.matmul(x * scale, w)), name="y")
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            gd = tf.compat.v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), ["y"])
    path.write_bytes(gd.SerializeToString())


@dataclass(frozen=True)
class Entry:
    name: str
    library: str
    format: str
    file: str  #: the file or directory name the builder writes
    build: object
    flags: tuple = ()
    expect: object = "pass"  #: "pass", or (exit code, text the error contains)
    why: str = ""  #: for an expected failure: the reason and the issue that covers it


CORPUS = [
    Entry("BertBackbone", "keras-hub", ".keras", "bert.keras", bert_backbone, tuple(_shapes(TEXT))),
    Entry("BertTextClassifier", "keras-hub", ".keras", "bert_classifier.keras", bert_classifier,
          tuple(_shapes(TEXT))),
    Entry("GPT2Backbone", "keras-hub", "SavedModel (model.export())", "gpt2", gpt2_export,
          tuple(_shapes(("token_ids", "padding_mask")))),
    Entry("BartBackbone", "keras-hub", ".keras", "bart.keras", bart_backbone,
          tuple(_shapes(("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
                         "decoder_padding_mask")))),
    Entry("T5Backbone", "keras-hub", ".keras", "t5.keras", t5_backbone,
          tuple(_shapes(("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids",
                         "decoder_padding_mask")))),
    Entry("ViTBackbone", "keras-hub", ".keras", "vit.keras", vit_backbone),
    Entry("ImageClassifier (ResNet)", "keras-hub", "SavedModel (model.export())", "resnet", resnet_classifier_export),
    Entry("Embedding + LSTM", "Keras 3", ".keras", "lstm.keras", keras_lstm),
    Entry("Embedding + Conv1D", "tf_keras", ".h5", "cnn.h5", tf_keras_h5),
    Entry("Embedding + Conv1D", "tf_keras", "tf_keras SavedModel", "cnn_tf", tf_keras_saved_model),
    Entry("tf.Module with variables", "tf.Module", "SavedModel (tf.saved_model.save)", "module", tf_module),
    Entry("tf.function concrete function", "TensorFlow", "concrete function signature", "concrete",
          concrete_function),
    Entry("graph with PlaceholderWithDefault", "TF1", "frozen .pb", "tf1.pb", tf1_frozen_pb),
]

BY_NAME = {f"{e.library}:{e.name}:{e.format}": e for e in CORPUS}


def key(entry: Entry) -> str:
    return f"{entry.library}:{entry.name}:{entry.format}"


if __name__ == "__main__":
    BY_NAME[sys.argv[1]].build(Path(sys.argv[2]))
