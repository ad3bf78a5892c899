"""Stage 4, optimize: the snapshot → a serialized engine (TensorRT only, no TensorFlow).

The timing cache is not in the key: it changes how long a build takes, not
what it means.  One timing cache per TensorRT flavor/version/target lives in
the store and is updated after each build.

Reduced precision (``builder.precision`` fp16/bf16): the fp32 snapshot is
lowered to a strongly typed one (:func:`converter.precision.lower`) and the
engine is built from that.  With ``builder.fallback`` (the default) the
lowering goes through :func:`converter.precision_verify.verify_precision`,
which verifies it against TensorFlow and keeps the layers that make it fail in
fp32, so the engine is built from the network that passes; optimize then also
reads the frozen graph and the verification settings (and TensorFlow), and
only then are those in its key.  The lowered snapshot is an output
(``lowered``, what verify checks) and the precision plan is in the meta.
An fp32 or int8 build's key, code and work are what they were before
precision existed.
"""

from __future__ import annotations

import shutil

from ..hashing import hash_path
from .base import Stage, StageContext, StageIO, StageResult, code_list, output_digest
from .verify import CODE as VERIFY_CODE
from .verify import precision_options, verification_config, verification_kwargs

#: the engine builder, and the snapshot → network rebuild (snapshot.py, each layer kind's add()).
CODE = ("engine.py", "snapshot.py", "layers/", "trt.py", "errors.py", "_io.py")
#: fp16/bf16: the lowering (precision.py imports nothing CODE lacks)
LOWER_CODE = code_list(CODE, ("precision.py",))
#: fp16/bf16 with the fallback: also the precision check, with verify's code (TensorFlow, the executor)
FALLBACK_CODE = code_list(LOWER_CODE, VERIFY_CODE, ("precision_verify.py",))
#: the builder settings that change the engine (config keys under ``builder.``)
BUILDER_KEYS = ("workspace", "opt_level", "targets")
#: the precision settings (config keys under ``builder.``), in the key only for a precision other than fp32
PRECISION_KEYS = ("precision", "keep_fp32", "io_types", "fallback")


class Optimize(Stage):
    """Build the serialized engine from the snapshot (TensorRT only, no TensorFlow)."""

    name = "optimize"
    reads = {"snapshot": ("construct", "snapshot")}
    output = "engine"
    code = FALLBACK_CODE

    def code_for(self, ctx: StageContext) -> tuple[str, ...]:
        b = ctx.config.spec.builder
        if not b.reduced:
            return CODE
        return FALLBACK_CODE if b.fallback else LOWER_CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        spec = ctx.config.spec
        builder = spec.builder.model_dump(mode="json")
        config = {f"builder.{k}": builder[k] for k in BUILDER_KEYS}
        inputs: dict = {}
        toolchain = ("tensorrt_flavor", "tensorrt")
        if spec.builder.precision == "int8":  # the Q/DQ network comes from construct; nothing to lower here
            config["builder.precision"] = "int8"
        elif spec.builder.reduced:
            config.update({f"builder.{k}": builder[k] for k in PRECISION_KEYS})
            if spec.builder.fallback:  # the fallback verifies: what verification reads is what it reads
                config.update(verification_config(ctx))
                npz = ctx.config.inputs_npz
                inputs = {"frozen": output_digest(upstream, "freeze", "frozen"),
                          "inputs_npz": hash_path(npz) if npz else None}
                toolchain = ("tensorflow", "tensorrt_flavor", "tensorrt")
        return self.key_components(ctx, upstream, inputs=inputs, config=config, toolchain=toolchain,
                                   target=ctx.backend.target(builder))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        store, spec, tc = ctx.store, ctx.config.spec, ctx.toolchain
        builder = spec.builder.model_dump(mode="json")
        target = ctx.backend.target(builder)
        outputs: dict[str, dict] = {}
        snapshot = io.read("construct", "snapshot")
        extra: dict = {}
        if spec.builder.reduced:
            # passed only for fp16/bf16: an fp32 build calls the backend exactly as before precision existed
            extra["precision"] = precision_options(ctx)
            if spec.builder.fallback:
                extra["frozen"] = io.read("freeze", "frozen")
                extra["verification"] = verification_kwargs(ctx)
        tmpdir = store._tmp()
        tmpdir.mkdir(parents=True)
        try:
            cache_path = None
            slot = f"{tc.get('tensorrt_flavor')}-{tc.get('tensorrt')}-{target}"
            if spec.builder.timing_cache:
                cache_path = tmpdir / "timing.cache"
                old = store.get_timing_cache(slot)
                if old:
                    cache_path.write_bytes(store.read_blob(old))
            built = ctx.backend.optimize(snapshot, builder, cache_path, **extra)
            engine, meta = built[0], built[1]
            if spec.builder.reduced:
                outputs["lowered"] = io.put(built[2], "network-snapshot")
            outputs["engine"] = io.put(engine, "engine")
            if cache_path is not None and cache_path.exists() and cache_path.stat().st_size:
                outputs["timing_cache"] = io.put(cache_path.read_bytes(), "timing-cache")
                store.set_timing_cache(slot, outputs["timing_cache"]["digest"])
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        meta = {**meta, "target": target, "tensorrt_flavor": tc.get("tensorrt_flavor"),
                "tensorrt": tc.get("tensorrt"), "engine_bytes": outputs["engine"]["bytes"]}
        if spec.builder.reduced and meta.get("precision"):
            p = meta["precision"]
            ctx.log.info("optimize: precision %s: %s layer(s) in %s, %s kept in fp32 (%d by the fallback)",
                         p.get("precision"), (p.get("counts") or {}).get(p.get("precision"), 0), p.get("precision"),
                         (p.get("counts") or {}).get("fp32", 0), len(p.get("fallback") or []))
        return outputs, meta


STAGE = Optimize()
