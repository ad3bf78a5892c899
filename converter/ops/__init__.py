"""Converters, grouped by op family; importing this package registers them all."""

from . import array, conditionals, image, loops, math, nn, quant  # noqa: F401
