"""One module per TensorRT layer kind; :data:`KINDS` maps a ``LayerType`` name to its :class:`LayerKind`.

Every module in this package (other than ``base`` and private ``_*`` helpers) is
a layer kind and is imported here, so adding a kind means adding its module —
no list to update.  See :mod:`converter.layers.base` for what a kind module
defines, and ``docs/converter.md`` for the walkthrough.
"""

from __future__ import annotations

import importlib
import pkgutil

from .base import KINDS, LayerKind, LayerParams, kind, register  # noqa: F401

__all__ = ["KINDS", "LayerKind", "LayerParams", "kind", "register", "SUPPORTED_LAYER_TYPES"]


def _import_kinds() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name == "base" or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if not hasattr(module, "KIND"):
            raise RuntimeError(f"converter.layers.{info.name} defines no KIND (every layer module registers one)")


_import_kinds()

#: TensorRT layer types tf2trt can snapshot, rebuild and (for those with ``run``) execute
SUPPORTED_LAYER_TYPES = frozenset(KINDS)
