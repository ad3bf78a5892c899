"""TensorFlow's and TensorRT's native log lines go through Python logging, not onto the terminal."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from converter import native_logs

REPO = Path(__file__).resolve().parents[2]

LINES = [
    ("I0000 00:00:1796233158.443772    6859 port.cc:153] oneDNN custom operations are on.", logging.DEBUG),
    ("W0000 00:00:1796233158.4    6859 loader.cc:12] something to know", logging.INFO),
    ("E0000 00:00:1796233123.234370   30873 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
     "Failed call to cuInit: UNKNOWN ERROR (303)", None),  # DEBUG without a GPU, WARNING with one
    ("E0000 00:00:1.2   1 op_kernel.cc:9] a real error", logging.WARNING),
    ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR", logging.DEBUG),
]


@pytest.mark.parametrize("line,level", LINES)
def test_native_lines_are_classified(line, level):
    got, message = native_logs.classify_line(line + "\n")
    if level is None:
        level = logging.WARNING if native_logs.gpu_present() else logging.DEBUG
    assert got == level and message


@pytest.mark.parametrize("line", ["Traceback (most recent call last):", "Segmentation fault", "hello"])
def test_other_lines_pass_through(line):
    assert native_logs.classify_line(line) is None


def test_tensorrt_messages_are_log_records(caplog):
    from converter import trt as trtshim

    trt = trtshim.module()
    logger = trtshim.logger()
    with caplog.at_level(logging.DEBUG, logger="tf2trt.native"):
        logger.log(trt.ILogger.Severity.WARNING, "a layer fell back to a slower tactic")
        logger.log(trt.ILogger.Severity.INFO, "building")
    levels = {r.getMessage(): r.levelno for r in caplog.records}
    assert levels["TensorRT: a layer fell back to a slower tactic"] == logging.WARNING
    assert levels["TensorRT: building"] == logging.DEBUG


def test_a_cli_run_that_imports_tensorflow_prints_no_native_lines(tmp_path):
    """The CLI's stderr holds tf2trt's own output only (TensorFlow's C++ start-up lines become debug records)."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF2TRT_NATIVE_STDERR")}
    env["PYTHONPATH"] = str(REPO)
    # main() routes stderr (as `tf2trt build` does before freezing); TensorFlow starts up afterwards
    code = ("import sys\n"
            "from pipeline.cli import main\n"
            "rc = main(['status', '--artifacts', sys.argv[1]])\n"
            "import tensorflow as tf\n"
            "tf.constant(1.0) + 1.0\n"
            "print('done', file=sys.stderr)\n"
            "sys.exit(rc)\n")
    res = subprocess.run([sys.executable, "-c", code, str(tmp_path / "store")], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "done" in res.stderr, "Python's own stderr output still reaches the terminal"
    for marker in ("I0000", "port.cc", "absl::InitializeLog", "cuInit"):
        assert marker not in res.stderr, res.stderr
