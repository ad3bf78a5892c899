"""Optimization profiles in build configs: validated like the rest of the config, keyed only when given, and
frozen into a dynamic network by the real backend."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, load_config

BASE = """\
model:
  path: model.keras
inputs:
{inputs}
output: out/m.engine
"""

PROFILED = """\
  - name: image
    profiles:
      - {min: [1, 16, 16, 3], opt: [2, 16, 16, 3], max: [8, 16, 16, 3]}
"""


def _write(configs, inputs: str):
    configs.root.mkdir(parents=True, exist_ok=True)
    (configs.root / "model.keras").write_bytes(b"x")
    path = configs.root / "p.yaml"
    path.write_text(BASE.format(inputs=inputs))
    return path


def _error(configs, inputs: str) -> str:
    path = _write(configs, inputs)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert str(path) in msg and "fix:" in msg, msg
    return msg


def test_profiles_load(configs):
    cfg = load_config(_write(configs, PROFILED))
    spec = cfg.spec.inputs[0]
    assert spec.shape is None and spec.profiles[0].max == [8, 16, 16, 3]
    assert spec.key_record() == {"name": "image", "dtype": "float32",
                                 "profiles": [{"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}]}


def test_a_static_input_keys_as_before(configs):
    cfg = load_config(_write(configs, "  - {name: image, shape: [1, 16, 16, 3]}\n"))
    # the freeze key of existing configs must not change (no "profiles": null in it)
    assert cfg.spec.inputs[0].key_record() == {"name": "image", "shape": [1, 16, 16, 3], "dtype": "float32"}


@pytest.mark.parametrize("inputs, expected", [
    ("  - name: image\n    shape: [1, 16, 16, 3]\n    profiles:\n      - {min: [1], opt: [1], max: [2]}\n",
     "exactly one of shape"),
    ("  - name: image\n", "exactly one of shape"),
    ("  - name: image\n    profiles:\n      - {min: [4, 16], opt: [2, 16], max: [8, 16]}\n", "min ≤ opt ≤ max"),
    ("  - name: image\n    profiles:\n      - {min: [1, 16], opt: [2, 16]}\n", "max"),
    ("  - name: image\n    profiles: []\n", "at least one"),
])
def test_bad_profiles_are_config_errors(configs, inputs, expected):
    msg = _error(configs, inputs)
    assert expected in msg and "inputs" in msg, msg


def test_backend_freezes_a_dynamic_network(tmp_path):
    from pipeline.backend import ConverterBackend

    from tests.converter.models import small_cnn

    path = tmp_path / "cnn.keras"
    small_cnn(seed=2).save(path)
    ranges = [{"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}]
    frozen, meta = ConverterBackend().freeze(path, [{"name": "image", "dtype": "float32", "profiles": ranges,
                                                     "shape": None}], [], "serving_default")
    assert meta["inputs"][0]["shape"] == [-1, 16, 16, 3]
    assert meta["profiles"] == [{"image": ranges[0]}]
    graph, _ = ConverterBackend().parse(frozen)
    snapshot, _ = ConverterBackend().construct(graph)
    engine, emeta = ConverterBackend().optimize(snapshot, {"opt_level": 0}, None)
    assert emeta["profiles"] == [{"image": ranges[0]}] and len(engine) > 0
    report = ConverterBackend().verify(frozen, snapshot, None, 0, 1, 1e-4, 1e-5)
    assert report["passed"] and [row["inputs"]["image"][0] for row in report["shapes"]] == [1, 2, 8]


# ------------------------------------------------------------------ verification.shapes
TEXT = """\
model:
  path: model.keras
inputs:
  - name: token_ids
    dtype: int32
    profiles:
      - {{min: [1, 8], opt: [4, 64], max: [8, 128]}}
  - name: mask
    shape: [1, 4]
verification:
  atol: 1.0e-5
{shapes}output: out/m.engine
"""


def _write_text(configs, shapes: str, name: str = "s"):
    configs.root.mkdir(parents=True, exist_ok=True)
    (configs.root / "model.keras").write_bytes(b"model-v1")
    path = configs.root / f"{name}.yaml"
    path.write_text(TEXT.format(shapes=shapes))
    return path


def _shape_error(configs, shapes: str) -> list[str]:
    path = _write_text(configs, shapes)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert "fix:" in msg, msg
    return msg.splitlines()


def test_verification_shapes_load(configs):
    cfg = load_config(_write_text(configs, "  shapes:\n    - {token_ids: [4, 77]}\n"
                                           "    - {token_ids: [8, 9], mask: [1, 4]}\n"))
    assert cfg.spec.verification.shapes == [{"token_ids": [4, 77]}, {"token_ids": [8, 9], "mask": [1, 4]}]


@pytest.mark.parametrize("shapes, line, expected, fix", [
    ("  shapes:\n    - {token_ids: [4, 200]}\n", 13, "4x200 is not inside an optimization profile (profile 0: "
     "token_ids 1x8..8x128)", "inside one profile's min..max"),
    ("  shapes:\n    - {toke_ids: [4, 77]}\n", 13, "'toke_ids' is not one of the inputs (mask, token_ids)",
     "name an input listed under inputs:"),
    ("  shapes:\n    - mask: [1, 4]\n", 13, "no shape for the dynamic input(s) token_ids",
     "add token_ids: [4, 64]"),
    ("  shapes:\n    - token_ids: [4, 77]\n      mask: [2, 4]\n", 14, "mask 2x4 changes a static dimension",
     "drop mask from the shape set"),
    ("  shapes:\n    - {token_ids: [4, 77, 1]}\n", 13, "has rank 3, the input has rank 2", "give 2 dimensions"),
    ("  shapes:\n    - {token_ids: 4x77}\n", 12, "write the shape as a list of dimensions, [4, 77]",
     "verification.shapes"),
    ("  shapes:\n    - {token_ids: [0, 77]}\n", 12, "expected a list of positive dimensions", "verification.shapes"),
    ("  shapes: []\n", 12, "expected a list of shape sets", "verification.shapes"),
    ("  inputs_npz: model.keras\n  shapes:\n    - {token_ids: [4, 77]}\n", 10, "inputs_npz and shapes were both",
     "verification"),
])
def test_bad_verification_shapes_are_config_errors(configs, shapes, line, expected, fix):
    lines = _shape_error(configs, shapes)
    where = next(k for k, text in enumerate(lines) if expected in text)
    assert lines[where].startswith(f"{configs.root / 's.yaml'}:{line}: verification"), lines
    assert fix in lines[where + 1] and lines[where + 1].lstrip().startswith("fix:"), lines


def test_verification_shapes_of_a_static_network_are_an_error(configs):
    path = configs.write(extra="")
    path.write_text(path.read_text().replace("verification:\n", "verification:\n  shapes:\n    - {x: [2, 8]}\n"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "all static" in str(info.value) and "give the inputs profiles" in str(info.value)


def _build(path, artifacts, backend):
    from pipeline.stages import StageContext, run_build
    from pipeline.store import ArtifactStore

    backend.calls.clear()
    summary = run_build(StageContext(load_config(path), ArtifactStore(artifacts), backend))
    return summary, {s["name"]: s for s in summary["stages"]}


def test_verification_shapes_key_only_verify(configs, artifacts, fake):
    path = _write_text(configs, "")
    summary, _ = _build(path, artifacts, fake)
    assert summary["ok"] and "shapes" not in summary["verification"]
    _write_text(configs, "  shapes:\n    - {token_ids: [4, 77]}\n")
    summary, stages = _build(path, artifacts, fake)
    assert [s for s in stages if stages[s]["status"] == "built"] == ["verify"] and fake.calls == ["verify"]
    assert stages["verify"]["reason"] == "rebuilt: key changed in verification.shapes"
    assert [row["inputs"] for row in summary["verification"]["shapes"]] == [{"token_ids": [4, 77]}]
    assert summary["settings"]["verification"]["shapes"] == [{"token_ids": [4, 77]}]
    # another shape: verify again; the same shapes again: cached
    _write_text(configs, "  shapes:\n    - {token_ids: [4, 78]}\n")
    _, stages = _build(path, artifacts, fake)
    assert fake.calls == ["verify"]
    _, stages = _build(path, artifacts, fake)
    assert fake.calls == [] and all(s["status"] == "cached" for s in stages.values())


def test_a_config_without_shapes_keys_verify_as_before(configs):
    from pipeline.stages.verify import input_options

    cfg = load_config(_write_text(configs, ""))
    assert input_options(cfg.spec.verification) == {}
    cfg = load_config(_write_text(configs, "  shapes:\n    - {token_ids: [4, 77], mask: [1, 4]}\n"))
    assert input_options(cfg.spec.verification) == {"shapes": [{"mask": [1, 4], "token_ids": [4, 77]}]}


# ------------------------------------------------------------------ profiles in the manifest, dashboard, status
PROFILE_0 = {"mask": None, "token_ids": {"min": [1, 8], "opt": [4, 64], "max": [8, 128]}}


def test_the_engine_manifest_lists_the_profiles(configs, artifacts, fake):
    import json

    path = _write_text(configs, "  shapes:\n    - {token_ids: [4, 77]}\n")
    summary, _ = _build(path, artifacts, fake)
    manifest = json.loads((path.parent / "out" / "m.engine.json").read_text())
    expected = [{"token_ids": PROFILE_0["token_ids"]}]
    assert manifest["profiles"] == expected and summary["facts"]["profiles"] == expected
    assert [i["name"] for i in manifest["inputs"]] == ["token_ids", "mask"]
    assert manifest["verification"]["shapes"][0]["inputs"] == {"token_ids": [4, 77]}


def test_a_static_engine_manifest_says_no_profiles(configs, artifacts, fake):
    import json

    path = configs.write()
    _build(path, artifacts, fake)
    manifest = json.loads((path.parent / "out" / "m.engine.json").read_text())
    assert manifest["profiles"] is None and manifest["inputs"][0]["shape"] == [1, 8]


def test_the_dashboard_summary_lists_profiles_and_verified_shapes(configs, artifacts, fake):
    from pipeline.flows import build_summary_markdown

    path = _write_text(configs, "  shapes:\n    - {token_ids: [4, 77]}\n")
    summary, _ = _build(path, artifacts, fake)
    md = build_summary_markdown(summary, {}, {})
    assert "## Optimization profiles" in md
    assert "| 0 | token_ids | 1x8 | 4x64 | 8x128 |" in md
    assert "| token_ids 4x77 | 1e-06 | yes |" in md
    static, _ = _build(configs.write(), artifacts, fake)
    assert "None: every input shape is static." in build_summary_markdown(static, {}, {})


def test_status_shows_the_engine_profiles(configs, artifacts, fake):
    import io

    from rich.console import Console

    from pipeline.status import collect_status, render_status

    path = _write_text(configs, "")
    _build(path, artifacts, fake)
    (row,) = collect_status([str(path)], str(artifacts))
    assert row["engine"]["profiles"] == [{"token_ids": PROFILE_0["token_ids"]}]
    buf = io.StringIO()
    render_status(Console(file=buf, width=200), [row])
    assert "profile 0: token_ids 1x8 / 4x64 / 8x128 (min / opt / max)" in buf.getvalue()


def test_backend_verifies_at_the_extra_shapes(tmp_path):
    from pipeline.backend import ConverterBackend

    from tests.converter.models import small_cnn

    path = tmp_path / "cnn.keras"
    small_cnn(seed=2).save(path)
    ranges = [{"min": [1, 16, 16, 3], "opt": [2, 16, 16, 3], "max": [8, 16, 16, 3]}]
    backend = ConverterBackend()
    frozen, _ = backend.freeze(path, [{"name": "image", "dtype": "float32", "profiles": ranges, "shape": None}], [],
                               "serving_default")
    snapshot, _ = backend.construct(backend.parse(frozen)[0])
    report = backend.verify(frozen, snapshot, None, 0, 1, 1e-4, 1e-5, shapes=[{"image": [5, 16, 16, 3]}])
    assert report["passed"] and [row["inputs"]["image"][0] for row in report["shapes"]] == [1, 2, 8, 5]
    from converter.verify import VerificationError

    with pytest.raises(VerificationError, match="not inside an optimization profile"):
        backend.verify(frozen, snapshot, None, 0, 1, 1e-4, 1e-5, shapes=[{"image": [9, 16, 16, 3]}])
