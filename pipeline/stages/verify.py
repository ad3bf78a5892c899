"""Stage 5, verify: TensorFlow vs the converted network, on the same inputs.

It runs the frozen graph in TensorFlow and the snapshot on the reference
executor (no GPU needed).  The engine's digest is in the key although verify
does not read the engine: the report certifies the engine that gets placed,
so a new engine (other builder settings) gets a new report.

With ``builder.precision`` fp16/bf16 it verifies the network the engine was
built from, optimize's lowered snapshot (:func:`converter.precision_verify.verify_precision`
lowers the fp32 snapshot again with the layers optimize's fallback kept in fp32,
and the backend checks that gives optimize's snapshot byte for byte), at the
precision's default tolerances unless the config sets ``verification.rtol`` /
``atol``; the report has the precision section (error against the fp32
network, the layers adding most error, what stayed fp32).
"""

from __future__ import annotations

from ..hashing import canonical_json, hash_path
from .base import Stage, StageContext, StageFailed, StageIO, StageResult, code_list, output_digest
from .freeze import CODE as FREEZE_CODE

#: freeze.py's FrozenGraph (decoding, input specs), the comparison, and the reference
#: executor with the snapshot decoding and layer kinds it runs.
CODE = code_list(FREEZE_CODE, ("verify.py", "reference.py", "snapshot.py", "layers/", "trt.py"))
#: and for fp16/bf16 the lowering and the precision check (only those builds' keys hold them)
PRECISION_CODE = ("precision.py", "precision_verify.py")


def tolerances(spec) -> tuple[float, float]:
    """The (rtol, atol) verification uses: the config's when it sets them, else the precision's defaults.

    fp32 keeps the config's values (set or not: the schema's defaults, as always); fp16/bf16/int8 take
    :data:`converter.precision.DEFAULT_TOLERANCES` for each one the file does not set (``model_fields_set``).
    """
    v = spec.verification
    precision = spec.builder.precision
    if precision == "fp32":
        return v.rtol, v.atol
    from converter.precision import DEFAULT_TOLERANCES

    rtol, atol = DEFAULT_TOLERANCES[precision]
    return (v.rtol if "rtol" in v.model_fields_set else rtol, v.atol if "atol" in v.model_fields_set else atol)


def verification_config(ctx: StageContext) -> dict:
    """The verification settings as key components (ranges/values/shapes only when set)."""
    v = ctx.config.spec.verification
    rtol, atol = tolerances(ctx.config.spec)
    return {"verification.rtol": rtol, "verification.atol": atol,
            "verification.samples": v.samples, "verification.seed": v.seed,
            **{f"verification.{k}": opts for k, opts in input_options(v).items()}}


def verification_kwargs(ctx: StageContext) -> dict:
    """The keywords :func:`converter.precision_verify.verify_precision` takes for the config's verification."""
    v = ctx.config.spec.verification
    rtol, atol = tolerances(ctx.config.spec)
    npz = ctx.config.inputs_npz
    return {"seed": v.seed, "samples": v.samples, "rtol": rtol, "atol": atol,
            "inputs_npz": str(npz) if npz else None, **input_options(v)}


def precision_options(ctx: StageContext) -> dict:
    """The config's reduced-precision settings as the backend takes them (``fallback``: whether to search)."""
    b = ctx.config.spec.builder
    return {"precision": b.precision, "keep_fp32": list(b.keep_fp32), "io": b.io_types, "fallback": b.fallback}


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
    code = code_list(CODE, PRECISION_CODE)

    def skip_reason(self, ctx: StageContext) -> str | None:
        return None if ctx.config.spec.verification.enabled else "verification.enabled is false"

    def code_for(self, ctx: StageContext) -> tuple[str, ...]:
        return self.code if ctx.config.spec.builder.reduced else CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        npz = ctx.config.inputs_npz
        # ranges/values/shapes join the key only when set, so existing reports keep their keys
        config = verification_config(ctx)
        inputs = {"inputs_npz": hash_path(npz) if npz else None}
        b = ctx.config.spec.builder
        if b.precision != "fp32":  # the default tolerances follow the precision
            config["builder.precision"] = b.precision
        if b.reduced:  # the network verified is optimize's lowered one
            inputs["lowered"] = output_digest(upstream, "optimize", "lowered")
        return self.key_components(
            ctx, upstream, inputs=inputs, config=config,
            # TensorRT: the snapshot's dtypes and enums decode through its module
            toolchain=("tensorflow", "tensorrt_flavor", "tensorrt"))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        v = ctx.config.spec.verification
        rtol, atol = tolerances(ctx.config.spec)
        extra = {}
        if ctx.config.spec.builder.reduced:
            options = precision_options(ctx)
            options["fallback_layers"] = list((upstream["optimize"].meta.get("precision") or {}).get("fallback") or [])
            extra = {"precision": options, "lowered": io.read("optimize", "lowered")}
        report = ctx.backend.verify(io.read("freeze", "frozen"), io.read("construct", "snapshot"),
                                    ctx.config.inputs_npz, v.seed, v.samples, rtol, atol,
                                    **input_options(v), **extra)
        out = {"report": io.put(canonical_json(report), "verification-report")}
        if not report.get("passed"):
            raise VerificationFailed(report, out)
        return out, {"verification": report}


STAGE = Verify()
