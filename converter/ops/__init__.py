"""Converters, grouped by op family; importing this package registers them all."""

from . import array, math, nn  # noqa: F401
