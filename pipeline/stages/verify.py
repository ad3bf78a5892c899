"""Stage 5, verify: TensorFlow vs the converted network, on the same inputs.

It runs the frozen graph in TensorFlow and the snapshot on the reference
executor (no GPU needed).  The engine's digest is in the key although verify
does not read the engine: the report certifies the engine that gets placed,
so a new engine (other builder settings) gets a new report.
"""

from __future__ import annotations

from ..hashing import canonical_json, hash_path
from .base import Stage, StageContext, StageFailed, StageIO, StageResult, code_list
from .freeze import CODE as FREEZE_CODE

#: freeze.py's FrozenGraph (decoding, input specs), the comparison, and the reference
#: executor with the snapshot decoding and layer kinds it runs.
CODE = code_list(FREEZE_CODE, ("verify.py", "reference.py", "snapshot.py", "layers/", "trt.py"))


def input_options(v) -> dict:
    """The config's per-input ranges/values as verify() keywords, only those set.

    Ranges become (low, high) tuples: verify() and the canonical key both take them as given.
    """
    out = {}
    if v.input_ranges:
        out["input_ranges"] = {name: (float(lo), float(hi)) for name, (lo, hi) in sorted(v.input_ranges.items())}
    if v.input_values:
        out["input_values"] = dict(sorted(v.input_values.items()))
    if v.shapes:
        # in the given order: a set's position decides the seed of its random inputs
        out["shapes"] = [{name: list(shape) for name, shape in sorted(s.items())} for s in v.shapes]
    return out


class VerificationFailed(StageFailed):
    def __init__(self, report: dict, outputs: dict):
        self.report = report
        bad = [o for o in report.get("outputs", []) if not o.get("passed")]
        detail = ", ".join(f"{o['name']} max_abs_err={o.get('max_abs_err'):.3g} "
                           f"max_rel_err={o.get('max_rel_err'):.3g}" for o in bad
                           if isinstance(o.get("max_abs_err"), (int, float))
                           and isinstance(o.get("max_rel_err"), (int, float)))
        super().__init__("verification failed" + (f": {detail}" if detail else ""), outputs,
                         {"verification": report})


class Verify(Stage):
    """Compare the converted network with TensorFlow."""

    name = "verify"
    reads = {"frozen": ("freeze", "frozen"), "snapshot": ("construct", "snapshot"),
             "engine": ("optimize", "engine")}
    output = "report"
    code = CODE

    def skip_reason(self, ctx: StageContext) -> str | None:
        return None if ctx.config.spec.verification.enabled else "verification.enabled is false"

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        v = ctx.config.spec.verification
        npz = ctx.config.inputs_npz
        # ranges/values/shapes join the key only when set, so existing reports keep their keys
        config = {"verification.rtol": v.rtol, "verification.atol": v.atol,
                  "verification.samples": v.samples, "verification.seed": v.seed,
                  **{f"verification.{k}": opts for k, opts in input_options(v).items()}}
        return self.key_components(
            ctx, upstream, inputs={"inputs_npz": hash_path(npz) if npz else None}, config=config,
            # TensorRT: the snapshot's dtypes and enums decode through its module
            toolchain=("tensorflow", "tensorrt_flavor", "tensorrt"))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        v = ctx.config.spec.verification
        report = ctx.backend.verify(io.read("freeze", "frozen"), io.read("construct", "snapshot"),
                                    ctx.config.inputs_npz, v.seed, v.samples, v.rtol, v.atol,
                                    **input_options(v))
        out = {"report": io.put(canonical_json(report), "verification-report")}
        if not report.get("passed"):
            raise VerificationFailed(report, out)
        return out, {"verification": report}


STAGE = Verify()
