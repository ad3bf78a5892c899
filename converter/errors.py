"""One error tree: every error tf2trt raises on purpose carries a message, a hint and an exit code.

Exit codes (the CLI's, documented in the README and ``tf2trt convert --help``):

====  =====================================================================
0     success
1     verification ran and an output differs from TensorFlow beyond tolerance
2     bad input: a model file, input/output name, shape, config value, input
      data out of the model's domain, an unsupported op, a missing tool — a
      problem the user can fix
3     internal error: a bug in tf2trt (a converter built something TensorRT or
      the reference executor refuses); the message says so and how to report it
====  =====================================================================

A conversion pass collects every problem it finds before failing (like
tf2onnx's ``Unsupported ops: Counter(...)``) so a user fixes them all in one go.
Messages never carry terminal colour codes: Keras and TensorFlow put ANSI
sequences into some of theirs, which :func:`strip_ansi` removes.
"""

from __future__ import annotations

import re
from collections import Counter

EXIT_OK = 0
EXIT_VERIFY_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 3

#: the meaning of each exit code, as shown by ``--help`` and the README
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_VERIFY_FAILED: "verification failed (an output differs from TensorFlow beyond tolerance)",
    EXIT_BAD_INPUT: "bad input (model file, names, shapes, config, unsupported ops, input values, environment)",
    EXIT_INTERNAL: "internal error (a tf2trt bug: please report it with the model)",
}

REPORT_HINT = ("this is a bug in tf2trt: please report it at the project's issue tracker with the model (or its "
               "frozen .pb) and the command line, and run with -v for the full traceback")

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[@-Z\\-_]")


def strip_ansi(text: str) -> str:
    """``text`` without terminal escape sequences (colours, cursor moves)."""
    return _ANSI.sub("", text)


def exit_code_help() -> str:
    """The exit codes as plain lines, for ``--help`` epilogs."""
    return "exit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items())


class Tf2TrtError(Exception):
    """Base class of every error this package raises on purpose: ``message``, ``hint``, ``exit_code``.

    ``str(error)`` is the message followed by ``(hint: …)`` so a bare traceback
    still shows both; renderers use :attr:`message` and :attr:`hint` separately.
    """

    exit_code: int = EXIT_BAD_INPUT
    hint: str | None = None

    def __init__(self, message: str, hint: str | None = None):
        self.message = strip_ansi(str(message))
        self.hint = strip_ansi(hint) if hint else None
        super().__init__(self.message + (f" (hint: {self.hint})" if self.hint else ""))


# ---------------------------------------------------------------- bad input (exit 2)

class ModelError(Tf2TrtError):
    """The model or what was asked of it is wrong: a file, a name, a shape, an input value."""


class FreezeError(ModelError):
    """The model could not be loaded or frozen into one GraphDef."""


class DamagedGraphError(ModelError):
    """A stored parsed graph (the blob parse hands construct) cannot be decoded: truncated, edited, another format.

    Bad input, not a bug: the blob is rebuilt from the frozen graph by parsing it again.
    """

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint or "parse the frozen graph again (the pipeline rebuilds a blob that fails "
                                          "its hash check; remove the store's copy to force it)")


class EnvironmentProblem(Tf2TrtError):
    """Something this machine lacks (TensorRT module, GPU, driver, disk space)."""


class ConversionError(Tf2TrtError):
    """A problem converting one TF node (its attributes or inputs are outside what can be converted)."""

    def __init__(self, node: str | None, op: str | None, message: str, hint: str | None = None):
        self.node = node
        self.op = op
        where = f"{op} node '{node}'" if node else (op or "graph")
        Tf2TrtError.__init__(self, f"{where}: {message}", hint)
        self.detail = strip_ansi(message)


class ConversionErrors(Tf2TrtError):
    """Several conversion problems found in one pass."""

    def __init__(self, errors: list[ConversionError], summary: str | None = None):
        self.errors = list(errors)
        hints = sorted({e.hint for e in self.errors if e.hint})
        lines = [summary or f"{len(self.errors)} conversion problem(s):"]
        lines += [f"  - {e}" for e in self.errors]
        Tf2TrtError.__init__(self, "\n".join(lines), "; ".join(hints) if hints else None)
        if any(e.exit_code == EXIT_INTERNAL for e in self.errors):
            self.exit_code = EXIT_INTERNAL


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
        self.errors = list(errors)
        hints = sorted({e.hint for e in self.errors if e.hint})
        # the message stays compact: the summary already lists every op
        Tf2TrtError.__init__(self, summary, "; ".join(hints) if hints else None)


class VerificationError(Tf2TrtError):
    """Verification could not run (inputs that do not fit the model, outputs TensorFlow cannot produce)."""


# ---------------------------------------------------------------- verification failed (exit 1)

class VerificationFailed(Tf2TrtError):
    """Verification ran and at least one output differs from TensorFlow beyond its tolerance."""

    exit_code = EXIT_VERIFY_FAILED


# ---------------------------------------------------------------- internal (exit 3)

class InternalError(Tf2TrtError):
    """A bug in tf2trt; the hint says how to report it."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message, hint or REPORT_HINT)


class SnapshotError(InternalError):
    """A network cannot be snapshotted, or a snapshot cannot be rebuilt into a network."""


class DamagedSnapshotError(SnapshotError):
    """A stored snapshot cannot be decoded (truncated, edited, or from an incompatible tf2trt)."""

    exit_code = EXIT_BAD_INPUT


class ExecutorError(InternalError):
    """The reference executor cannot evaluate a layer (or was given feeds that do not fit)."""


class FeedError(ExecutorError):
    """Feeds given to a network do not match its inputs (names, dtypes, shapes): the caller's mistake."""

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None):
        Tf2TrtError.__init__(self, message, hint or "feed one array per network input, with its dtype and shape")


class UnsupportedLayerError(ExecutorError):
    """The executor has no implementation for a layer's type (or for one of its modes)."""

    def __init__(self, layer_name: str, layer_type: str, detail: str = ""):
        self.layer_name = layer_name
        self.layer_type = layer_type
        msg = f"layer {layer_name!r} of type {layer_type} is not supported by the reference executor"
        if detail:
            msg += f": {detail}"
        super().__init__(msg, "verify on a GPU with the engine itself, or report the missing layer semantics")


class EngineBuildError(InternalError):
    """TensorRT refused to build an engine from a network tf2trt constructed."""


def classify(exc: BaseException) -> tuple[int, str, str | None]:
    """``(exit code, message, hint)`` for any exception reaching a command line's top level."""
    if isinstance(exc, Tf2TrtError):
        return exc.exit_code, exc.message, exc.hint
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return EXIT_BAD_INPUT, strip_ansi(str(exc)), "check the path"
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 122):  # ENOSPC, EDQUOT
        return EXIT_BAD_INPUT, strip_ansi(str(exc)), "free disk space or point the store elsewhere"
    return EXIT_INTERNAL, f"internal error: {type(exc).__name__}: {strip_ansi(str(exc))}", REPORT_HINT
