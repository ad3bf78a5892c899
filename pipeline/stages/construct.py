"""Stage 3, construct: the frozen graph → a TensorRT network, kept as a snapshot.

The snapshot (the network read back layer by layer) is what optimize and
verify consume, so neither runs the op converters (and optimize needs no
TensorFlow).
"""

from __future__ import annotations

from .base import Stage, StageContext, StageIO, StageResult, code_list
from .parse import CODE as PARSE_CODE

#: parse's code (construct re-parses the frozen graph, then runs the op converters
#: whose checks parse ran), construct.py, and the snapshot that reads the network
#: back (snapshot.py, layers/).
CODE = code_list(PARSE_CODE, ("construct.py", "snapshot.py", "layers/"))


class Construct(Stage):
    """Construct the TensorRT network and snapshot it."""

    name = "construct"
    reads = {"frozen": ("freeze", "frozen")}
    output = "snapshot"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        # TensorFlow: the frozen graph is decoded with its protobufs (tf.make_ndarray)
        return self.key_components(ctx, upstream, toolchain=("tensorflow", "tensorrt_flavor", "tensorrt"))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        snapshot, meta = ctx.backend.construct(io.read("freeze", "frozen"))
        return {"snapshot": io.put(snapshot, "network-snapshot")}, meta


STAGE = Construct()
