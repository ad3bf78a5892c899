"""Generate the benchmark models (random weights, fixed seed) into a cache dir.

Run with the project's interpreter:  python bench/_models.py resnet50 vgg16 lstm_text [--dir bench/.models]

* resnet50, mobilenetv2, vgg16: tf.keras.applications with weights=None.
* lstm_text, gru_text: a recurrent text classifier, Input((100,), int32) -> Embedding(1000, 64) ->
  LSTM(256) or GRU(256) -> Dense(2, softmax).  Keras 3 saves a plain LSTM/GRU layer; converting it
  means converting the TensorFlow While loop its call traces to (tf2trt: a TensorRT ILoop).
Prints one JSON line {name: path} as the last stdout line.  A model already in the cache is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DIR = HERE / ".models"
SEED = 1234

BUILDERS = {
    "resnet50": "ResNet50",
    "mobilenetv2": "MobileNetV2",
    "vgg16": "VGG16",
}

#: recurrent text classifiers: name -> keras.layers class of the recurrent layer
RECURRENT = {
    "lstm_text": "LSTM",
    "gru_text": "GRU",
}
TEXT_LEN, TEXT_VOCAB, TEXT_EMBED, TEXT_UNITS, TEXT_CLASSES = 100, 1000, 64, 256, 2


def _recurrent_text(keras, cell: str):
    inp = keras.Input((TEXT_LEN,), dtype="int32", name="tokens")
    x = keras.layers.Embedding(TEXT_VOCAB, TEXT_EMBED)(inp)
    x = getattr(keras.layers, cell)(TEXT_UNITS)(x)
    out = keras.layers.Dense(TEXT_CLASSES, activation="softmax")(x)
    return keras.Model(inp, out, name=f"{cell.lower()}_text")


def model_path(name: str, cache_dir: Path = DEFAULT_DIR) -> Path:
    return Path(cache_dir) / f"{name}_seed{SEED}.keras"


def generate(name: str, cache_dir: Path = DEFAULT_DIR) -> Path:
    if name not in BUILDERS and name not in RECURRENT:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join([*BUILDERS, *RECURRENT])}")
    path = model_path(name, cache_dir)
    if path.exists():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
    if name in RECURRENT:
        model = _recurrent_text(keras, RECURRENT[name])
    else:
        model = getattr(tf.keras.applications, BUILDERS[name])(weights=None)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--dir", default=str(DEFAULT_DIR))
    args = ap.parse_args(argv)
    out = {name: str(generate(name, Path(args.dir))) for name in args.models}
    sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
