"""Every layer kind module, checked from the table of kinds the registry holds.

For each registered kind: the module defines what a kind must (typed ``Params``, ``add``, ``read``,
``KIND``); its type name is a TensorRT ``LayerType``; and, over every layer of that kind in the
conformance networks (built by TensorRT's ONNX parser and through the API), the typed parameters
survive JSON and a rebuild: ``read → to_json → from_json → add → read`` gives the same record.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib

import pytest

from converter import layers
from converter import trt as trtshim
from converter.layers import base
from converter.snapshot import Snapshot
from tests.converter.onnx_cases import snapshot_of
from tests.converter.test_reference_conformance import API_CASES, ONNX_CASES, _api_snapshot
from tests.converter.test_snapshot import SNAPSHOT_ONLY_CASES

KIND_NAMES = sorted(layers.KINDS)


@functools.cache
def _snapshots() -> list[Snapshot]:
    """The conformance networks, plus those of layers only snapshots handle (NMS, grid sample)."""
    return ([snapshot_of(c) for c in ONNX_CASES] + [_api_snapshot(c) for c in API_CASES]
            + [snapshot_of(c) for c in SNAPSHOT_ONLY_CASES])


@functools.cache
def _records_by_type() -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for snap in _snapshots():
        for rec in snap.layers:
            out.setdefault(rec["type"], []).append(rec)
    return out


@pytest.mark.parametrize("type_name", KIND_NAMES)
def test_module_defines_a_kind(type_name):
    kind = layers.KINDS[type_name]
    module = importlib.import_module(kind.module)
    assert module.KIND is kind
    assert type_name in trtshim.module().LayerType.__members__
    assert dataclasses.is_dataclass(kind.params) and issubclass(kind.params, base.LayerParams)
    assert kind.params.__dataclass_params__.frozen, "parameters are values: frozen dataclasses"
    assert module.__doc__, f"{kind.module} needs a docstring saying what the layer is"
    assert callable(kind.add) and callable(kind.read)


@pytest.mark.parametrize("type_name", KIND_NAMES)
def test_params_survive_json(type_name):
    kind = layers.KINDS[type_name]
    records = _records_by_type().get(type_name, [])
    for rec in records:
        typed = kind.params.from_json(rec["params"])
        assert typed.to_json() == rec["params"], rec["name"]
        assert kind.params.from_json(typed.to_json()) == typed


def test_every_kind_appears_in_a_conformance_network():
    missing = sorted(set(KIND_NAMES) - set(_records_by_type()))
    assert not missing, f"layer kinds without any conformance network: {missing}"


def test_a_kind_cannot_register_twice():
    kind = layers.KINDS["CONVOLUTION"]
    with pytest.raises(RuntimeError, match="registered twice"):
        base.register("CONVOLUTION", kind.params, add=kind.add, read=kind.read)


def test_unknown_and_missing_parameters():
    kind = layers.KINDS["CONVOLUTION"]
    with pytest.raises(base.SnapshotError, match="unknown parameter"):
        kind.params.from_json({"num_output_maps": 4, "kernel_size": [3, 3], "kernel": [3, 3]})
    typed = kind.params.from_json({"num_output_maps": 4, "kernel_size": [3, 3]})
    assert typed.num_groups == 1 and typed.kernel_size == (3, 3)


def test_non_finite_floats_in_params():
    activation = layers.KINDS["ACTIVATION"].params
    p = activation("CLIP", alpha=float("-inf"), beta=float("inf"))
    assert p.to_json()["alpha"] == "-inf" and p.to_json()["beta"] == "inf"
    assert activation.from_json(p.to_json()) == p


@pytest.mark.parametrize("type_name", KIND_NAMES)
def test_rebuilt_layers_read_back_the_same(type_name):
    """``add`` (what converters and snapshot rebuilds call) sets exactly what ``read`` reports."""
    seen = 0
    for snap in _snapshots():
        if type_name not in snap.layer_types():
            continue
        rebuilt = Snapshot.from_network(snap.to_network()[1])
        assert rebuilt == snap
        seen += 1
        if seen >= 3:
            break
    assert seen, f"no conformance network has a {type_name} layer"


def _source(module_path: str) -> str:
    import converter

    root = __import__("pathlib").Path(converter.__file__).parent
    return (root / module_path).read_text(encoding="utf-8")


def test_converters_create_layers_only_through_their_kind():
    """No ``network.add_*`` call outside the layer modules (``add_input`` declares inputs, not layers)."""
    import re

    import converter

    root = __import__("pathlib").Path(converter.__file__).parent
    offenders = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith("layers/") or rel in ("snapshot.py",):
            continue
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"\.add_(?!input\b|argument\b|parser\b|subparsers\b|row\b|column\b|optimization_profile\b)[a-z_]+\(", line):
                offenders.append(f"{rel}:{lineno}: {line.strip()}")
    assert not offenders, "layers created outside converter/layers:\n" + "\n".join(offenders)


@pytest.mark.parametrize("module_path", ["snapshot.py", "reference.py"])
def test_snapshot_and_executor_hold_no_per_kind_code(module_path):
    text = _source(module_path)
    named = sorted(name for name in layers.KINDS if f'"{name}"' in text)
    assert not named, f"{module_path} names layer kinds {named}: per-kind code belongs in converter/layers/"
