"""Stage 3, construct: parse's graph → a TensorRT network, kept as a snapshot.

It reads the parsed graph parse stored (no second parse, no TensorFlow: the
graph's attributes and constants are already decoded), so its key holds that
graph's digest and TensorRT's version, not TensorFlow's: a TensorFlow upgrade
that freezes and parses to the same graph leaves construct cached.

The snapshot (the network read back layer by layer) is what optimize and
verify consume, so neither runs the op converters (and optimize needs no
TensorFlow).
"""

from __future__ import annotations

from .base import Stage, StageContext, StageIO, StageResult, code_list

#: graph.py (the graph's byte form) and freeze.py (TensorSpec) with what they import,
#: construct.py and the op converters it runs (ops/, registry.py, context.py, trt.py, layers/),
#: and the snapshot that reads the network back (snapshot.py).  Not fuse.py: parse fused the
#: graph already, and a fusion change that changes the graph reaches this key through its digest.
CODE = code_list(("construct.py", "graph.py", "freeze.py", "control_flow.py", "tf1_control_flow.py", "shapes.py", "units.py", "errors.py", "structural.py", "_io.py", "profiles.py"),
                 ("registry.py", "ops/", "context.py", "trt.py", "layers/", "snapshot.py", "functions.py",
                  "loop_rewrites.py", "tensor_list.py"))


class Construct(Stage):
    """Construct the TensorRT network and snapshot it."""

    name = "construct"
    reads = {"graph": ("parse", "graph")}
    output = "snapshot"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        # no TensorFlow: the graph blob is JSON and .npy arrays (tests/converter/test_graph.py blocks its import)
        # only int8 changes what construct builds (real Q/DQ layers instead of emulated fake quantization);
        # fp16/bf16 lower the fp32 snapshot in optimize, so they share this stage's key with fp32
        config = {"builder.quantization": "int8"} if quantization(ctx) == "int8" else {}
        return self.key_components(ctx, upstream, config=config, toolchain=("tensorrt_flavor", "tensorrt"))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        # the keyword only for int8: every other build calls the backend as before
        extra = {"quantization": "int8"} if quantization(ctx) == "int8" else {}
        snapshot, meta = ctx.backend.construct(io.read("parse", "graph"), **extra)
        return {"snapshot": io.put(snapshot, "network-snapshot")}, meta


def quantization(ctx: StageContext) -> str:
    """How construct treats a quantization-aware model's fake-quant ops: ``int8`` (TensorRT Q/DQ layers, for
    ``builder.precision: int8``) or ``emulate`` (float layers computing what TensorFlow computes)."""
    return "int8" if ctx.config.spec.builder.precision == "int8" else "emulate"


STAGE = Construct()
