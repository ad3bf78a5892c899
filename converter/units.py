"""Byte sizes as people write them: ``1073741824``, ``512MiB``, ``1GiB``, ``1.5GB``, ``64k``."""

from __future__ import annotations

import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B?|B)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "k": 1000, "kb": 1000, "kib": 2**10, "ki": 2**10, "m": 1000**2, "mb": 1000**2, "mib": 2**20,
          "mi": 2**20, "g": 1000**3, "gb": 1000**3, "gib": 2**30, "gi": 2**30, "t": 1000**4, "tb": 1000**4,
          "tib": 2**40, "ti": 2**40}


def parse_size(value) -> int:
    """A positive number of bytes from an int or a size string (SI units: kB, MB; binary: KiB, MiB, GiB)."""
    if isinstance(value, bool):
        raise ValueError("a size must be a number of bytes or a string like '512MiB'")
    if isinstance(value, int):
        size = value
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError(f"cannot read {value!r} as a size (use bytes or a size like 512MiB, 1GiB)")
        size = int(float(m.group(1)) * _UNITS[(m.group(2) or "B").lower()])
    if size <= 0:
        raise ValueError("a size must be a positive number of bytes")
    return size
