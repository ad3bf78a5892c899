"""Errors that carry the TF node they are about, and collections of them.

A conversion pass collects every problem it finds before failing (like
tf2onnx's ``Unsupported ops: Counter(...)``) so a user fixes them all in one go.
"""

from __future__ import annotations

from collections import Counter


class Tf2TrtError(Exception):
    """Base class of every error this package raises on purpose."""

    hint: str | None = None


class ConversionError(Tf2TrtError):
    """A problem converting one TF node."""

    def __init__(self, node: str | None, op: str | None, message: str, hint: str | None = None):
        self.node = node
        self.op = op
        self.message = message
        self.hint = hint
        where = f"{op} node '{node}'" if node else (op or "graph")
        text = f"{where}: {message}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)


class ConversionErrors(Tf2TrtError):
    """Several conversion problems found in one pass."""

    def __init__(self, errors: list[ConversionError], summary: str | None = None):
        self.errors = list(errors)
        hints = sorted({e.hint for e in self.errors if e.hint})
        self.hint = "; ".join(hints) if hints else None
        lines = [summary or f"{len(self.errors)} conversion problem(s):"]
        lines += [f"  - {e}" for e in self.errors]
        super().__init__("\n".join(lines))


class UnsupportedOpsError(ConversionErrors):
    """Ops without a converter, found before any layer is built."""

    def __init__(self, errors: list[ConversionError], counts: Counter, examples: dict[str, list[str]]):
        self.counts = counts
        self.examples = examples
        parts = []
        for op, count in counts.most_common():
            names = ", ".join(examples[op][:3])
            more = "" if count <= 3 else f", … {count - 3} more"
            parts.append(f"{op} ×{count} ({names}{more})")
        summary = f"Unsupported ops: {dict(counts.most_common())}\n  " + "\n  ".join(parts)
        ConversionErrors.__init__(self, errors, summary)
        # keep the message compact: the summary already lists every op
        self.args = (summary + "\n  hint: " + (self.hint or ""),)


class FreezeError(Tf2TrtError):
    """The model could not be loaded or frozen into one GraphDef."""

    def __init__(self, message: str, hint: str | None = None):
        self.hint = hint
        super().__init__(message + (f" (hint: {hint})" if hint else ""))
