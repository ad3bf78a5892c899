"""The error tree: every class carries message, hint and its documented exit code."""

from __future__ import annotations

import errno

import pytest

from converter import errors
from converter.engine import EngineBuildError
from converter.reference import ExecutorError, FeedError, UnsupportedLayerError
from converter.runtime import RuntimeUnavailable
from converter.snapshot import DamagedSnapshotError, SnapshotError
from converter.verify import VerificationError

CLASSES = [
    (errors.FreezeError, ("model.keras is not a Keras model",), errors.EXIT_BAD_INPUT),
    (errors.ModelError, ("no input named 'images'",), errors.EXIT_BAD_INPUT),
    (errors.ConversionError, ("conv", "Conv2D", "filter must be constant"), errors.EXIT_BAD_INPUT),
    (VerificationError, ("inputs.npz lacks 'x'",), errors.EXIT_BAD_INPUT),
    (RuntimeUnavailable, ("no GPU",), errors.EXIT_BAD_INPUT),
    (FeedError, ("feed 'x' has shape (2,)",), errors.EXIT_BAD_INPUT),
    (DamagedSnapshotError, ("damaged network snapshot",), errors.EXIT_BAD_INPUT),
    (errors.VerificationFailed, ("output 'y' differs",), errors.EXIT_VERIFY_FAILED),
    (EngineBuildError, ("TensorRT refused the network",), errors.EXIT_INTERNAL),
    (SnapshotError, ("layer type PLUGIN_V3",), errors.EXIT_INTERNAL),
    (ExecutorError, ("layer 'a' failed",), errors.EXIT_INTERNAL),
    (UnsupportedLayerError, ("a", "NMS"), errors.EXIT_INTERNAL),
    (errors.InternalError, ("converter built a dangling tensor",), errors.EXIT_INTERNAL),
]


@pytest.mark.parametrize("cls,args,code", CLASSES, ids=lambda v: getattr(v, "__name__", None))
def test_each_error_has_message_hint_and_exit_code(cls, args, code):
    kwargs = {} if cls in (errors.ConversionError, UnsupportedLayerError) else {"hint": "do this"}
    if cls is errors.ConversionError:
        exc = cls(*args, hint="do this")
    else:
        exc = cls(*args, **kwargs)
    assert isinstance(exc, errors.Tf2TrtError)
    assert exc.exit_code == code
    assert exc.message and exc.hint
    got_code, message, hint = errors.classify(exc)
    assert (got_code, message, hint) == (code, exc.message, exc.hint)
    if code == errors.EXIT_INTERNAL and cls is not UnsupportedLayerError and "hint" not in kwargs:
        assert "report" in exc.hint


def test_internal_errors_say_how_to_report_them():
    exc = errors.InternalError("converter built a dangling tensor")
    assert "bug in tf2trt" in exc.hint and "report" in exc.hint


def test_messages_carry_no_terminal_colour_codes():
    exc = errors.FreezeError("\x1b[1mlayer\x1b[0m \x1b[31m'dense'\x1b[0m expects 2 inputs", hint="\x1b[33mfix\x1b[0m")
    assert exc.message == "layer 'dense' expects 2 inputs" and exc.hint == "fix"
    assert "\x1b" not in str(exc)


def test_unexpected_exceptions_are_internal_and_os_errors_are_the_users():
    code, message, hint = errors.classify(KeyError("x"))
    assert code == errors.EXIT_INTERNAL and message.startswith("internal error: KeyError") and "report" in hint
    assert errors.classify(FileNotFoundError(2, "No such file", "m.keras"))[0] == errors.EXIT_BAD_INPUT
    assert errors.classify(OSError(errno.ENOSPC, "No space left on device"))[0] == errors.EXIT_BAD_INPUT


def test_a_pass_with_an_internal_problem_is_internal():
    user = errors.ConversionError("a", "Reshape", "shape must be constant")
    bug = errors.ConversionError("b", "Conv2D", "TensorRT refused the layer")
    bug.exit_code = errors.EXIT_INTERNAL
    assert errors.ConversionErrors([user]).exit_code == errors.EXIT_BAD_INPUT
    assert errors.ConversionErrors([user, bug]).exit_code == errors.EXIT_INTERNAL


def test_exit_code_help_lists_all_four():
    text = errors.exit_code_help()
    for code in (0, 1, 2, 3):
        assert f"  {code}  " in text
