"""Converters, grouped by op family; importing this package registers them all."""

from . import (array, conditionals, detection, image, indexing, loops, math, math_ext, matrix, nn,  # noqa: F401
               pooling_ext, quant, segments, special)
