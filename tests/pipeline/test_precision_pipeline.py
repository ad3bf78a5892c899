"""Reduced precision in the pipeline: the builder.precision keys, what enters which stage key, the manifest.

The key behaviour runs on a fake converter that records what each stage was asked for; one fp16 build of a
small real Keras CNN goes through TensorFlow, the lowering, the fallback check and TensorRT.
"""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from fakes import FakeBackend
from pipeline.config import ConfigError, LoadedConfig, load_config
from pipeline.stages import STAGES, StageContext, get_stage, run_build
from pipeline.stages import optimize as optimize_stage
from pipeline.stages import verify as verify_stage
from pipeline.store import ArtifactStore


def _h(*parts) -> bytes:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()


class PrecisionFake(FakeBackend):
    """The fake converter with the precision keywords: what each call was given is kept in ``seen``.

    Its lowered snapshot depends on the snapshot and the precision settings; its fallback keeps one layer in
    fp32 (``dense``) and depends on the frozen graph and the verification settings, as the real one does.
    """

    def __init__(self, **kw):
        super().__init__(**kw)
        self.seen: dict[str, dict] = {}

    def construct(self, graph, quantization=None):
        self.seen["construct"] = {"quantization": quantization}
        snap, meta = super().construct(graph)
        return (snap + _h("int8") if quantization == "int8" else snap), meta

    def optimize(self, snapshot, builder, timing_cache, precision=None, frozen=None, verification=None):
        self.seen["optimize"] = {"precision": precision, "frozen": frozen is not None, "verification": verification}
        if precision is None:
            return super().optimize(snapshot, builder, timing_cache)
        fallback = ["model/dense/MatMul"] if precision["fallback"] else []
        lowered = b"SNAP-" + precision["precision"].encode() + _h(snapshot.hex(), precision, verification, fallback) * 8
        engine, meta = super().optimize(lowered, builder, timing_cache)
        p = precision["precision"]
        kept = {"model/probs/Softmax": "softmax", **{n: "fallback" for n in fallback},
                **{f"model/{k}": f"keep_fp32: {k}" for k in precision["keep_fp32"]}}
        meta["precision"] = {"precision": p, "io": precision["io"], "counts": {p: 4, "fp32": len(kept)}, "casts": 2,
                             "kept_fp32": kept, "fallback": fallback, "keep_fp32": precision["keep_fp32"],
                             "fallback_enabled": precision["fallback"], "summary": f"4 layers in {p}"}
        if precision["fallback"]:
            meta["precision"].update({"trials": [{"kept": 1, "passed": True}], "passed": True})
        return engine, meta, lowered

    def verify(self, frozen, snapshot, inputs_npz, seed, samples, rtol, atol, shapes=None, precision=None,
               lowered=None):
        self.seen["verify"] = {"rtol": rtol, "atol": atol, "precision": precision, "lowered": lowered}
        report = super().verify(frozen, snapshot, inputs_npz, seed, samples, rtol, atol, shapes=shapes)
        if precision is not None:
            report["precision"] = {"precision": precision["precision"], "against_fp32_network": {"out": 1e-3},
                                   "fallback": precision["fallback_layers"],
                                   "top_layers": [{"layer": "model/conv/Conv2D", "growth": 2e-3}]}
        return report


BUILDER = """\
builder:
  workspace: 1048576
  opt_level: 3
  targets: null
"""


def write(configs, builder_extra: str = "", verification: str = "  rtol: 1.0e-3\n  atol: 1.0e-5\n", name="m"):
    """A config like conftest's, with extra ``builder:`` lines and its ``verification:`` section given."""
    path = configs.write(name=name)
    text = path.read_text()
    start = text.index("builder:")
    end = text.index("output:")
    path.write_text(text[:start] + BUILDER + builder_extra + "verification:\n" + verification + text[end:])
    return path


def build(path, artifacts, backend):
    backend.calls.clear()
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), backend)
    summary = run_build(ctx)
    return summary, {s["name"]: s for s in summary["stages"]}


def rebuilt(stages) -> list[str]:
    return [s for s in STAGES if stages[s]["status"] == "built"]


def _error(configs, builder_extra: str) -> str:
    path = write(configs, builder_extra)
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    return str(exc.value)


def _line_of(configs, key: str) -> int:
    """The line of ``builder.<key>:`` in the config ``write`` wrote."""
    lines = (configs.root / "m.yaml").read_text().splitlines()
    return next(n for n, text in enumerate(lines, 1) if text.strip().startswith(key.split(".")[-1] + ":"))


# --------------------------------------------------------------------------- config


def test_precision_defaults_and_canonical_names(configs):
    b = load_config(write(configs)).spec.builder
    assert (b.precision, b.keep_fp32, b.io_types, b.fallback, b.reduced) == ("fp32", [], "fp32", True, False)
    b = load_config(write(configs, "  precision: FP16\n  keep_fp32: ['*/attention/*']\n  io_types: native\n"
                                   "  fallback: false\n")).spec.builder
    assert (b.precision, b.keep_fp32, b.io_types, b.fallback, b.reduced) == ("fp16", ["*/attention/*"], "native",
                                                                            False, True)
    assert load_config(write(configs, "  precision: bfloat16\n")).spec.builder.precision == "bf16"


@pytest.mark.parametrize("extra, key, problem, fix", [
    ("  precision: fp64\n", "builder.precision", "unknown precision 'fp64': use one of fp32, fp16, bf16, int8",
     "fp32, fp16, bf16 or int8"),
    ("  precision: 16\n", "builder.precision", "expected one of fp32, fp16, bf16, int8 (got 16)", "fp16"),
    ("  precision: fp16\n  keep_fp32: ['a*', 3]\n", "builder.keep_fp32",
     "keep_fp32[1]: expected a non-empty string pattern", "fnmatch patterns"),
    ("  precision: fp16\n  keep_fp32: '*/attention/*'\n", "builder.keep_fp32",
     "expected a list of patterns, like ['*/attention/*']", "fnmatch patterns"),
    ("  keep_fp32: ['*/softmax*']\n", "builder.keep_fp32",
     "keep_fp32 only applies to precision fp16 or bf16 (precision is fp32): set builder.precision: fp16", "patterns"),
    ("  precision: int8\n  io_types: native\n", "builder.io_types",
     "io_types only applies to precision fp16 or bf16 (precision is int8)", "native"),
    ("  precision: fp16\n  io_types: half\n", "builder.io_types", "Input should be 'fp32' or 'native'", "native"),
    ("  precision: fp16\n  fallback: sometimes\n", "builder.fallback", "valid boolean", "automatic fallback"),
])
def test_bad_precision_settings_name_file_line_and_fix(configs, extra, key, problem, fix):
    text = _error(configs, extra)
    first, second = text.splitlines()[:2]
    assert first.startswith(f"{configs.root / 'm.yaml'}:{_line_of(configs, key)}: {key}: "), text
    assert problem in first, text
    assert second.startswith("  fix: ") and fix in second, text


def test_an_invalid_precision_is_one_problem_not_two(configs):
    text = _error(configs, "  precision: fp64\n  keep_fp32: ['*/softmax*']\n")
    assert text.count("\n  fix: ") == 1 and "builder.precision" in text, text


def test_explicit_tolerances_survive_the_trip_to_a_task(configs):
    """Prefect tasks get the config as JSON: which keys the file set must survive it (model_fields_set)."""
    cfg = load_config(write(configs, "  precision: fp16\n", verification="  rtol: 1.0e-3\n"))
    again = LoadedConfig.from_json(json.loads(json.dumps(cfg.to_json())))
    assert again.spec == cfg.spec
    assert verify_stage.tolerances(again.spec) == verify_stage.tolerances(cfg.spec) == (1e-3, 1e-2)
    fp32 = load_config(write(configs, verification="  samples: 1\n"))
    assert verify_stage.tolerances(LoadedConfig.from_json(fp32.to_json()).spec) == (1e-4, 1e-5)


@pytest.mark.parametrize("precision, verification, expected", [
    ("fp32", "  samples: 1\n", (1e-4, 1e-5)),  # the schema's defaults, as always
    ("fp16", "  samples: 1\n", (1e-2, 1e-2)),
    ("bf16", "  samples: 1\n", (5e-2, 5e-2)),
    ("int8", "  samples: 1\n", (1e-4, 1e-5)),
    ("fp16", "  atol: 0.001\n", (1e-2, 1e-3)),  # one set, the other the precision's
    ("fp16", "  rtol: 1.0e-4\n  atol: 1.0e-5\n", (1e-4, 1e-5)),  # set to fp32's values: still the config's
])
def test_verification_tolerances_follow_the_precision_unless_set(configs, precision, verification, expected):
    spec = load_config(write(configs, f"  precision: {precision}\n", verification=verification)).spec
    assert verify_stage.tolerances(spec) == expected


# --------------------------------------------------------------------------- keys


def _components(path, artifacts, backend):
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), backend)
    summary = run_build(ctx)
    assert summary["ok"], summary
    run = ArtifactStore(artifacts).load_run(ctx.config_id)
    return {s: run["stages"][s]["components"] for s in STAGES}, {s: run["stages"][s]["key"] for s in STAGES}


def test_fp32_keys_are_what_they_were(configs, artifacts, tmp_path):
    """An fp32 config's components hold no precision key, no precision code and nothing new read."""
    backend = PrecisionFake()
    plain, keys = _components(write(configs), artifacts, backend)
    assert plain["construct"]["config"] == {}
    assert set(plain["optimize"]["config"]) == {"builder.workspace", "builder.opt_level", "builder.targets"}
    assert set(plain["optimize"]["inputs"]) == {"snapshot"}
    assert set(plain["optimize"]["toolchain"]) == {"tensorrt_flavor", "tensorrt"}
    assert set(plain["optimize"]["code"]) == set(optimize_stage.CODE)
    assert set(plain["verify"]["config"]) == {"verification.rtol", "verification.atol", "verification.samples",
                                              "verification.seed"}
    assert set(plain["verify"]["inputs"]) == {"frozen", "snapshot", "engine", "inputs_npz"}
    assert set(plain["verify"]["code"]) == set(verify_stage.CODE)
    assert backend.seen["construct"] == {"quantization": None}
    assert backend.seen["optimize"] == {"precision": None, "frozen": False, "verification": None}
    assert backend.seen["verify"]["precision"] is None and backend.seen["verify"]["lowered"] is None
    # writing the defaults out changes no key
    explicit, keys2 = _components(write(configs, "  precision: fp32\n  fallback: true\n  keep_fp32: []\n"
                                                 "  io_types: fp32\n", name="explicit"), tmp_path / "a2", backend)
    assert keys2 == keys and explicit == plain


def test_a_precision_change_rebuilds_optimize_and_verify_only(configs, artifacts):
    backend = PrecisionFake()
    summary, stages = build(write(configs), artifacts, backend)
    assert summary["ok"] and rebuilt(stages) == list(STAGES)
    summary, stages = build(write(configs, "  precision: fp16\n"), artifacts, backend)
    assert summary["ok"], summary
    assert rebuilt(stages) == ["optimize", "verify"]
    assert "code.precision.py" in stages["optimize"]["reason"]  # the changed code is named first, then config keys
    assert backend.calls == ["optimize", "verify"]
    # the fallback verifies: optimize was given the frozen graph and verification's settings, at fp16's tolerances
    seen = backend.seen["optimize"]
    assert seen["precision"] == {"precision": "fp16", "keep_fp32": [], "io": "fp32", "fallback": True}
    assert seen["frozen"] and seen["verification"] == {"seed": 0, "samples": 1, "rtol": 1e-3, "atol": 1e-5,
                                                       "inputs_npz": None}
    # verify checked optimize's lowered network with the layers the fallback kept
    run = ArtifactStore(artifacts).load_run(StageContext(load_config(write(configs, "  precision: fp16\n")),
                                                         ArtifactStore(artifacts), backend).config_id)
    lowered = run["stages"]["optimize"]["outputs"]["lowered"]
    assert run["stages"]["verify"]["components"]["inputs"]["lowered"] == lowered
    assert backend.seen["verify"]["precision"]["fallback_layers"] == ["model/dense/MatMul"]
    assert backend.seen["verify"]["lowered"] == ArtifactStore(artifacts).read_blob(lowered)
    assert run["stages"]["optimize"]["components"]["code"].keys() == set(optimize_stage.FALLBACK_CODE)
    assert run["stages"]["verify"]["components"]["code"].keys() == set(get_stage("verify").code)
    # and back: every fp32 stage is still cached
    _, stages = build(write(configs), artifacts, backend)
    assert rebuilt(stages) == []


@pytest.mark.parametrize("builder_extra, edited, expected", [
    ("", "precision.py", []),  # an fp32 build runs no precision code
    ("", "precision_verify.py", []),
    ("  precision: fp16\n", "precision.py", ["optimize", "verify"]),
    ("  precision: fp16\n", "precision_verify.py", ["optimize", "verify"]),  # the fallback runs it in optimize
    ("  precision: fp16\n  fallback: false\n", "precision_verify.py", ["verify"]),
    ("  precision: fp16\n", "reference.py", ["optimize", "verify"]),  # the fallback's executor
    ("  precision: fp16\n  fallback: false\n", "reference.py", ["verify"]),
])
def test_precision_code_is_in_the_keys_of_the_builds_that_run_it(configs, artifacts, tmp_path, builder_extra, edited,
                                                                  expected):
    import shutil

    from conftest import REPO

    root = tmp_path / "src" / "converter"
    shutil.copytree(REPO / "converter", root, ignore=shutil.ignore_patterns("__pycache__"))
    backend = PrecisionFake(source_root=root)
    path = write(configs, builder_extra)
    build(path, artifacts, backend)
    (root / edited).write_text((root / edited).read_text() + "\n# an edit that changes no behaviour\n")
    _, stages = build(path, artifacts, backend)
    assert rebuilt(stages) == expected
    for s in expected:
        assert stages[s]["reason"] == f"rebuilt: key changed in code.{edited}"


def test_precision_keys_rebuild_optimize(configs, artifacts):
    backend = PrecisionFake()
    build(write(configs, "  precision: fp16\n"), artifacts, backend)
    _, stages = build(write(configs, "  precision: fp16\n  keep_fp32: ['dense*']\n"), artifacts, backend)
    assert rebuilt(stages) == ["optimize", "verify"]
    assert stages["optimize"]["reason"] == "rebuilt: key changed in builder.keep_fp32"
    _, stages = build(write(configs, "  precision: fp16\n  keep_fp32: ['dense*']\n  io_types: native\n"), artifacts,
                      backend)
    assert rebuilt(stages) == ["optimize", "verify"]
    assert stages["optimize"]["reason"] == "rebuilt: key changed in builder.io_types"


def test_what_the_fallback_reads_is_in_the_optimize_key_only_with_the_fallback(configs, artifacts):
    backend = PrecisionFake()
    build(write(configs, "  precision: fp16\n"), artifacts, backend)
    # the fallback verifies at the verification seed: a new seed is a new search
    _, stages = build(write(configs, "  precision: fp16\n", verification="  rtol: 1.0e-3\n  seed: 7\n"), artifacts,
                      backend)
    assert rebuilt(stages) == ["optimize", "verify"]
    assert "verification.seed" in stages["optimize"]["reason"]
    # without the fallback optimize reads neither TensorFlow's graph nor verification's settings
    comps, _ = _components(write(configs, "  precision: fp16\n  fallback: false\n"), artifacts, backend)
    opt = comps["optimize"]
    assert not any(k.startswith("verification.") for k in opt["config"]) and set(opt["inputs"]) == {"snapshot"}
    assert set(opt["toolchain"]) == {"tensorrt_flavor", "tensorrt"}
    assert set(opt["code"]) == set(optimize_stage.LOWER_CODE)
    assert backend.seen["optimize"]["frozen"] is False and backend.seen["optimize"]["verification"] is None
    _, stages = build(write(configs, "  precision: fp16\n  fallback: false\n",
                            verification="  rtol: 1.0e-3\n  seed: 8\n"), artifacts, backend)
    assert rebuilt(stages) == ["verify"]


def test_reduced_precision_verifies_at_the_precisions_tolerances(configs, artifacts):
    backend = PrecisionFake()
    build(write(configs, "  precision: bf16\n", verification="  samples: 1\n"), artifacts, backend)
    assert (backend.seen["verify"]["rtol"], backend.seen["verify"]["atol"]) == (5e-2, 5e-2)
    assert backend.seen["optimize"]["verification"]["rtol"] == 5e-2


def test_int8_reaches_construct_only_as_quantization(configs, artifacts):
    backend = PrecisionFake()
    build(write(configs), artifacts, backend)
    _, stages = build(write(configs, "  precision: int8\n"), artifacts, backend)
    assert rebuilt(stages) == ["construct", "optimize", "verify"]
    assert "builder.quantization" in stages["construct"]["reason"]
    assert backend.seen["construct"] == {"quantization": "int8"}
    assert backend.seen["optimize"]["precision"] is None  # nothing to lower: the Q/DQ network is built as it is
    comps, _ = _components(write(configs, "  precision: int8\n"), artifacts, backend)
    assert comps["construct"]["config"] == {"builder.quantization": "int8"}
    assert set(comps["optimize"]["code"]) == set(optimize_stage.CODE)
    # fp16 and bf16 lower in optimize: construct keeps fp32's key
    _, stages = build(write(configs, "  precision: fp16\n"), artifacts, backend)
    assert stages["construct"]["status"] == "cached"


def test_int8_construct_of_a_qat_graph_and_of_a_plain_one(tmp_path):
    """The real backend: a QAT graph becomes Q/DQ layers; a graph without quantization ops is a user error."""
    from converter.errors import ModelError
    from converter.freeze import freeze
    from converter.graph import parse
    from converter.snapshot import Snapshot

    from pipeline.backend import ConverterBackend
    from tests.converter.models import qat_cnn_savedmodel, small_cnn

    path, _ = qat_cnn_savedmodel(tmp_path / "qat")
    graph = parse(freeze(path)).to_bytes()
    blob, meta = ConverterBackend().construct(graph, quantization="int8")
    types = Snapshot.from_bytes(blob).layer_types()
    assert types["QUANTIZE"] > 0 and types["DEQUANTIZE"] > 0 and meta["layers"] > 0
    small_cnn().save(tmp_path / "cnn.keras")
    with pytest.raises(ModelError, match="needs a quantization-aware model") as exc:
        ConverterBackend().construct(parse(freeze(tmp_path / "cnn.keras")).to_bytes(), quantization="int8")
    assert "tensorflow-model-optimization" in exc.value.hint


# --------------------------------------------------------------------------- manifest, status, dashboard


def test_the_manifest_status_and_dashboard_say_what_the_engine_computes_in(configs, artifacts):
    from rich.console import Console

    from pipeline.flows import build_summary_markdown
    from pipeline.stages import settings_line
    from pipeline.status import collect_status, render_status

    backend = PrecisionFake()
    path = write(configs, "  precision: fp16\n  keep_fp32: ['conv*']\n")
    summary, _ = build(path, artifacts, backend)
    assert summary["ok"], summary
    meta = json.loads((path.parent / "out" / "m.engine.json").read_text())
    p = meta["precision"]
    assert (p["precision"], p["io_types"], p["keep_fp32"], p["fallback_enabled"]) == ("fp16", "fp32", ["conv*"], True)
    assert p["counts"] == {"fp16": 4, "fp32": 3} and p["fallback"] == ["model/dense/MatMul"]
    assert p["kept_fp32"] == {"model/probs/Softmax": "softmax", "model/dense/MatMul": "fallback",
                              "model/conv*": "keep_fp32: conv*"}
    assert meta["builder"]["precision"] == "fp16" and meta["verification"]["precision"]["precision"] == "fp16"
    assert summary["facts"]["precision"] == p
    assert summary["settings"]["precision"] == "fp16"
    assert summary["settings"]["verification"]["rtol"] == 1e-3 and summary["settings"]["verification"]["atol"] == 1e-5
    assert "precision fp16 (I/O fp32, 1 keep_fp32 pattern(s), fallback on)" in settings_line(summary["settings"])

    (row,) = collect_status([str(path)], str(artifacts))
    assert row["engine"]["precision"] == "fp16: 4 layers in fp16, 3 in fp32 (1 by the fallback)"
    buf = io.StringIO()
    render_status(Console(file=buf, width=200), [row])
    assert "precision: fp16: 4 layers in fp16, 3 in fp32 (1 by the fallback)" in buf.getvalue()

    md = build_summary_markdown(summary, meta["verification"], {})
    assert "| precision | fp16: 4 layers in fp16, 3 in fp32 (1 by the fallback); fallback kept " \
           "`model/dense/MatMul` |" in md
    assert "| out | 0.001 |" in md and "`model/conv/Conv2D` (+0.002)" in md


def test_an_fp32_manifest_and_dashboard_say_fp32(configs, artifacts, fake):
    from pipeline.flows import build_summary_markdown
    from pipeline.status import collect_status

    path = write(configs)
    summary, _ = build(path, artifacts, fake)
    meta = json.loads((path.parent / "out" / "m.engine.json").read_text())
    assert meta["precision"] == {"precision": "fp32", "io_types": "fp32"}
    assert "| precision | fp32 |" in build_summary_markdown(summary, {}, {})
    assert collect_status([str(path)], str(artifacts))[0]["engine"]["precision"] == "fp32"


# --------------------------------------------------------------------------- the real converter


@pytest.fixture(scope="module")
def cnn_dir(tmp_path_factory):
    from tests.converter.models import small_cnn

    d = tmp_path_factory.mktemp("cnn")
    small_cnn(0).save(d / "cnn.keras")
    return d


def _real_config(d, name: str, builder: str) -> object:
    path = d / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
model:
  path: cnn.keras
inputs:
  - name: image
    shape: [1, 16, 16, 3]
builder:
{builder}output: out/{name}.engine
""")
    return path


def test_an_fp16_build_of_a_real_model(cnn_dir, tmp_path):
    """small_cnn through freeze, parse, construct, the lowering with the fallback check, TensorRT and verify."""
    from pipeline.backend import ConverterBackend

    artifacts = tmp_path / "artifacts"
    backend = ConverterBackend()
    path = _real_config(cnn_dir, "cnn16", "  precision: fp16\n")
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), backend)
    summary = run_build(ctx)
    assert summary["ok"], summary
    meta = json.loads((cnn_dir / "out" / "cnn16.engine.json").read_text())
    p = meta["precision"]
    assert p["precision"] == "fp16" and p["counts"]["fp16"] > 0 and p["fallback_enabled"] is True
    assert p["kept_fp32"]["small_cnn_1/probs_1/Softmax"] == "softmax" and p["passed"] is True
    assert p["fallback"] == [] and p["trials"] == []  # it passes as lowered: nothing to fall back
    report = meta["verification"]
    assert report["passed"] is True and report["precision"]["precision"] == "fp16"
    assert {o["rtol"] for o in report["outputs"]} == {1e-2} and {o["atol"] for o in report["outputs"]} == {1e-2}
    assert set(report["precision"]["against_fp32_network"]) == {"probs"}
    store = ArtifactStore(artifacts)
    run = store.load_run(ctx.config_id)
    from converter.snapshot import Snapshot

    lowered = Snapshot.from_bytes(store.read_blob(run["stages"]["optimize"]["outputs"]["lowered"]))
    assert lowered.topology["strongly_typed"] is True and lowered.meta["precision"]["precision"] == "fp16"
    # a keep_fp32 change re-runs optimize (and the verify of the new network), nothing before it
    path = _real_config(cnn_dir, "cnn16", "  precision: fp16\n  keep_fp32: ['*/conv_1/*']\n")
    summary = run_build(StageContext(load_config(path), ArtifactStore(artifacts), backend))
    assert summary["ok"], summary
    assert [s["status"] for s in summary["stages"]] == ["cached", "cached", "cached", "built", "built"]
    assert summary["facts"]["precision"]["kept_fp32"]["small_cnn_1/conv_1/convolution"] == "keep_fp32: */conv_1/*"


def test_a_keep_fp32_pattern_that_matches_nothing_is_exit_2_with_the_hint(cnn_dir, tmp_path):
    from pipeline.backend import ConverterBackend

    path = _real_config(cnn_dir, "typo", "  precision: fp16\n  keep_fp32: ['*/atention/*']\n  fallback: false\n")
    summary = run_build(StageContext(load_config(path), ArtifactStore(tmp_path / "a"), ConverterBackend()))
    assert not summary["ok"] and summary["exit_code"] == 2
    stages = {s["name"]: s for s in summary["stages"]}
    assert [stages[s]["status"] for s in STAGES] == ["built", "built", "built", "failed", "skipped"]
    reason = stages["optimize"]["reason"]
    assert "keep_fp32 pattern(s) ['*/atention/*'] match no layer" in reason
    assert "hint: patterns are fnmatch globs over the layers' names" in reason


def test_tf2trt_build_refuses_a_bad_keep_fp32_before_any_work(configs, artifacts):
    from conftest import run_cli

    path = write(configs, "  precision: fp16\n  keep_fp32: [7]\n")
    res = run_cli(["build", str(path), "--artifacts", str(artifacts)])
    assert res.returncode == 2, res.stderr
    text = " ".join(res.stderr.split())  # the console wraps long lines
    assert f"{path}:{_line_of(configs, 'keep_fp32')}: builder.keep_fp32: keep_fp32[0]: expected a non-empty string " \
           "pattern" in text
    assert "fix: set builder.keep_fp32 to a list of fnmatch patterns" in text
    assert not (artifacts / "manifests").exists()


def test_the_fallback_builds_the_engine_from_the_network_that_passes(cnn_dir, tmp_path):
    """At tolerances fp16 cannot meet (fp32's network meets them: 1.5e-8 against TensorFlow), the fallback keeps
    layers in fp32 until the network passes; the engine, its manifest and verify all have that network."""
    from pipeline.backend import ConverterBackend

    path = _real_config(cnn_dir, "tight", "  precision: fp16\n")
    path.write_text(path.read_text() + "verification:\n  rtol: 1.0e-6\n  atol: 1.0e-7\n")
    summary = run_build(StageContext(load_config(path), ArtifactStore(tmp_path / "a"), ConverterBackend()))
    assert summary["ok"], summary
    p = json.loads((cnn_dir / "out" / "tight.engine.json").read_text())["precision"]
    assert p["fallback"] and p["passed"] is True
    assert {"kept": len(p["fallback"]), "passed": True} in p["trials"]  # the set kept passed its own trial
    assert all(p["kept_fp32"][name] == "fallback" for name in p["fallback"])
    assert summary["verification"]["passed"] is True
    # without the fallback the lowered network is built as it is, and verification fails it (exit 1)
    path = _real_config(cnn_dir, "tight", "  precision: fp16\n  fallback: false\n")
    path.write_text(path.read_text() + "verification:\n  rtol: 1.0e-6\n  atol: 1.0e-7\n")
    summary = run_build(StageContext(load_config(path), ArtifactStore(tmp_path / "a"), ConverterBackend()))
    assert not summary["ok"] and summary["exit_code"] == 1
    assert [s["status"] for s in summary["stages"]] == ["cached", "cached", "cached", "built", "failed"]
