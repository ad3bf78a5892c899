"""Command-line polish: --version, flags after the subcommand, sizes, help text with defaults and exit codes."""

from __future__ import annotations

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
        assert "(default: 3)" in out and "(default: 0.0001)" in out and "(default: None)" not in out
