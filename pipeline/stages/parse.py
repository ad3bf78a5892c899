"""Stage 2, parse: the frozen graph → the converter's IR, support-checked and fused.

Its output is the parsed graph itself (:meth:`converter.graph.Graph.to_bytes`),
which construct consumes, so construct neither decodes the GraphDef again nor
needs TensorFlow; the report (op counts, node count) is the stage's meta.  A
model with an unsupported op fails here, listing every problem at once,
before any TensorRT layer exists.
"""

from __future__ import annotations

from .base import Stage, StageContext, StageIO, StageResult, code_list
from .freeze import CODE as FREEZE_CODE

#: freeze.py's FrozenGraph decoding, graph.py (IR, support check, byte form) with the registered
#: ops' checks (ops/, registry.py, and the context.py, trt.py, layers/ they import), fuse.py, and for
#: control flow the body subgraphs (functions.py, loop_rewrites.py) and tensor_list.py.
CODE = code_list(FREEZE_CODE, ("graph.py", "fuse.py", "registry.py", "ops/", "context.py", "trt.py", "layers/",
                               "functions.py", "loop_rewrites.py", "tensor_list.py"))


class Parse(Stage):
    """Parse the frozen graph and check every op is supported."""

    name = "parse"
    reads = {"frozen": ("freeze", "frozen")}
    output = "graph"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        # decoding the GraphDef and its attributes uses TensorFlow's protobufs
        return self.key_components(ctx, upstream, toolchain=("tensorflow",))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        graph, meta = ctx.backend.parse(io.read("freeze", "frozen"))
        return {"graph": io.put(graph, "parsed-graph")}, meta


STAGE = Parse()
