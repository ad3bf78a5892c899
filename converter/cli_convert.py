"""tf2trt convert: one model to one engine, all five steps (freeze, parse, construct, optimize, verify) in one
process, without the pipeline's cache.

On failure it prints a short error and a hint, no traceback, and writes no engine file, except when only
verification failed (exit 1: the engine is kept and the JSON says which outputs differ) or could not run
(exit 2, e.g. TensorFlow rejects the generated inputs: the engine is kept, unverified, and the message says so).

--verify feeds real inputs (--inputs-npz) or seeded random ones that fit the model: integer inputs that index
an embedding/gather table get values below its size, inputs cast to bool are padding masks; --input-range and
--input-value override that per input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from .errors import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, EXIT_VERIFY_FAILED  # noqa: F401 - re-exported
from .structural import STRUCTURAL_OPS
STAGES = ("freeze", "parse", "construct", "optimize", "verify")


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written (plain text), and each option's default where it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if ("default" in text or default is None or default is False or default == argparse.SUPPRESS
                or not action.option_strings
                or isinstance(default, list) and not default):
            return text
        return f"{text} (default: {default})"


def size_arg(text: str) -> int:
    """argparse type for byte sizes: ``1073741824``, ``512MiB``, ``1GiB``, ``1.5GB``."""
    from .units import parse_size

    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_convert_parser(subparsers, parents=()) -> argparse.ArgumentParser:
    from .errors import exit_code_help

    p = subparsers.add_parser("convert", help="convert one TensorFlow model into a TensorRT engine",
                              description=__doc__, epilog=exit_code_help(), formatter_class=HelpFormatter,
                              parents=list(parents))
    p.add_argument("model", help=".keras, .h5, SavedModel directory or frozen .pb")
    p.add_argument("--engine", required=True, help="where to write the serialized engine (.plan)")
    p.add_argument("--input", action="append", default=[], metavar="NAME:SHAPE",
                   help="static input shape like images:1x224x224x3 (repeatable)")
    p.add_argument("--profile", action="append", default=[], metavar="NAME:MIN,OPT,MAX",
                   help="keep an input's unknown dimensions dynamic over a range, e.g. token_ids:1x16,8x128,32x512 "
                        "(repeatable; naming an input again adds a further optimization profile)")
    p.add_argument("--batch-range", type=_batch_range_arg, default=None, metavar="MIN,OPT,MAX",
                   help="batch sizes an unknown batch dimension serves when neither --input nor --profile gives "
                        "that input a shape; 1,1,1 builds a static batch-1 network (default: "
                        f"{','.join(map(str, _default_batch_range()))})")
    p.add_argument("--max-input-size", type=size_arg, default=None, metavar="SIZE",
                   help="refuse shapes whose inputs (at a profile's max) take more than this, before anything is "
                        "built: bytes or a size like 16GiB (default: $TF2TRT_MAX_INPUT_BYTES, else 4GiB)")
    p.add_argument("--output", action="append", default=[], metavar="NAME", help="output to keep (repeatable)")
    p.add_argument("--signature", default="serving_default", help="SavedModel signature")
    p.add_argument("--trust-model-code", action="store_true",
                   help="allow Keras files whose Lambda layers or custom objects run Python code when loaded "
                        "(refused by default: model files from elsewhere are untrusted)")
    p.add_argument("--verify", action="store_true", help="compare with TensorFlow after building")
    p.add_argument("--check-intermediates", action="store_true",
                   help="with --verify, also compare every intermediate TF tensor that has a TensorRT counterpart")
    p.add_argument("--inputs-npz", help="real inputs for --verify (arrays named after the inputs)")
    p.add_argument("--input-range", action="append", default=[], metavar="NAME:LOW:HIGH",
                   help="values of one input's random --verify data: integers (for integer and bool inputs) or "
                        "uniform floats in [LOW, HIGH), HIGH exclusive, e.g. segment_ids:0:2 (repeatable; overrides "
                        "the range derived from the graph)")
    p.add_argument("--input-value", action="append", default=[], metavar="NAME:VALUE",
                   help="one constant value for an input's --verify data, e.g. padding_mask:1 (repeatable)")
    p.add_argument("--verify-shape", action="append", default=[], metavar="NAME:SHAPE[,NAME:SHAPE...]",
                   help="with --verify, also verify at these input shapes, beyond every profile's min, opt and max, "
                        "e.g. input_ids:4x77; a model with several dynamic inputs names each of them, "
                        "token_ids:4x77,segment_ids:4x77 (repeatable: one shape set per option)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random verification inputs")
    p.add_argument("--rtol", type=float, default=None,
                   help="relative tolerance of --verify (default: 1e-4 for fp32 and int8, 1e-2 for fp16, 5e-2 for bf16)")
    p.add_argument("--atol", type=float, default=None,
                   help="absolute tolerance of --verify (default: 1e-5 for fp32 and int8, 1e-2 for fp16, 5e-2 for bf16)")
    p.add_argument("--precision", default="fp32", metavar="P",
                   help="what the engine computes in: fp32, fp16, bf16 (the fp32 network lowered to a strongly typed "
                        "one, softmax, normalization, long reductions and the final logits kept in fp32) or int8 "
                        "(a quantization-aware model's Q/DQ layers); default fp32")
    p.add_argument("--keep-fp32", action="append", default=[], metavar="PATTERN",
                   help="with fp16/bf16, keep the layers whose TensorFlow node name matches this fnmatch pattern in "
                        "fp32, e.g. '*/attention/*' (repeatable; tf2trt inspect lists the names)")
    p.add_argument("--io-types", choices=("fp32", "native"), default="fp32",
                   help="with fp16/bf16: fp32 keeps the engine's inputs and outputs float32, native gives them the "
                        "precision's type")
    p.add_argument("--no-fallback", action="store_true",
                   help="with fp16/bf16 and --verify, build the lowered network as it is instead of keeping the "
                        "layers that make it fail verification in fp32 (the automatic fallback)")
    p.add_argument("--workspace", type=size_arg, metavar="SIZE",
                   help="workspace memory pool limit: bytes or a size like 512MiB, 1GiB (default: TensorRT's)")
    p.add_argument("--opt-level", type=int, default=3, help="builder optimization level 0-5")
    p.add_argument("--timing-cache", help="timing cache file to load and update")
    p.add_argument("--target", action="append", default=None, help="compute capability, e.g. SM86 (TensorRT-RTX)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line of stdout")
    p.set_defaults(func=run_convert)
    return p


def _default_batch_range() -> tuple[int, int, int]:
    from .profiles import DEFAULT_BATCH_RANGE

    return DEFAULT_BATCH_RANGE


def _batch_range_arg(text: str) -> tuple[int, int, int]:
    """argparse type for ``MIN,OPT,MAX`` batch sizes."""
    try:
        lo, mid, hi = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not MIN,OPT,MAX (three integers, e.g. 1,1,8)") from None
    if not 1 <= lo <= mid <= hi:
        raise argparse.ArgumentTypeError(f"'{text}': need 1 ≤ MIN ≤ OPT ≤ MAX")
    return lo, mid, hi


def run_convert(args) -> int:
    from rich.console import Console

    console = Console(stderr=args.json)
    result = {"engine": None, "profiles": [], "layers": None, "tf_ops": None, "timings": {k: 0.0 for k in STAGES},
              "verification": None, "precision": None, "error": None}
    code = EXIT_OK
    engine_path = Path(args.engine)
    try:
        code = _convert(args, result, console)
    except Exception as exc:  # noqa: BLE001 - rendered as a short message, never a traceback
        code, message, hint = _classify(exc)
        result["error"] = message + (f" (hint: {hint})" if hint else "")
        from rich.markup import escape

        # messages quote TensorFlow (``indices[0,1] = 8 is not in [0, 2)``) and names: never Rich markup
        console.print(f"[bold red]error:[/] {escape(message)}")
        if hint:
            console.print(f"[yellow]hint:[/] {escape(hint)}")
        if code != EXIT_VERIFY_FAILED and engine_path.exists() and result["engine"] is None:
            pass  # a pre-existing file from an earlier run is not ours to delete
        logging.getLogger(__name__).debug("conversion failed", exc_info=True)
    if args.json:
        sys.stdout.write(json.dumps(result, allow_nan=False) + "\n")
        sys.stdout.flush()
    return code


def _classify(exc: BaseException):
    from .errors import classify

    return classify(exc)


def _convert(args, result: dict, console) -> int:
    from .engine import BuilderSettings, engine_metadata, optimize_network, store_engine

    from .freeze import freeze, parse_input_spec

    from .profiles import parse_verify_shape_arg, profiles_from_args

    inputs = dict(parse_input_spec(s) for s in args.input)
    profiles = profiles_from_args(args.profile)
    verify_shapes = [parse_verify_shape_arg(text) for text in args.verify_shape]
    batch_range = args.batch_range or _default_batch_range()
    input_ranges, input_values = _input_options(args)
    precision = _precision_settings(args)  # a bad name or pattern kind fails before TensorFlow is imported
    rtol, atol = _tolerances(args, precision.precision)
    settings = BuilderSettings(workspace=args.workspace, opt_level=args.opt_level,
                               timing_cache=args.timing_cache, targets=tuple(args.target) if args.target else None)
    timings = result["timings"]

    # Importing TensorFlow is interpreter start-up, not freezing: keep it out of the stage timings.
    t = time.perf_counter()
    import tensorflow  # noqa: F401
    import keras  # noqa: F401

    console.print(f"[dim]start-up  {time.perf_counter() - t:.2f} s  (importing TensorFlow)[/]")
    t = time.perf_counter()
    frozen = freeze(args.model, inputs=inputs or None, outputs=args.output or None,
                    signature=args.signature, trust_model_code=args.trust_model_code, profiles=profiles,
                    batch_range=batch_range, max_input_bytes=args.max_input_size)
    timings["freeze"] = time.perf_counter() - t
    result["profiles"] = frozen.meta.get("profiles", [])
    for k, profile in enumerate(result["profiles"]):
        ranges = ", ".join(f"{name} {'x'.join(map(str, r['min']))} .. {'x'.join(map(str, r['opt']))} .. "
                           f"{'x'.join(map(str, r['max']))}" for name, r in sorted(profile.items()))
        console.print(f"[dim]profile {k}: {ranges} (min .. opt .. max)[/]")
    if args.verify:
        from .verify import check_input_options, check_verification_shapes

        # a misspelt input name or a shape outside the profiles fails now, not after the engine build
        check_input_options(frozen, input_ranges, input_values, args.inputs_npz)
        check_verification_shapes(frozen, verify_shapes, args.inputs_npz)
    elif input_ranges or input_values or args.inputs_npz or verify_shapes:
        console.print("[yellow]note:[/] --input-range/--input-value/--inputs-npz/--verify-shape only apply with "
                      "--verify")
    counts = frozen.op_counts()
    result["tf_ops"] = sum(v for k, v in counts.items() if k not in STRUCTURAL_OPS)
    console.print(f"[green]freeze[/]    {timings['freeze']:.2f} s  {result['tf_ops']} ops "
                  f"({len(counts)} kinds) besides constants")

    from .construct import construct
    from .graph import parse

    t = time.perf_counter()
    graph = parse(frozen)
    timings["parse"] = time.perf_counter() - t
    console.print(f"[green]parse[/]     {timings['parse']:.2f} s  {len(graph.nodes)} nodes after fusion")

    t = time.perf_counter()
    net = construct(graph, **_construct_options(precision.precision, construct))
    timings["construct"] = time.perf_counter() - t
    result["layers"] = int(net.layer_count)
    console.print(f"[green]construct[/] {timings['construct']:.2f} s  {net.layer_count} layers")

    inputs_meta = [s.to_dict() for s in frozen.inputs]
    output_names = list(frozen.outputs)
    if not args.verify:
        # the network holds its own copy of every weight: drop TensorFlow's before the builder makes a third
        del frozen, graph
        net.graph = None
        import gc

        gc.collect()
    report = None
    not_verified = None
    verify_options = dict(inputs_npz=args.inputs_npz, seed=args.seed, rtol=rtol, atol=atol,
                          intermediates=args.check_intermediates, input_ranges=input_ranges, input_values=input_values,
                          shapes=[{n: list(v) for n, v in sh.items()} for sh in verify_shapes] or None)
    network = net
    if precision.reduced:
        # fp16/bf16: the engine is built from the lowered snapshot; with --verify the check (and the fp32
        # fallback) come first, so the engine is built from the network that passed
        t = time.perf_counter()
        network, report, not_verified, info = _lower(net.snapshot, precision, frozen if args.verify else None,
                                                     not args.no_fallback, verify_options)
        timings["verify" if args.verify else "optimize"] += time.perf_counter() - t
        result["precision"] = info
        console.print(f"[green]precision[/] {info['summary']}"
                      + (f"; fallback kept {len(info['fallback'])} layer(s) in fp32" if info["fallback"] else ""))
        if not args.verify and not args.no_fallback:
            console.print("[dim]the fp32 fallback runs with --verify: this engine is not checked[/]")
    t = time.perf_counter()
    engine = optimize_network(network, settings)
    timings["optimize"] += time.perf_counter() - t
    console.print(f"[green]optimize[/]  {timings['optimize']:.2f} s  {len(engine)} bytes")

    if args.verify and not precision.reduced:
        from .verify import VerificationError, verify

        t = time.perf_counter()
        try:
            report = verify(frozen, net.snapshot, **verify_options)
        except VerificationError as exc:
            # verification could not run (the inputs do not fit the model): the engine is still good to keep
            not_verified = exc
        timings["verify"] = time.perf_counter() - t
    if not_verified is not None:
        result["verification"] = {"checked": None, "passed": None, "error": not_verified.message,
                                  "inputs": getattr(not_verified, "inputs", [])}
    if report is not None:
        result["verification"] = report.summary()
        console.print(report.render(), markup=False, highlight=False)

    meta = engine_metadata(settings, {"layers": net.layer_count, "inputs": inputs_meta, "outputs": output_names,
                                      "profiles": list(net.profiles),
                                      "precision": result["precision"] or {"precision": precision.precision,
                                                                           "io_types": "fp32"}})
    if report is not None:
        meta["verification"] = report.to_dict()
    elif not_verified is not None:
        meta["verification"] = {"passed": None, "error": not_verified.message}
    path = store_engine(engine, args.engine, meta)
    result["engine"] = {"path": str(path), "bytes": len(engine)}
    console.print(f"engine written to [bold]{path}[/]")
    if not_verified is not None:
        from .verify import VerificationError

        raise VerificationError(f"{not_verified.message}\nthe engine was built and written to {path}, but it is "
                                "NOT verified", not_verified.hint)
    if report is not None and not report.passed:
        failed = [o.name for o in report.outputs if not o.passed]
        parts = [f"outputs {', '.join(failed)}"] if failed else []
        if report.intermediates and report.intermediates["failed"]:
            parts.append(f"{report.intermediates['failed']} of {report.intermediates['checked']} intermediate tensors")
        where = f" (first divergence at {report.first_divergence['node']})" if report.first_divergence else ""
        result["error"] = "verification failed for " + " and ".join(parts) + where
        return EXIT_VERIFY_FAILED
    return EXIT_OK


def _precision_settings(args):
    """``--precision``, ``--keep-fp32`` and ``--io-types`` as :class:`~converter.precision.PrecisionSettings`."""
    from .errors import ModelError
    from .precision import PrecisionSettings, parse_precision

    name = parse_precision(args.precision)
    if name not in ("fp16", "bf16") and (args.keep_fp32 or args.io_types != "fp32"):
        raise ModelError(f"--keep-fp32 and --io-types only apply to --precision fp16 or bf16 (not {name})",
                         hint="add --precision fp16 (or bf16), or drop --keep-fp32/--io-types")
    return PrecisionSettings(name, tuple(args.keep_fp32), args.io_types)


def _tolerances(args, precision: str) -> tuple[float, float]:
    """``--rtol``/``--atol`` as given, else the precision's defaults (fp32's are 1e-4 and 1e-5)."""
    from .precision import DEFAULT_TOLERANCES

    rtol, atol = DEFAULT_TOLERANCES[precision]
    return (rtol if args.rtol is None else args.rtol, atol if args.atol is None else args.atol)


def _construct_options(precision: str, construct) -> dict:
    """int8 builds a quantization-aware model's fake-quant ops as TensorRT Q/DQ layers (``quantization``)."""
    return {"quantization": "int8"} if precision == "int8" else {}


def _lower(snapshot, settings, frozen, fallback: bool, verify_options: dict):
    """``(lowered snapshot, report or None, VerificationError or None, precision info)`` for fp16/bf16.

    With ``frozen`` (--verify) the lowering is verified (:func:`converter.precision_verify.verify_precision`)
    and, with ``fallback``, the layers that make it fail are kept in fp32; a verification that cannot run
    (inputs the model rejects) leaves the plain lowering, unverified.
    """
    from .precision import lower

    report = not_verified = None
    trials = None
    if frozen is not None:
        from .precision_verify import verify_precision
        from .verify import VerificationError

        try:
            res = verify_precision(frozen, snapshot, settings, fallback=fallback, **verify_options)
        except VerificationError as exc:
            not_verified = exc
        else:
            lowered, plan, settings, report, trials = res.snapshot, res.plan, res.settings, res.report, res.trials
    if report is None:
        lowered, plan = lower(snapshot, settings)
    info = plan.to_json()
    info.pop("layers", None)
    info.update({"io_types": settings.io, "keep_fp32": list(settings.keep_fp32), "fallback": sorted(settings.fallback),
                 "fallback_enabled": fallback, "summary": plan.summary()})
    if trials is not None:
        info["trials"] = trials
    return lowered, report, not_verified, info


def _input_options(args) -> tuple[dict, dict]:
    """``--input-range`` and ``--input-value`` as the dicts :func:`converter.verify.verify` takes."""
    from .verify import VerificationError, parse_input_range, parse_input_value

    ranges, values = {}, {}
    for text in args.input_range:
        name, bounds = parse_input_range(text)
        if name in ranges:
            raise VerificationError(f"--input-range given twice for '{name}'", "give one range per input")
        ranges[name] = bounds
    for text in args.input_value:
        name, value = parse_input_value(text)
        if name in values:
            raise VerificationError(f"--input-value given twice for '{name}'", "give one value per input")
        values[name] = value
    return ranges, values


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="tf2trt")
    sub = parser.add_subparsers(dest="command", required=True)
    add_convert_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return args.func(args)
