"""The converter registry: one decorator, one signature.

A converter is ``fn(ctx, node, inputs) -> Value | list[Value]`` where ``inputs``
are the node's data inputs as :class:`~converter.context.Value` objects.  It
registers with ``@tf_op("OpName", ...)`` and states, for the generated op docs,
which TensorRT layers it becomes and what it cannot do.  ``check(node, graph)``
returns the problems the support check reports before anything is built.
Registering an op twice is a programming error and fails at import time.

The structural ops of :mod:`converter.structural` (Const, Placeholder, NoOp and
the pass-through ops) are handled by the support check and the constructor
themselves; the entries registered for Const and the pass-through ops document
them (and give their converter for direct use), they are not dispatched to.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .errors import ConversionError


@dataclass
class OpEntry:
    op: str
    convert: Callable
    layers: tuple[str, ...] = ()
    restrictions: str = ""
    checks: list[Callable] = field(default_factory=list)
    module: str = ""

    def check(self, node, graph) -> list[ConversionError]:
        problems = []
        for fn in self.checks:
            result = fn(node, graph)
            if result:
                problems.extend(result if isinstance(result, list) else [result])
        return problems


REGISTRY: dict[str, OpEntry] = {}


class DuplicateConverterError(RuntimeError):
    pass


def tf_op(*ops: str, layers=(), restrictions: str = "", check: Callable | None = None):
    """Register ``fn`` as the converter of each TF op name in ``ops``."""

    def decorate(fn):
        for op in ops:
            if op in REGISTRY:
                raise DuplicateConverterError(
                    f"op {op} already has a converter ({REGISTRY[op].module}.{REGISTRY[op].convert.__name__}); "
                    f"refusing {fn.__module__}.{fn.__name__}"
                )
            REGISTRY[op] = OpEntry(op, fn, tuple(layers), restrictions, [check] if check else [], fn.__module__)
        return fn

    return decorate


def supported_ops() -> list[str]:
    from . import ops  # noqa: F401 - importing registers every converter

    return sorted(REGISTRY)
