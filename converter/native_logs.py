"""TensorFlow's and TensorRT's native log lines, routed through Python logging.

TensorFlow 2.21's C++ runtime writes ``I0000 … port.cc:153] oneDNN custom operations are on``, ``Could not
find cuda drivers`` and, without a GPU, ``E0000 … failed call to cuInit: … UNKNOWN ERROR (303)`` straight
to file descriptor 2, before absl's logging is initialised — ``TF_CPP_MIN_LOG_LEVEL`` no longer hides them.
On a CPU-only machine every run (successful ones included) printed them, glued onto the progress line.

:func:`route_native_stderr` (called by the CLI, never on import: a library must not take over a process's
stderr) points fd 2 at a pipe, keeps Python's own ``sys.stderr`` on the original terminal, and turns each
native line into a record of the ``tf2trt.native`` logger: info lines at DEBUG, warnings at INFO, errors at
WARNING — except GPU-probing errors on a machine without a GPU, which are expected and go to DEBUG.  Lines
that do not look like native log lines (a crash report, a Python warning printed by C code) are passed
through to the terminal unchanged.  TensorRT's messages take the same route through the ``ILogger`` in
:func:`converter.trt.logger`.
"""

from __future__ import annotations

import io
import logging
import os
import re
import sys
import threading

from converter.trt import gpu_present  # one definition of "is there a GPU here"

log = logging.getLogger("tf2trt.native")

#: absl / TSL prefixes: severity letter, MMDD, time, thread, file:line]
_ABSL = re.compile(r"^(?P<sev>[IWEF])\d{4} [\d:.]+\s+\d+ (?P<where>[^\]]+)\] (?P<msg>.*)$")
#: the banner absl prints once before its logging is initialised
_BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
#: errors that only say "there is no GPU here" (expected on CPU-only machines)
_NO_GPU = re.compile(r"cuInit|cuda_platform|CUDA_ERROR_NO_DEVICE|cudaError 35|cuda drivers|"
                     r"CUDA driver version is insufficient|no CUDA-capable device|timing cache", re.IGNORECASE)

_LEVELS = {"I": logging.DEBUG, "W": logging.INFO, "E": logging.WARNING, "F": logging.ERROR}

_routed = False
_lock = threading.Lock()




def classify_line(line: str) -> tuple[int, str] | None:
    """``(logging level, message)`` for a native log line, or None for anything else."""
    text = line.rstrip("\n")
    if text.strip() == _BANNER:
        return logging.DEBUG, text
    match = _ABSL.match(text)
    if match is None:
        return None
    level = _LEVELS[match["sev"]]
    message = f"{match['where']}: {match['msg']}"
    if level >= logging.WARNING and level < logging.ERROR and not gpu_present() and _NO_GPU.search(message):
        level = logging.DEBUG
    return level, message


def _pump(read_fd: int, passthrough) -> None:
    with os.fdopen(read_fd, "r", encoding="utf-8", errors="replace", newline="") as pipe:
        for line in pipe:
            kind = classify_line(line)
            if kind is None:
                try:
                    passthrough.write(line)
                    passthrough.flush()
                except (OSError, ValueError):
                    pass
                continue
            log.log(kind[0], "%s", kind[1])


def route_native_stderr() -> bool:
    """Send native writes to fd 2 through :data:`log`; Python's ``sys.stderr`` keeps the real stderr.

    Idempotent; returns whether routing is active.  A no-op where fd 2 cannot be duplicated.
    """
    global _routed
    with _lock:
        if _routed:
            return True
        try:
            sys.stderr.flush()
            original = os.dup(2)
            read_fd, write_fd = os.pipe()
            os.dup2(write_fd, 2)
            os.close(write_fd)
        except (OSError, ValueError, AttributeError):
            return False
        terminal = io.TextIOWrapper(os.fdopen(original, "wb", buffering=0), encoding="utf-8",
                                    errors="backslashreplace", line_buffering=True, write_through=True)
        sys.stderr = terminal
        for handler in logging.getLogger().handlers:  # handlers made before now still point at the pipe
            if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.__stderr__:
                handler.setStream(terminal)
        threading.Thread(target=_pump, args=(read_fd, terminal), name="tf2trt-native-stderr", daemon=True).start()
        _routed = True
        return True
