"""Stage 2, parse: the frozen graph → the converter's IR, support-checked.

Its output is a report (op counts); a model with an unsupported op fails here,
listing every problem at once, before any TensorRT layer exists.  Construct
does not consume this report: it parses the frozen graph again (the IR has no
serialized form yet), which is why construct's code list contains this one.
"""

from __future__ import annotations

from ..hashing import canonical_json
from .base import Stage, StageContext, StageIO, StageResult, code_list
from .freeze import CODE as FREEZE_CODE

#: freeze.py's FrozenGraph decoding, graph.py (IR, support check) with the registered
#: ops' checks (ops/, registry.py, and the context.py, trt.py, layers/ they import), fuse.py.
CODE = code_list(FREEZE_CODE, ("graph.py", "fuse.py", "registry.py", "ops/", "context.py", "trt.py", "layers/"))


class Parse(Stage):
    """Parse the frozen graph and check every op is supported."""

    name = "parse"
    reads = {"frozen": ("freeze", "frozen")}
    output = "report"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        # decoding the GraphDef and its attributes uses TensorFlow's protobufs
        return self.key_components(ctx, upstream, toolchain=("tensorflow",))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        meta = ctx.backend.parse(io.read("freeze", "frozen"))
        return {"report": io.put(canonical_json(meta), "parse-report")}, meta


STAGE = Parse()
