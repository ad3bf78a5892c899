"""Stage 1, freeze: the model → one frozen GraphDef (TensorFlow).

The model enters the key by content (file or tree digest) or, for a
``keras_application`` example, by its spec — a generated ``.keras`` file
embeds its save date, so its bytes would change on every generation.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..hashing import canonical_json, hash_bytes, hash_path
from ..locks import locked
from .base import Stage, StageContext, StageIO, StageResult


def example_spec(ctx: StageContext) -> dict:
    spec = ctx.config.spec
    return {"kind": "keras_application", "name": spec.model.keras_application, "seed": spec.model.seed,
            "input_shape": list(spec.inputs[0].shape[1:]), "keras": ctx.toolchain.get("keras")}


def model_identity(ctx: StageContext) -> dict:
    spec = ctx.config.spec
    if spec.model.keras_application:
        return example_spec(ctx)
    path = ctx.config.model_path
    assert path is not None
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    return {"kind": "directory" if path.is_dir() else "file", "digest": hash_path(path)}


def example_model(ctx: StageContext) -> Path:
    """Generate (once) the example keras.applications model named by its spec hash."""
    spec = example_spec(ctx)
    digest = hash_bytes(canonical_json(spec))
    dest = ctx.store.root / "examples" / f"{spec['name']}-{digest[:16]}.keras"
    if dest.exists():
        return dest
    with locked(ctx.store.lock_path(f"example-{digest[:24]}")):
        if dest.exists():
            return dest
        ctx.log.info("freeze: generating example model %s (seed %s, input %s, weights=None)",
                     spec["name"], spec["seed"], spec["input_shape"])
        tmpdir = ctx.store._tmp()
        tmpdir.mkdir(parents=True)
        try:
            tmp = tmpdir / "model.keras"
            ctx.backend.generate_example(spec["name"], spec["seed"], spec["input_shape"], tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            ctx.store.write_json(dest.with_name(dest.name + ".json"), {**spec, "spec_digest": digest})
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return dest


#: freeze.py and what it imports (structural.py: the op sets it prunes by).
CODE = ("freeze.py", "control_flow.py", "tf1_control_flow.py", "shapes.py", "units.py", "_io.py", "errors.py",
        "structural.py", "profiles.py")


class Freeze(Stage):
    """Freeze the model into one GraphDef (TensorFlow)."""

    name = "freeze"
    output = "frozen"
    code = CODE

    def components(self, ctx: StageContext, upstream: dict[str, StageResult]) -> dict:
        spec = ctx.config.spec
        config = {"model.signature": spec.model.signature,
                  "inputs": [i.key_record() for i in spec.inputs], "outputs": spec.outputs}
        if spec.model.trust_code:  # only when set: existing keys stay valid
            config["model.trust_code"] = True
        return self.key_components(ctx, upstream, inputs={"model": model_identity(ctx)}, config=config,
                                   toolchain=("tensorflow", "keras"))

    def execute(self, ctx: StageContext, upstream: dict[str, StageResult], io: StageIO) -> tuple[dict, dict]:
        spec = ctx.config.spec
        model_path = example_model(ctx) if spec.model.keras_application else ctx.config.model_path
        extra = {"trust_model_code": True} if spec.model.trust_code else {}
        frozen, meta = ctx.backend.freeze(model_path, [i.model_dump(mode="json") for i in spec.inputs],
                                          spec.outputs, spec.model.signature, **extra)
        return {"frozen": io.put(frozen, "frozen-graph")}, meta


STAGE = Freeze()
