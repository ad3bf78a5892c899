"""Command-line polish: --version, flags after the subcommand, sizes, help text with defaults and exit codes."""

from __future__ import annotations

import logging

import pytest

from converter.units import parse_size
from pipeline.cli import build_parser, main, version_text


def test_version_names_tf2trt_tensorflow_and_tensorrt(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("tf2trt ") and "TensorFlow " in out and "tensorrt" in out
    assert out.strip() == version_text()


@pytest.mark.parametrize("argv", [["-v", "status"], ["status", "-v"], ["status", "--verbose"],
                                  ["build", "configs", "-v"], ["convert", "m.pb", "--engine", "e.plan", "-v"]])
def test_verbose_before_or_after_the_subcommand(argv):
    assert build_parser().parse_args(argv).verbose is True


def test_not_verbose_by_default():
    assert build_parser().parse_args(["status"]).verbose is False


@pytest.mark.parametrize("text,size", [("1073741824", 2**30), ("1GiB", 2**30), ("512MiB", 2**29),
                                       ("1.5GB", 1_500_000_000), ("64k", 64_000), ("2 MiB", 2 * 2**20)])
def test_sizes(text, size):
    assert parse_size(text) == size
    args = build_parser().parse_args(["convert", "m.pb", "--engine", "e.plan", "--workspace", text])
    assert args.workspace == size


@pytest.mark.parametrize("bad", ["0", "-1", "lots", "1XB", ""])
def test_bad_sizes_are_usage_errors(bad, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["convert", "m.pb", "--engine", "e.plan", "--workspace", bad])
    assert exc.value.code == 2
    assert "--workspace" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--help"], ["convert", "--help"]])
def test_help_is_plain_text_with_defaults_and_exit_codes(argv, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    out = capsys.readouterr().out
    assert "exit codes:" in out
    for code in ("0", "1", "2", "3"):
        assert f"  {code}  " in out
    assert "``" not in out and "\x1b" not in out
    if "convert" in argv:
        assert "(default: 3)" in out and "(default: 1e-4 for fp32" in out and "(default: None)" not in out


def _record(name: str, msg: str, level=logging.ERROR, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


def test_the_terminal_leaves_run_logs_to_the_dashboard_unless_verbose():
    from pipeline.cli import TerminalLogFilter

    quiet, verbose = TerminalLogFilter(False), TerminalLogFilter(True)
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        assert not quiet.filter(_record(name, "freeze: unknown input name(s)"))
        assert verbose.filter(_record(name, "freeze: unknown input name(s)"))
    assert quiet.filter(_record("prefect.client", "cannot reach the API"))  # not a run log: shown
    assert quiet.filter(_record("pipeline", "a warning of ours"))
    rec = _record("prefect.task_runs", "Finished in state Failed", exc_info=(None, None, None))
    assert verbose.filter(rec) and rec.exc_info is None
    assert "NoneType" not in logging.Formatter().format(rec)


def test_prefect_state_lines_match_our_states():
    """The raw "Task run failed with state" dump is dropped (the stage said why); a skip is not an ERROR."""
    from pipeline.flows import _StageStateLogFilter

    f = _StageStateLogFilter()
    assert not f.filter(_record("prefect.task_runs", "Task run failed with state: Failed(message='x')",
                                exc_info=(None, None, None)))
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        crashed = _record("prefect.task_runs", "Task run failed with exception: ValueError('boom')",
                          exc_info=sys.exc_info())
    assert f.filter(crashed) and crashed.levelno == logging.ERROR  # a real crash keeps its traceback
    skipped = _record("prefect.task_runs", "Finished in state Skipped('skipped: freeze failed', type=CANCELLED)")
    assert f.filter(skipped) and skipped.levelno == logging.INFO and skipped.levelname == "INFO"
    failed = _record("prefect.task_runs", "Finished in state Failed('freeze: bad')")
    assert f.filter(failed) and failed.levelno == logging.ERROR
    assert any(isinstance(x, _StageStateLogFilter) for x in logging.getLogger("prefect.task_runs").filters)
