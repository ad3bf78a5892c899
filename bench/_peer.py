"""The peer "ONNX way", run inside bench/.peer-venv:  .keras --tf2onnx--> ONNX --OnnxParser--> TensorRT engine.

    .peer-venv/bin/python bench/_peer.py MODEL.keras --engine OUT.plan [--onnx OUT.onnx] [--opset 17]

Prints one JSON object as the last stdout line:
{"ok", "stage" (where it stopped), "timings": {"load", "tf2onnx", "serialize", "parse", "build"},
 "layers", "engine_bytes", "onnx_bytes", "onnx_nodes", "versions", "error", "oom"}.

Stages (all after the imports, like tf2trt's own stage timings):
  load       keras.models.load_model(.keras)
  tf2onnx    tf2onnx.convert.from_function on a tf.function of the model (batch 1), opset 17
  serialize  ModelProto -> bytes
  parse      tensorrt_rtx.OnnxParser.parse(bytes) into an explicit-batch network
  build      builder.build_serialized_network (optimization level 3, TensorRT's defaults otherwise,
             the same settings tf2trt's ``convert`` uses by default)
A MemoryError or std::bad_alloc is caught and reported with "oom": true; a kill by the kernel or a
crash is detected by the parent from the exit status.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

OOM_MARKERS = ("bad_alloc", "out of memory", "outofmemory", "cannot allocate memory", "resource exhausted",
               "resourceexhausted", "failed to allocate", "memoryerror")


def _mark(stage: str) -> None:
    """A stage marker on stderr, so the parent knows where a crash (signal) happened."""
    sys.stderr.write(f"[peer-stage] {stage}\n")
    sys.stderr.flush()


def _looks_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(m in text for m in OOM_MARKERS)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--engine", required=True)
    ap.add_argument("--onnx", help="also write the ONNX model here (not timed)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--opt-level", type=int, default=3)
    ap.add_argument("--batch-range", help="MIN,OPT,MAX: export the batch dimension dynamic and build the engine "
                                          "with this optimization profile (every input; default: batch 1)")
    args = ap.parse_args(argv)
    faulthandler.enable()  # a SIGSEGV/SIGABRT prints the Python stack to stderr

    result = {"ok": False, "stage": "import", "timings": {}, "layers": None, "engine_bytes": None,
              "onnx_bytes": None, "onnx_nodes": None, "versions": {}, "error": None, "oom": False}
    timings = result["timings"]
    stage_start = time.perf_counter()
    try:
        t = time.perf_counter()
        import keras
        import tensorflow as tf
        import tf2onnx
        import onnx
        import tensorrt_rtx as trt

        result["import_s"] = time.perf_counter() - t
        result["versions"] = {"tensorflow": tf.__version__, "keras": keras.__version__,
                              "tf2onnx": tf2onnx.__version__, "onnx": onnx.__version__,
                              "tensorrt_rtx": trt.__version__}

        result["stage"] = "load"
        _mark("load")
        stage_start = time.perf_counter()
        model = keras.models.load_model(args.model, compile=False)
        timings["load"] = time.perf_counter() - stage_start

        result["stage"] = "tf2onnx"
        _mark("tf2onnx")
        stage_start = time.perf_counter()
        batch_range = [int(v) for v in args.batch_range.split(",")] if args.batch_range else None
        specs = []
        for i, inp in enumerate(model.inputs):
            shape = [1 if d is None else int(d) for d in inp.shape]
            if batch_range:
                shape[0] = None
            specs.append(tf.TensorSpec(shape, tf.as_dtype(inp.dtype), name=f"input_{i}"))

        @tf.function(input_signature=specs)
        def serve(*xs):
            return model(xs[0] if len(xs) == 1 else list(xs), training=False)

        proto, _ = tf2onnx.convert.from_function(serve, input_signature=specs, opset=args.opset)
        timings["tf2onnx"] = time.perf_counter() - stage_start
        result["onnx_nodes"] = len(proto.graph.node)

        result["stage"] = "serialize"
        _mark("serialize")
        stage_start = time.perf_counter()
        data = proto.SerializeToString()
        timings["serialize"] = time.perf_counter() - stage_start
        result["onnx_bytes"] = len(data)
        del proto
        if args.onnx:
            with open(args.onnx, "wb") as f:
                f.write(data)

        result["stage"] = "parse"
        _mark("parse")
        stage_start = time.perf_counter()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
        if explicit is not None:
            flags |= 1 << int(explicit)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse(data):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise RuntimeError(f"OnnxParser failed: {errors}")
        timings["parse"] = time.perf_counter() - stage_start
        result["layers"] = int(network.num_layers)
        del data

        result["stage"] = "build"
        _mark("build")
        stage_start = time.perf_counter()
        config = builder.create_builder_config()
        config.builder_optimization_level = args.opt_level
        if batch_range:
            profile = builder.create_optimization_profile()
            for i in range(network.num_inputs):
                tensor = network.get_input(i)
                rest = tuple(int(d) for d in tensor.shape)[1:]
                profile.set_shape(tensor.name, *((b,) + rest for b in batch_range))
            config.add_optimization_profile(profile)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise RuntimeError("build_serialized_network returned None (see the TensorRT log)")
        engine = bytes(memoryview(serialized))
        timings["build"] = time.perf_counter() - stage_start
        result["engine_bytes"] = len(engine)
        with open(args.engine, "wb") as f:
            f.write(engine)
        result["ok"] = True
        result["stage"] = "done"
        _mark("done")
    except BaseException as exc:  # noqa: BLE001 - reported in the JSON, including MemoryError
        timings.setdefault(result["stage"] + "_failed_after", time.perf_counter() - stage_start)
        result["oom"] = _looks_oom(exc)
        result["error"] = f"{type(exc).__name__}: {str(exc)[:2000]}"
        sys.stderr.write(traceback.format_exc())
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
