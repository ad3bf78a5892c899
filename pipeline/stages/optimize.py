"""Stage 4, optimize: the snapshot → a serialized engine (TensorRT only, no TensorFlow).

The timing cache is not in the key: it changes how long a build takes, not
what it means.  One timing cache per TensorRT flavor/version/target lives in
the store and is updated after each build.
"""

from __future__ import annotations

import shutil

from .base import Stage, StageContext, StageIO, StageResult

#: the engine builder, and the snapshot → network rebuild (snapshot.py, each layer kind's add()).
CODE = ("engine.py", "snapshot.py", "layers/", "trt.py", "errors.py", "_io.py")
#: the builder settings that change the engine (config keys under ``builder.``)
BUILDER_KEYS = ("workspace", "opt_level", "targets")


class Optimize(Stage):
    """Build the serialized engine from the snapshot (TensorRT only, no TensorFlow)."""

    name = "optimize"
    reads = {"snapshot": ("construct", "snapshot")}
    output = "engine"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        builder = ctx.config.spec.builder.model_dump(mode="json")
        return self.key_components(ctx, upstream, config={f"builder.{k}": builder[k] for k in BUILDER_KEYS},
                                   toolchain=("tensorrt_flavor", "tensorrt"), target=ctx.backend.target(builder))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        store, spec, tc = ctx.store, ctx.config.spec, ctx.toolchain
        builder = spec.builder.model_dump(mode="json")
        target = ctx.backend.target(builder)
        outputs: dict[str, dict] = {}
        snapshot = io.read("construct", "snapshot")
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
            engine, meta = ctx.backend.optimize(snapshot, builder, cache_path)
            outputs["engine"] = io.put(engine, "engine")
            if cache_path is not None and cache_path.exists() and cache_path.stat().st_size:
                outputs["timing_cache"] = io.put(cache_path.read_bytes(), "timing-cache")
                store.set_timing_cache(slot, outputs["timing_cache"]["digest"])
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        meta = {**meta, "target": target, "tensorrt_flavor": tc.get("tensorrt_flavor"),
                "tensorrt": tc.get("tensorrt"), "engine_bytes": outputs["engine"]["bytes"]}
        return outputs, meta


STAGE = Optimize()
