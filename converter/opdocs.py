"""Render ``docs/ops.md`` — every supported TF op, its TensorRT layers, restrictions and tested dtypes/variants.

``python -m converter.opdocs`` rewrites the file; ``python -m converter.opdocs --check``
exits 1 when the file is stale.  A test compares :func:`render` with the file,
so the table can never drift from the converters.

Two sources:

* the registry (:mod:`converter.registry`): op names, TensorRT layers, restrictions;
* ``docs/ops_tested.json``: for every op, the conformance cases and numerics-sweep
  rows that exercise it and the dtypes its nodes have in those cases' frozen
  graphs.  The tables live in ``tests/`` and library code does not import tests,
  so the test side writes this file (``python -m tests.converter.ops.tested_matrix``,
  which then reruns this module) and ``test_registry_docs.py`` fails when it no
  longer matches the tables.  The "Tested dtypes" column and the "Tested variants"
  section are therefore what the tests exercise, not hand-written claims.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "ops.md"
#: written by ``python -m tests.converter.ops.tested_matrix`` from the test tables
TESTED_PATH = DOC_PATH.parent / "ops_tested.json"
TESTED_COMMAND = "python -m tests.converter.ops.tested_matrix"

#: order of dtypes in the docs (others follow alphabetically)
_DTYPE_ORDER = ("float32", "float16", "bfloat16", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                "uint64", "bool")

#: ops deliberately left without a converter, with the reason (rendered below the table)
NOT_CONVERTED = {
    "CombinedNonMaxSuppression": "TensorRT's NMS layer returns a data-dependent number of boxes in its own order; "
                                 "TensorFlow's padded, per-class-then-merged output cannot be reproduced exactly",
    "NonMaxSuppressionV2/V3/V4/V5": "same as CombinedNonMaxSuppression",
    "ResizeBicubic": "TensorFlow's bicubic kernel (Keys a=-0.75 legacy / a=-0.5 half-pixel with its own edge "
                     "handling) is not matched exactly by TensorRT's cubic resize",
    "Round on integers": "TensorFlow's integer Round kernel returns zeros; tf.round is the identity on integers",
}

SHARED_RULES = [
    "float64 (and complex) tensors are rejected by the support check: TensorRT has no float64 — build the model "
    "in float32.",
    "int64 tensors are computed as int32 (TensorRT's index type); values must fit in int32.",
    "Shapes are static: `Shape`, `Size`, `Rank` and shape arithmetic on them are computed while converting, and "
    "every op whose inputs are all constants is folded in numpy (the `folds` column).",
    "Layout: tensors stay channels-first between convolutions/pooling; layout-agnostic ops keep whatever layout "
    "their input has, and `Transpose` only relabels it.",
    "Every TensorRT layer is named after the TF node it comes from (helper layers get a `/suffix`).",
]


def _layers(entry) -> str:
    seen = []
    for layer in entry.layers:
        if layer not in seen:
            seen.append(layer)
    return ", ".join(seen) if seen else "— (no layer)"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _dtype_key(dtype: str):
    """Sort key: the order of :data:`_DTYPE_ORDER`, conversions ``a→b`` by source then target."""
    def rank(name):
        return (_DTYPE_ORDER.index(name), "") if name in _DTYPE_ORDER else (len(_DTYPE_ORDER), name)

    parts = dtype.replace("×", "→").split("→")
    return (len(parts) > 1,) + tuple(rank(p) for p in parts)


def _sorted_dtypes(dtypes) -> list[str]:
    return sorted(set(dtypes), key=_dtype_key)


def _anchor(heading: str) -> str:
    """The anchor GitHub (and Python-Markdown's toc) gives a heading made of ``heading``."""
    return re.sub(r"[^a-z0-9_ -]", "", heading.lower()).replace(" ", "-")


def load_tested(path: Path = TESTED_PATH) -> dict:
    """The data file, or empty tables when it does not exist yet (the docs test then reports it stale)."""
    if not path.exists():
        return {"conformance": {}, "numerics": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def _groups(op: str, cases: dict[str, list[str]]) -> list[tuple[str, str]]:
    """``(dtypes, variants)`` per distinct dtype set: the op's own cases by the part after the slash, first;
    other ops' cases that exercise it by their full id."""
    groups: dict[tuple, tuple[list, list]] = {}
    for case_id, dtypes in sorted(cases.items()):
        own, other = groups.setdefault(tuple(_sorted_dtypes(dtypes)), ([], []))
        prefix, _, variant = case_id.partition("/")
        if prefix == op and variant:
            own.append(f"`{variant}`")
        else:
            other.append(f"`{case_id}`")
    ordered = sorted(groups.items(), key=lambda item: [_dtype_key(d) for d in item[0]])
    return [(", ".join(key), ", ".join(own) + ("; also in " if own and other else "in " if other else "")
             + ", ".join(other)) for key, (own, other) in ordered]


def _variants(op: str, conformance: dict, numerics: dict) -> list[str]:
    lines = [f"### {op}", ""]
    for dtypes, variants in _groups(op, conformance):
        lines.append(f"- {dtypes}: {variants}")
    for dtypes, variants in _groups(op, numerics):
        lines.append(f"- numerics sweep, {dtypes}: {variants}")
    if len(lines) == 2:
        lines.append("- no conformance case recorded in docs/ops_tested.json")
    return lines + [""]


def render(tested: dict | None = None) -> str:
    """The Markdown text of ``docs/ops.md`` (``tested``: the data file's content, read from disk by default)."""
    from . import ops  # noqa: F401 - importing registers every converter
    from .ops.helpers import FOLDABLE_OPS
    from .registry import REGISTRY

    tested = load_tested() if tested is None else tested
    conformance, numerics = tested.get("conformance", {}), tested.get("numerics", {})
    names = sorted(REGISTRY, key=lambda n: (n.lower(), n))
    anchors = [_anchor(name) for name in names]
    fixed = {_anchor(h) for h in ("Supported TensorFlow ops", "Not converted on purpose", "Tested variants")}
    if len(set(anchors)) != len(anchors) or fixed & set(anchors):
        raise RuntimeError("two headings of docs/ops.md would get the same anchor")
    lines = [
        "# Supported TensorFlow ops",
        "",
        "<!-- Generated from converter/registry.py and docs/ops_tested.json by `python -m converter.opdocs`; "
        "do not edit by hand. -->",
        "",
        f"**{len(names)} TensorFlow ops** convert to TensorRT layers.",
        "",
        "Rules for every op:",
        "",
    ]
    lines += [f"- {rule}" for rule in SHARED_RULES]
    lines += [
        "",
        "Reading the table:",
        "",
        "- **Tested dtypes** are the dtypes the op's nodes have in the frozen graphs of its conformance cases and "
        "numerics-sweep rows — each of which is converted, run and compared with TensorFlow's CPU kernel. They are "
        "read from the test tables, not written by hand: `docs/ops_tested.json` is generated from "
        f"`tests/converter/ops` by `{TESTED_COMMAND}` (which also rewrites this file), and a test fails when it is "
        "stale. The data dtype is listed (`T`, `dtype`, `Tparams`…), not the dtype of index operands (indices, axes, "
        "shapes); `a→b` is a conversion (`Cast`, `BatchMatMulV3` with its `Tout`); `variant` is a tensor list "
        "carried by a loop. A dtype missing here may still convert — the support check decides — it is just not "
        "tested.",
        "- **Cases** counts the conformance cases (and numerics-sweep rows) that exercise the op and links to its "
        "entry in [Tested variants](#tested-variants): the case ids, grouped by dtype, which name the attribute "
        "variants tested.",
        "",
        "| TF op | Tested dtypes | Cases | TensorRT layers | Folds constants | Restrictions |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, anchor in zip(names, anchors):
        entry = REGISTRY[name]
        folds = "yes" if name in FOLDABLE_OPS else ""
        own, swept = conformance.get(name, {}), numerics.get(name, {})
        dtypes = ", ".join(_sorted_dtypes(d for cases in (own, swept) for ds in cases.values() for d in ds)) or "—"
        count = f"{len(own)} + {len(swept)} sweep" if swept else f"{len(own)}"
        lines.append(f"| `{name}` | {dtypes} | [{count}](#{anchor}) | {_layers(entry)} | {folds} | "
                     f"{_cell(entry.restrictions)} |")
    lines += ["", "## Not converted on purpose", ""]
    lines += [f"- **{op}**: {why}." for op, why in NOT_CONVERTED.items()]
    lines += ["", "Any other op is reported by the support check (with counts and node names) before a layer is "
              "built.", ""]
    lines += [
        "## Tested variants",
        "",
        "Per op, the conformance cases that exercise it, grouped by the dtypes the op has in them: the op's own "
        "cases by the part of the id after the slash (`Conv2D/dilated_same` → `dilated_same`, the attribute "
        "variant), then (\"also in\") the full ids of other ops' cases that exercise it too. Numerics-sweep rows "
        "(`tests/converter/ops/test_numerics.py`: fixed edge values — grids, large magnitudes, ±0/±inf/NaN, "
        "subnormals) are listed on their own lines. Run one with `pytest tests/converter/ops -k '<case id>'`.",
        "",
    ]
    for name in names:
        lines += _variants(name, conformance.get(name, {}), numerics.get(name, {}))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converter.opdocs", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/ops.md is stale instead of writing it")
    parser.add_argument("--output", type=Path, default=DOC_PATH, help="where to write (default: docs/ops.md)")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is stale; regenerate it with `python -m converter.opdocs`\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
