"""The ops the converter handles structurally, known in this one place.

Freezing, the support check, the constructor and the static-value analysis all
ask these sets; nothing else lists them.

* :data:`PASS_THROUGH_OPS` forward their data input 0 unchanged (no layer).
  Freezing bypasses them except where they carry a public name (outputs);
  the constructor forwards the value of input 0.  ``PlaceholderWithDefault``
  is one of them: an inference graph only ever sees its default (it is not a
  declarable input), and its default must be a constant or computable.
* :data:`CONTROL_ONLY_OPS` produce no data, only control dependencies (which
  freezing and the IR drop); the constructor skips them.  A data edge from one
  is an error of the support check.
* :data:`SOURCE_OPS` start the graph: a ``Const`` becomes weights or a
  constant; a ``Placeholder`` must be a declared input of the graph (an
  undeclared one is reported by the support check).

This module imports nothing heavy so ``converter.freeze`` can use it.
"""

from __future__ import annotations

#: ops whose output 0 is their data input 0
PASS_THROUGH_OPS = frozenset({
    "Identity", "Snapshot", "StopGradient", "PreventGradient", "EnsureShape", "CheckNumerics",
    "PlaceholderWithDefault",
})
#: ops with no data output: only control edges reach them; dropped
CONTROL_ONLY_OPS = frozenset({"NoOp"})
#: ops with no data input that produce a value
SOURCE_OPS = frozenset({"Const", "Placeholder"})
#: every op the constructor handles itself rather than through a registered converter
STRUCTURAL_OPS = PASS_THROUGH_OPS | CONTROL_ONLY_OPS | SOURCE_OPS

#: what the generated op docs say of a pass-through op
PASS_THROUGH_DOC = "no layer: the input passes through"


def kind(op: str) -> str | None:
    """``'pass-through'``, ``'control'``, ``'source'`` or None for any other op."""
    if op in PASS_THROUGH_OPS:
        return "pass-through"
    if op in CONTROL_ONLY_OPS:
        return "control"
    if op in SOURCE_OPS:
        return "source"
    return None


__all__ = ["PASS_THROUGH_OPS", "CONTROL_ONLY_OPS", "SOURCE_OPS", "STRUCTURAL_OPS", "PASS_THROUGH_DOC", "kind"]
