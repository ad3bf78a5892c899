"""The five conversion stages, one module each, and the cached runner they share.

A stage's key is the blake3 of the canonical JSON of its *components* (as
DVC's run cache does), and the components name only what the stage runs:
the content of what it reads, the config keys it reads, the toolchain it
uses, and the converter files it executes (``code``: ``{path: blake3}``, paths
relative to the ``converter`` package; ``ops/`` = every file in it):

=========  ===================================================================
stage      components (besides the stage name)
=========  ===================================================================
freeze     inputs.model: model content (file/tree digest, or the example spec:
           name, seed, input shape, Keras version); config: model.signature,
           inputs, outputs; toolchain: TensorFlow, Keras;
           code: freeze.py _io.py errors.py structural.py
parse      inputs.frozen: frozen-graph digest; toolchain: TensorFlow;
           code: graph.py fuse.py registry.py ops/ and what ops/ imports
           (context.py trt.py layers/), and freeze's list (FrozenGraph decoding);
           output: the parsed graph (``Graph.to_bytes``), the op report in meta
construct  inputs.graph: parse's graph digest; toolchain: TensorRT
           flavor/version (no TensorFlow: the graph is already decoded);
           code: construct.py graph.py registry.py ops/ context.py trt.py
           layers/ snapshot.py and freeze.py errors.py structural.py _io.py
           (graph.py's imports) — parse's list without fuse.py; int8 only:
           config builder.quantization
optimize   inputs.snapshot: snapshot digest; config: builder.workspace,
           builder.opt_level, builder.targets; toolchain: TensorRT
           flavor/version; target; code: engine.py snapshot.py layers/ trt.py
           errors.py _io.py.  fp16/bf16 only: builder.precision/keep_fp32/
           io_types/fallback and precision.py; with the fallback also
           inputs.frozen, the verification settings, TensorFlow and verify's
           code with precision_verify.py
verify     inputs: frozen-graph, snapshot and engine digests, the .npz by
           content; config: verification.rtol/atol/samples/seed; toolchain:
           TensorFlow, TensorRT flavor/version; code: verify.py reference.py
           snapshot.py layers/ trt.py and freeze's list.  fp16/bf16 only:
           inputs.lowered (optimize's lowered snapshot), builder.precision,
           precision.py precision_verify.py
=========  ===================================================================

A stage's ``code`` lists all it can run; :meth:`Stage.code_for` the part a
config runs (an fp32 build's optimize key holds no precision code, so its key
is what it was before reduced precision existed).

Each list is what the stage's backend call imports, followed transitively
(``tests/pipeline/test_cache_keys.py`` checks it against the source), minus
modules imported but not run: construct's ``fuse.py`` (``graph.parse`` imports
it; construct loads a graph parse fused), optimize's ``construct.py``
(an isinstance check) and verify's and optimize's ``runtime.py`` (verify.py's GPU
path, not taken).

So an op converter edit (``ops/``) re-runs parse and construct, and if the
snapshot comes out the same (the network did not change) optimize and verify
stay cached; a ``fuse.py`` edit or a TensorFlow upgrade re-runs construct only
if the parsed graph changes (its digest is construct's input); an
``engine.py`` edit re-runs optimize only; the CLI
(``cli_convert.py``), ``api.py``, ``runtime.py`` and the package facade
(``__init__.py``, which the backend bypasses) are in no list.  Paths never
enter a key, only content.  The timing cache is not in the optimize key: it
changes how long a build takes, not what it means.

Modules: :mod:`.base` (Stage, StageContext, StageResult, StageIO),
:mod:`.freeze` … :mod:`.verify` (one stage each), :mod:`.catalog` (the
order), :mod:`.runner` (:func:`run_stage`: lookup, lock, execute, record),
:mod:`.build` (:func:`run_build`, :func:`place_engine`, :func:`summarize`).
"""

from __future__ import annotations

from .base import STATUSES, Stage, StageContext, StageFailed, StageIO, StageResult, code_list, config_id, output_digest
from .build import build_ok, effective_settings, engine_facts, place_engine, run_build, settings_line, summarize
from .catalog import OUTPUT_ROLE, PIPELINE, STAGES, components, get_stage
from .freeze import example_spec, model_identity
from .runner import PROGRESS_HOOKS, lookup, miss_reason, record, run_stage
from .verify import VerificationFailed

__all__ = [
    "OUTPUT_ROLE", "PIPELINE", "PROGRESS_HOOKS", "STAGES", "STATUSES", "Stage", "StageContext", "StageFailed",
    "StageIO", "StageResult", "VerificationFailed", "build_ok", "code_list", "components", "config_id",
    "effective_settings", "engine_facts", "settings_line",
    "example_spec", "get_stage", "lookup", "miss_reason", "model_identity", "output_digest", "place_engine",
    "record", "run_build", "run_stage", "summarize",
]
