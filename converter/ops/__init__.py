"""Converters, grouped by op family; importing this package registers them all."""

from . import array, image, math, nn, quant  # noqa: F401
from . import pooling_ext  # noqa: F401
from . import detection  # noqa: F401
