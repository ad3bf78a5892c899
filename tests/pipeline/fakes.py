"""A tiny fake converter for pipeline unit tests (injected through the backend seam).

Deterministic bytes that depend on exactly what the real stage depends on.  Each
call appends ``<pid> <stage>`` to ``$TF2TRT_FAKE_LOG`` (so tests count stage
work across processes); ``$TF2TRT_FAKE_SLEEP`` ("optimize=2,freeze=0.5") slows
stages down to open race windows; ``$TF2TRT_FAKE_SOURCE`` stands for the
construction code (``construct.py``: it shapes the fake snapshot);
``$TF2TRT_FAKE_ERROR`` is the verification error.

Code digests: without ``source_root`` every file a stage lists hashes a fixed
string, except ``construct.py`` (the ``source``); with ``source_root`` they are
the real digests of that tree (tests edit a copy of ``converter/``), while the
fake's outputs stay the same — an edit that changes no behaviour.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from pipeline.hashing import hash_listing


def _h(*parts: bytes) -> bytes:
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
        h.update(b"\0")
    return h.digest()


class FakeBackend:
    name = "fake"

    def __init__(self, source: str | None = None, toolchain: dict | None = None, source_root: Path | None = None):
        self._source = source
        self._toolchain = toolchain
        self.source_root = source_root
        self.calls: list[str] = []

    # -- bookkeeping -------------------------------------------------------
    def _note(self, stage: str) -> None:
        self.calls.append(stage)
        log = os.environ.get("TF2TRT_FAKE_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(f"{os.getpid()} {stage}\n")
        for item in filter(None, os.environ.get("TF2TRT_FAKE_SLEEP", "").split(",")):
            name, _, secs = item.partition("=")
            if name == stage:
                time.sleep(float(secs))

    # -- seam ----------------------------------------------------------------
    def toolchain(self) -> dict:
        return self._toolchain or {"tensorflow": "fake-tf-1", "keras": "fake-keras-1",
                                   "tensorrt_flavor": "fake-rt", "tensorrt": "1.0", "python": "3"}

    def source(self) -> str:
        return self._source or os.environ.get("TF2TRT_FAKE_SOURCE", "fake-source-v1")

    def code_digests(self, entries) -> dict:
        if self.source_root is not None:
            return hash_listing(self.source_root, entries)
        return {e: hashlib.sha256((self.source() if e == "construct.py" else "fake-code").encode()).hexdigest()
                for e in entries}

    def target(self, builder: dict) -> str:
        return ",".join(builder.get("targets") or []) or "default"

    def generate_example(self, name, seed, input_shape, path: Path) -> None:
        self._note("generate")
        Path(path).write_bytes(_h(name.encode(), str(seed).encode(), str(input_shape).encode(),
                                  str(time.time()).encode()) * 8)

    def freeze(self, model_path, inputs, outputs, signature, trust_model_code=False):
        self._note("freeze")
        p = Path(model_path)
        content = b"".join(f.read_bytes() for f in sorted(p.rglob("*")) if f.is_file()) if p.is_dir() \
            else p.read_bytes()
        if p.suffix == ".keras" and "examples" in p.parts:
            content = p.name.encode()  # generated examples differ in bytes, not in meaning
        if content.startswith(b"BROKEN"):
            from converter.errors import FreezeError  # what the real freeze raises for a damaged file

            raise FreezeError("cannot freeze a broken model", hint="re-save it with model.save('model.keras')")
        frozen = b"FROZEN" + _h(content, json.dumps(inputs, sort_keys=True).encode(), signature.encode()) * 64
        meta = {"inputs": inputs, "outputs": outputs or ["out"]}
        ranged = {i["name"]: i["profiles"] for i in inputs if i.get("profiles")}
        if ranged:  # as the real backend forms them: the k-th range of every input is profile k
            count = max(len(v) for v in ranged.values())
            meta["profiles"] = [{n: rs[min(k, len(rs) - 1)] for n, rs in ranged.items()} for k in range(count)]
        return frozen, meta

    def parse(self, frozen: bytes):
        """The "parsed graph" depends on the frozen graph only, as the real one does (for one converter)."""
        self._note("parse")
        return b"GRAPH" + _h(frozen) * 64, {"op_counts": {"Conv2D": 3, "Relu": 3}, "nodes": 6}

    def construct(self, graph: bytes):
        self._note("construct")
        if not graph.startswith(b"GRAPH"):  # what the real Graph.from_bytes refuses (e.g. an old parse report)
            from converter.errors import DamagedGraphError

            raise DamagedGraphError("not a tf2trt parsed-graph blob")
        return b"SNAP" + _h(graph, self.source().encode()) * 128, {"layers": 6}

    def optimize(self, snapshot: bytes, builder: dict, timing_cache):
        self._note("optimize")
        if timing_cache is not None:
            old = Path(timing_cache).read_bytes() if Path(timing_cache).exists() else b""
            Path(timing_cache).write_bytes(old[-64:] + _h(snapshot)[:8])
        engine = b"ENGINE" + _h(snapshot, json.dumps({k: builder.get(k) for k in ("workspace", "opt_level", "targets")},
                                                     sort_keys=True).encode()) * 256
        return engine, {"layers": 6}

    def verify(self, frozen, snapshot, inputs_npz, seed, samples, rtol, atol, shapes=None) -> dict:
        """``shapes`` (the config's verification.shapes) give the report one row each, as a dynamic network's."""
        self._note("verify")
        err = float(os.environ.get("TF2TRT_FAKE_ERROR", "1e-6"))
        passed = err <= atol
        report = {"checked": "reference-executor", "passed": passed, "samples": samples,
                  "outputs": [{"name": "out", "max_abs_err": err, "max_rel_err": err * 10,
                               "out_of_tolerance": 0.0 if passed else 1.0, "passed": passed}]}
        if shapes:
            report["shapes"] = [{"inputs": dict(s), "passed": passed,
                                 "outputs": {"out": {"passed": passed, "max_abs_err": err, "max_rel_err": err * 10}}}
                                for s in shapes]
        return report


def fake_log(path: Path) -> list[str]:
    """Stages run so far, in order, from a $TF2TRT_FAKE_LOG file."""
    if not path.exists():
        return []
    return [line.split()[1] for line in path.read_text().splitlines() if line.strip()]
