"""Cache keys name only what a stage runs (issue 7): code edits re-run only the stages that run that code.

The code digests read a *copy* of ``converter/`` (the backends' ``source_root``),
which the tests edit; the code that runs is the checkout's, unchanged.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from conftest import REPO
from fakes import FakeBackend
from pipeline.config import load_config
from pipeline.stages import OUTPUT_ROLE, PIPELINE, STAGES, StageContext, get_stage, run_build
from pipeline.store import ArtifactStore

CONVERTER = REPO / "converter"


@pytest.fixture
def source_copy(tmp_path) -> Path:
    """A copy of the repo's converter/ (and pipeline/cli.py) to edit: ``<copy>/converter`` is the code root."""
    root = tmp_path / "src"
    shutil.copytree(CONVERTER, root / "converter", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pipeline").mkdir()
    shutil.copy2(REPO / "pipeline" / "cli.py", root / "pipeline" / "cli.py")
    return root


def append_comment(path: Path) -> None:
    path.write_text(path.read_text() + "\n# an edit that changes no behaviour\n")


def build(path, artifacts, backend):
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), backend)
    summary = run_build(ctx)
    assert summary["ok"], summary
    return {s["name"]: s for s in summary["stages"]}, ArtifactStore(artifacts).load_run(ctx.config_id)


def rebuilt(stages) -> list[str]:
    return [s for s in STAGES if stages[s]["status"] == "built"]


# ----------------------------------------------------------------- the test


def test_an_op_converter_edit_reruns_construct_with_the_same_snapshot(configs, artifacts, source_copy):
    path = configs.write()
    backend = FakeBackend(source_root=source_copy / "converter")
    stages, run = build(path, artifacts, backend)
    assert rebuilt(stages) == list(STAGES)
    snapshot = run["stages"]["construct"]["outputs"]["snapshot"]

    append_comment(source_copy / "converter" / "ops" / "math.py")
    stages, run = build(path, artifacts, backend)
    assert [stages[s]["status"] for s in STAGES] == ["cached", "built", "built", "cached", "cached"]
    assert stages["construct"]["reason"] == "rebuilt: key changed in code.ops/math.py"
    assert stages["parse"]["reason"] == "rebuilt: key changed in code.ops/math.py"  # its support check is in ops/
    assert run["stages"]["construct"]["outputs"]["snapshot"] == snapshot


def test_editing_the_clis_reruns_nothing(configs, artifacts, source_copy):
    path = configs.write()
    backend = FakeBackend(source_root=source_copy / "converter")
    build(path, artifacts, backend)
    append_comment(source_copy / "converter" / "cli_convert.py")
    append_comment(source_copy / "pipeline" / "cli.py")
    stages, _ = build(path, artifacts, backend)
    assert rebuilt(stages) == []


# What an edit of each file re-runs when its outputs stay the same bytes (a downstream
# stage re-runs only if its own code list names the file).
EDITS = [
    ("ops/math.py", ["parse", "construct"]),
    ("graph.py", ["parse", "construct"]),
    ("fuse.py", ["parse"]),  # construct reads the fused graph: a fusion edit reaches it only if the graph changes
    ("construct.py", ["construct"]),
    ("snapshot.py", ["construct", "optimize", "verify"]),
    ("layers/base.py", ["parse", "construct", "optimize", "verify"]),  # the op modules import layers/
    ("engine.py", ["optimize"]),
    ("verify.py", ["verify"]),
    ("reference.py", ["verify"]),
    ("freeze.py", ["freeze", "parse", "construct", "verify"]),
    ("cli_convert.py", []),
    ("api.py", []),
    ("runtime.py", []),
    ("__init__.py", []),  # the package facade: the backend imports from the modules themselves
]


@pytest.mark.parametrize("edited, expected", EDITS, ids=[e for e, _ in EDITS])
def test_a_code_edit_reruns_the_stages_that_run_it(configs, artifacts, source_copy, edited, expected):
    path = configs.write()
    backend = FakeBackend(source_root=source_copy / "converter")
    build(path, artifacts, backend)
    append_comment(source_copy / "converter" / edited)
    stages, _ = build(path, artifacts, backend)
    assert rebuilt(stages) == expected
    for s in expected:
        assert stages[s]["reason"] == f"rebuilt: key changed in code.{edited}"


def test_a_new_file_in_a_listed_package_changes_the_key(configs, artifacts, source_copy):
    path = configs.write()
    backend = FakeBackend(source_root=source_copy / "converter")
    build(path, artifacts, backend)
    (source_copy / "converter" / "layers" / "brand_new.py").write_text("X = 1\n")
    stages, _ = build(path, artifacts, backend)
    assert rebuilt(stages) == ["parse", "construct", "optimize", "verify"]
    assert stages["optimize"]["reason"] == "rebuilt: key changed in code.layers/brand_new.py"


def test_a_reason_names_a_few_changed_files_and_counts_the_rest(configs, artifacts, source_copy):
    path = configs.write()
    backend = FakeBackend(source_root=source_copy / "converter")
    build(path, artifacts, backend)
    edited = sorted((source_copy / "converter" / "layers").glob("*.py"))
    assert len(edited) > 6
    for f in edited:
        append_comment(f)
    stages, _ = build(path, artifacts, backend)
    reason = stages["optimize"]["reason"]
    assert reason.startswith("rebuilt: key changed in code.layers/") and reason.endswith(f"and {len(edited) - 6} more")


def test_a_listed_file_that_is_gone_fails_the_stage_loudly(configs, artifacts, source_copy):
    path = configs.write()
    (source_copy / "converter" / "engine.py").unlink()
    ctx = StageContext(load_config(path), ArtifactStore(artifacts), FakeBackend(source_root=source_copy / "converter"))
    summary = run_build(ctx)
    stages = {s["name"]: s for s in summary["stages"]}
    assert stages["construct"]["status"] == "built" and stages["optimize"]["status"] == "failed"
    assert "engine.py" in stages["optimize"]["reason"] and not summary["ok"]


# ------------------------------------------------- the code lists are the truth


def _entry(path: Path) -> str:
    """The code-list entry of a converter file: ``x.py``, or ``pkg/`` for a file in a subpackage."""
    rel = path.relative_to(CONVERTER)
    return rel.parts[0] + "/" if len(rel.parts) > 1 or path.is_dir() else rel.parts[0]


def _files(entry: str) -> list[Path]:
    p = CONVERTER / entry.rstrip("/")
    return sorted(p.rglob("*.py")) if entry.endswith("/") else [p]


def _resolve(base: Path) -> Path | None:
    if base.with_suffix(".py").is_file():
        return base.with_suffix(".py")
    if (base / "__init__.py").is_file():
        return base
    return None


def _converter_imports(path: Path) -> set[str]:
    """The converter entries a module imports anywhere in it (lazy imports too).

    ``converter`` itself (the facade) is never a target: ``from . import trt``
    imports the trt module, and the facade's own eager imports only bind names.
    """
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[Path] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = path.parent
                for _ in range(node.level - 1):
                    base = base.parent
            elif (node.module or "").split(".")[0] == "converter":
                base = CONVERTER.parent
            else:
                continue
            mod = base.joinpath(*node.module.split(".")) if node.module else base
            targets.append(mod)
            targets += [mod / a.name for a in node.names]
        elif isinstance(node, ast.Import):
            targets += [CONVERTER.parent.joinpath(*a.name.split(".")) for a in node.names
                        if a.name.split(".")[0] == "converter"]
        for t in targets:
            resolved = _resolve(t)
            if resolved is not None and resolved != CONVERTER:
                out.add(_entry(resolved))
    return out


def _backend_entry_points() -> dict[str, set[str]]:
    """The converter modules each ``ConverterBackend`` stage method imports (directly or via a helper)."""
    tree = ast.parse((REPO / "pipeline" / "backend.py").read_text())
    helpers = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ConverterBackend")

    def imports(fn) -> set[str]:
        found = set()
        for node in ast.walk(fn):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("converter."):
                found.add(_entry(_resolve(CONVERTER.parent.joinpath(*node.module.split(".")))))
            elif isinstance(node, ast.Import):
                assert not any(a.name == "converter" for a in node.names), \
                    f"{fn.name} imports the converter facade; import from its modules"
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in helpers:
                found |= imports(helpers[node.func.id])
        return found

    return {m.name: imports(m) for m in cls.body if isinstance(m, ast.FunctionDef) and m.name in STAGES}


#: Modules a stage's code imports but does not run, so they are not in its list.
NAMES_ONLY = {
    "parse": {"construct.py"},     # ops/loops.py, conditionals.py import convert_nodes to build regions; parse
                                   # runs only their support checks
    "construct": {"fuse.py"},      # graph.parse() imports it; construct loads a graph parse has fused
    "optimize": {"construct.py",   # engine._resolve imports ConvertedNetwork for an isinstance check
                 "runtime.py"},    # the fp16/bf16 fallback's verify.py runs engines on a GPU; it runs the executor
    "verify": {"runtime.py"},      # runs an engine on a GPU; the pipeline verifies the snapshot
}


def _closure(entries: set[str], stop: set[str]) -> set[str]:
    seen: set[str] = set()
    todo = [e for e in entries if e not in stop]
    while todo:
        e = todo.pop()
        if e in seen:
            continue
        seen.add(e)
        for f in _files(e):
            todo += [i for i in _converter_imports(f) if i not in seen and i not in stop]
    return seen


@pytest.mark.parametrize("stage", STAGES)
def test_each_code_list_is_exactly_what_the_stage_imports(stage):
    entry_points = _backend_entry_points()[stage]
    assert entry_points, f"ConverterBackend.{stage} imports nothing from converter"
    expected = _closure(entry_points, NAMES_ONLY.get(stage, set()))
    listed = set(get_stage(stage).code)
    assert listed == expected, (f"{stage}: listed but not run: {sorted(listed - expected)}; "
                                f"run but not listed: {sorted(expected - listed)}")


def test_stages_read_only_from_earlier_stages():
    assert STAGES == ("freeze", "parse", "construct", "optimize", "verify")
    seen: set[str] = set()
    for stage in PIPELINE:
        for up, role in stage.reads.values():
            assert up in seen, f"{stage.name} reads {up}, which runs later"
            assert role == OUTPUT_ROLE[up], f"{stage.name} reads {up}'s {role}, not its output"
        seen.add(stage.name)


def test_one_prefect_task_per_stage_named_as_before():
    from pipeline import flows

    assert list(flows.TASKS) == list(STAGES)
    for name, t in flows.TASKS.items():
        assert t.name == name and t.task_run_name == f"{name}-{{name}}"
        assert t.fn.__doc__ == type(get_stage(name)).__doc__
    assert len({t.task_key for t in flows.TASKS.values()}) == len(STAGES)


# ------------------------------------------------------------ the real converter


def test_on_the_real_converter_an_op_edit_rebuilds_no_engine(tmp_path, source_copy):
    """A tiny Keras model through TensorFlow and TensorRT (about 10 s)."""
    from test_dashboard import tiny_config

    from pipeline.backend import ConverterBackend

    cfg = tiny_config(tmp_path)
    artifacts = tmp_path / "artifacts"
    backend = ConverterBackend(source_root=source_copy / "converter")
    stages, run = build(cfg, artifacts, backend)
    assert rebuilt(stages) == list(STAGES)
    snapshot = run["stages"]["construct"]["outputs"]["snapshot"]

    append_comment(source_copy / "converter" / "ops" / "math.py")
    stages, run = build(cfg, artifacts, backend)
    assert [stages[s]["status"] for s in STAGES] == ["cached", "built", "built", "cached", "cached"]
    assert run["stages"]["construct"]["outputs"]["snapshot"] == snapshot

    append_comment(source_copy / "converter" / "cli_convert.py")
    append_comment(source_copy / "pipeline" / "cli.py")
    stages, _ = build(cfg, artifacts, backend)
    assert rebuilt(stages) == []


CONSTRUCT_WITHOUT_TF = r"""
import importlib.abc, json, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "keras"):
            raise ImportError("TensorFlow is not installed here")
sys.meta_path.insert(0, NoTensorFlow())
from pipeline.backend import ConverterBackend
from pipeline.config import load_config
from pipeline.stages import StageContext, StageResult, run_stage
from pipeline.store import ArtifactStore
ctx = StageContext(load_config(sys.argv[2]), ArtifactStore(sys.argv[1]), ConverterBackend())
upstream = {k: StageResult.from_dict(v) for k, v in json.loads(sys.argv[3]).items()}
res = run_stage("construct", ctx, upstream)
print(json.dumps(res.to_dict()))
"""


def test_on_the_real_converter_construct_runs_from_the_parsed_graph_without_tensorflow(tmp_path):
    """Construct runs from parse's graph blob in a process where TensorFlow cannot be imported, and
    the snapshot it stores is the one an in-process construct reuses (about 10 s)."""
    import json
    import os
    import subprocess
    import sys

    from test_dashboard import tiny_config

    from pipeline.backend import ConverterBackend
    from pipeline.stages import components, run_stage

    cfg = tiny_config(tmp_path)
    artifacts = tmp_path / "artifacts"
    ctx = StageContext(load_config(cfg), ArtifactStore(artifacts), ConverterBackend())
    results = {}
    for stage in ("freeze", "parse"):
        results[stage] = run_stage(stage, ctx, dict(results))
        assert results[stage].ok, results[stage].reason
    assert set(results["parse"].outputs) == {"graph"} and results["parse"].meta["nodes"] > 0
    upstream = json.dumps({k: v.to_dict() for k, v in results.items()})
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    res = subprocess.run([sys.executable, "-c", CONSTRUCT_WITHOUT_TF, str(artifacts), str(cfg), upstream],
                         env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-4000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["status"] == "built", out
    here = run_stage("construct", ctx, results)
    assert here.status == "cached" and here.outputs == out["outputs"]
    assert set(components("construct", ctx, results)["toolchain"]) == {"tensorrt_flavor", "tensorrt"}
