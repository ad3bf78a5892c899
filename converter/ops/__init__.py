"""Converters, grouped by op family; importing this package registers them all."""

from . import (array, detection, image, indexing, math, math_ext, matrix, nn, pooling_ext, quant,  # noqa: F401
               segments, special)
