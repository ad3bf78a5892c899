"""Converters, grouped by op family; importing this package registers them all."""

from . import array, image, math, nn, quant  # noqa: F401
from . import math_ext  # noqa: F401
from . import special  # noqa: F401
from . import matrix  # noqa: F401
from . import segments  # noqa: F401
