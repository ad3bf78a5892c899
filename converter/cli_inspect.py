"""tf2trt inspect: a model's inputs, outputs, signatures, op counts and unsupported ops, without converting it.

Shapes show ? for a dimension the model leaves unknown.  The op counts and the
support check need fixed shapes: unknown dimensions are taken as 1 for them
(the output says which), or give shapes with --input.  The ready-to-paste
--input list works for `tf2trt convert` (1 for an unknown batch size).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .cli_convert import HelpFormatter
from .errors import EXIT_OK

log = logging.getLogger(__name__)


def add_inspect_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    from .errors import exit_code_help

    p = subparsers.add_parser("inspect", help="show a model's inputs, outputs, signatures and (unsupported) ops",
                              description=__doc__, epilog=exit_code_help(), formatter_class=HelpFormatter,
                              parents=list(parents))
    p.add_argument("model", help=".keras, .h5, SavedModel directory or frozen .pb")
    p.add_argument("--signature", default=None,
                   help="SavedModel signature to detail (default: serving_default, else the first)")
    p.add_argument("--input", action="append", default=[], metavar="NAME:SHAPE",
                   help="shape for the op counts and the support check, like images:1x224x224x3 (repeatable; "
                        "default: 1 for each unknown dimension)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run_inspect)
    return p


def run_inspect(args) -> int:
    """Inspect ``args.model``; render with rich (to stderr with ``--json``); return the exit code."""
    from rich.console import Console

    from .errors import classify

    console = Console(stderr=args.json)
    result: dict = {"error": None}
    code = EXIT_OK
    try:
        from .freeze import parse_input_spec
        from .inspect import inspect_model

        inputs = dict(parse_input_spec(s) for s in args.input)
        result.update(inspect_model(args.model, signature=args.signature, inputs=inputs or None))
        render(result, console)
    except Exception as exc:  # noqa: BLE001 - rendered as a short message, never a traceback
        code, message, hint = classify(exc)
        result["error"] = message + (f" (hint: {hint})" if hint else "")
        console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
        if hint:
            console.print(f"[yellow]hint:[/] {hint}", highlight=False)
        log.debug("inspect failed", exc_info=True)
    if args.json:
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
        sys.stdout.flush()
    return code


def render(result: dict, console) -> None:
    """The inspection as rich tables: tensors, signatures, op counts, unsupported ops, notes."""
    from rich.markup import escape
    from rich.table import Table

    title = f"{result['model']} ({result['kind']}" + (f", signature {result['signature']}" if result["signature"]
                                                        else "") + ")"
    console.print(f"[bold]{escape(title)}[/]")
    tensors = Table(title="tensors", title_justify="left")
    for column in ("", "name", "shape", "dtype"):
        tensors.add_column(column)
    for kind, key in (("input", "inputs"), ("optional input", "optional_inputs"), ("output", "outputs")):
        for t in result[key]:
            shape = t["display"]
            if t.get("frozen_shape") is not None and t.get("shape") is None:
                shape = f"({'x'.join(str(d) for d in t['frozen_shape']) or 'scalar'} when frozen)"
            tensors.add_row(kind, escape(t["name"]), shape, t.get("dtype") or "?")
    console.print(tensors)
    if result["unused_placeholders"]:
        console.print(f"placeholders nothing the outputs read (not inputs): {escape(', '.join(result['unused_placeholders']))}")
    if result["input_args"]:
        console.print(f"convert with: [bold]{escape(result['input_args'])}[/]", highlight=False, soft_wrap=True)
    if len(result["signatures"]) > 1:
        sigs = Table(title="signatures", title_justify="left")
        for column in ("signature", "inputs", "outputs"):
            sigs.add_column(column)
        for name, sig in result["signatures"].items():
            sigs.add_row(escape(name) + (" *" if name == result["signature"] else ""),
                         escape(", ".join(f"{t['name']}:{t['display']}" for t in sig["inputs"])),
                         escape(", ".join(f"{t['name']}:{t['display']}" for t in sig["outputs"])))
        console.print(sigs)
    if result["op_counts"] is not None:
        ops = Table(title=f"ops ({sum(result['op_counts'].values())} nodes)", title_justify="left")
        ops.add_column("op")
        ops.add_column("count", justify="right")
        unsupported = result["unsupported"] or {}
        for op, count in sorted(result["op_counts"].items(), key=lambda kv: (-kv[1], kv[0])):
            ops.add_row(escape(op), str(count))
        console.print(ops)
        if unsupported:
            bad = Table(title="not supported by tf2trt", title_justify="left")
            for column in ("problem", "count", "nodes"):
                bad.add_column(column)
            for op, count in unsupported.items():
                bad.add_row(escape(op), str(count), escape(", ".join(result["unsupported_examples"].get(op, []))))
            console.print(bad)
        else:
            console.print("[green]every op is supported[/]")
    if result["freeze_error"]:
        console.print(f"[yellow]could not freeze for the op count:[/] {escape(result['freeze_error'])}")
    for note in result["notes"]:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tf2trt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_inspect_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
