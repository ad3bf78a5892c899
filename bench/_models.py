"""Generate the benchmark models (tf.keras.applications, weights=None, fixed seed) into a cache dir.

Run with the project's interpreter:  python bench/_models.py resnet50 vgg16 [--dir bench/.models]
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


def model_path(name: str, cache_dir: Path = DEFAULT_DIR) -> Path:
    return Path(cache_dir) / f"{name}_seed{SEED}.keras"


def generate(name: str, cache_dir: Path = DEFAULT_DIR) -> Path:
    if name not in BUILDERS:
        raise SystemExit(f"unknown model {name!r}; known: {', '.join(BUILDERS)}")
    path = model_path(name, cache_dir)
    if path.exists():
        return path
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(SEED)
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
