"""The keras.applications zoo: one row per architecture, with the input size the zoo test uses.

``family`` groups architectures; the slow-tier zoo test runs one model per
family at a reduced input size (where the architecture allows it), and
``bench/zoo.py`` runs every row at its default size.
"""

from __future__ import annotations

# name, family, default input side, reduced input side for the test
ZOO = [
    ("ConvNeXtTiny", "ConvNeXt", 224, 64), ("ConvNeXtSmall", "ConvNeXt", 224, 64),
    ("ConvNeXtBase", "ConvNeXt", 224, 64), ("ConvNeXtLarge", "ConvNeXt", 224, 64),
    ("ConvNeXtXLarge", "ConvNeXt", 224, 64),
    ("DenseNet121", "DenseNet", 224, 64), ("DenseNet169", "DenseNet", 224, 64), ("DenseNet201", "DenseNet", 224, 64),
    ("EfficientNetB0", "EfficientNet", 224, 64), ("EfficientNetB1", "EfficientNet", 240, 64),
    ("EfficientNetB2", "EfficientNet", 260, 64), ("EfficientNetB3", "EfficientNet", 300, 64),
    ("EfficientNetB4", "EfficientNet", 380, 64), ("EfficientNetB5", "EfficientNet", 456, 64),
    ("EfficientNetB6", "EfficientNet", 528, 64), ("EfficientNetB7", "EfficientNet", 600, 64),
    ("EfficientNetV2B0", "EfficientNetV2", 224, 64), ("EfficientNetV2B1", "EfficientNetV2", 240, 64),
    ("EfficientNetV2B2", "EfficientNetV2", 260, 64), ("EfficientNetV2B3", "EfficientNetV2", 300, 64),
    ("EfficientNetV2S", "EfficientNetV2", 384, 64), ("EfficientNetV2M", "EfficientNetV2", 480, 64),
    ("EfficientNetV2L", "EfficientNetV2", 480, 64),
    ("InceptionResNetV2", "InceptionResNetV2", 299, 75), ("InceptionV3", "InceptionV3", 299, 75),
    ("MobileNet", "MobileNet", 224, 64), ("MobileNetV2", "MobileNetV2", 224, 64),
    ("MobileNetV3Large", "MobileNetV3", 224, 64), ("MobileNetV3Small", "MobileNetV3", 224, 64),
    ("NASNetLarge", "NASNet", 331, 64), ("NASNetMobile", "NASNet", 224, 64),
    ("ResNet50", "ResNet", 224, 64), ("ResNet101", "ResNet", 224, 64), ("ResNet152", "ResNet", 224, 64),
    ("ResNet50V2", "ResNetV2", 224, 64), ("ResNet101V2", "ResNetV2", 224, 64), ("ResNet152V2", "ResNetV2", 224, 64),
    ("VGG16", "VGG", 224, 64), ("VGG19", "VGG", 224, 64),
    ("Xception", "Xception", 299, 71),
]


def representatives() -> list[tuple[str, str, int, int]]:
    """The smallest architecture of each family (the first row of each family in ZOO order by size)."""
    first = {}
    for row in ZOO:
        first.setdefault(row[1], row)
    preferred = {"ConvNeXt": "ConvNeXtTiny", "NASNet": "NASNetMobile", "MobileNetV3": "MobileNetV3Small",
                 "EfficientNet": "EfficientNetB0", "EfficientNetV2": "EfficientNetV2B0"}
    rows = {r[0]: r for r in ZOO}
    return [rows[preferred.get(family, row[0])] for family, row in first.items()]


def build(name: str, side: int | None, seed: int = 0):
    """The architecture with weights=None and a fixed seed (nothing is downloaded)."""
    import keras

    keras.utils.set_random_seed(seed)
    kwargs = {"weights": None}
    if side is not None:
        kwargs["input_shape"] = (side, side, 3)
    return getattr(keras.applications, name)(**kwargs)
