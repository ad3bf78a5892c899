"""Write ``docs/ops_tested.json``: which dtypes and which variants the conformance tables test, per op.

``python -m tests.converter.ops.tested_matrix`` freezes every case of the tables
listed in :data:`tests.converter.ops.test_registry_docs.TABLES` and of the
numerics sweep (no conversion, no TensorRT: about 20 s), reads the dtypes of
the nodes of each op the case declares from the frozen graph (function bodies
included), writes the JSON file and then regenerates ``docs/ops.md`` from it.  ``--check`` exits 1 when the JSON
file is stale instead of writing anything.

The dtypes come from the frozen graph, not from the case's input specs, because
the op under test often sees another dtype than the graph inputs (a cast to
float16 or int8 inside the case function, shape arithmetic on an int64
``Shape``).  The library side (:mod:`converter.opdocs`) only reads the JSON
file, so converter code never imports the tests; the test
``test_registry_docs.py::test_docs_ops_tested_json_is_up_to_date`` fails when a
table changed and the file was not regenerated.

File format: ``{"conformance": {op: {case_id: [dtype, ...]}}, "numerics": {...}}``
with sorted keys; ``numerics`` holds the rows of the value sweep
(``test_numerics.py``: fixed edge values per pointwise op), ``conformance`` the
rows of the op tables.  A
dtype is a TensorFlow dtype name; ops that convert from one dtype to another
record ``"src→dst"`` (Cast, and BatchMatMulV3 whose ``Tout`` differs from its
operands).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .harness import freeze_case

DATA_PATH = Path(__file__).resolve().parents[3] / "docs" / "ops_tested.json"
REGENERATE = "python -m tests.converter.ops.tested_matrix"

#: attributes that hold an op's data dtype, first match wins (index attrs such as Tidx/Tindices/Tshape are not data)
_DATA_ATTRS = ("T", "dtype", "Tparams", "element_dtype", "Tin")
#: ops whose data dtype attribute is one normally used for indices
_OWN_ATTR = {"Range": "Tidx"}


def _names(value) -> list[str]:
    import tensorflow as tf

    kind = value.WhichOneof("value")
    if kind == "type":
        return [tf.dtypes.as_dtype(value.type).name]
    if kind == "list":
        return [tf.dtypes.as_dtype(t).name for t in value.list.type]
    return []


def node_dtypes(node) -> list[str]:
    """The data dtypes a NodeDef computes on, read from its type attributes (or its op's fixed input types)."""
    attr = node.attr
    if node.op == "Cast":
        return [f"{_names(attr['SrcT'])[0]}→{_names(attr['DstT'])[0]}"]
    if "Ta" in attr and "Tb" in attr:  # BatchMatMulV3: operand dtypes and the result dtype
        a, b = _names(attr["Ta"])[0], _names(attr["Tb"])[0]
        out = _names(attr["Tout"])[0] if "Tout" in attr else a
        operands = a if a == b else f"{a}×{b}"
        return [operands if out == operands else f"{operands}→{out}"]
    for key in (_OWN_ATTR.get(node.op),) + _DATA_ATTRS:
        if key and key in attr and _names(attr[key]):
            return _names(attr[key])
    # ops with fixed input types (LogicalAnd, All, FakeQuantWithMinMaxArgs…): the op definition's first input
    import tensorflow as tf
    from tensorflow.python.framework import op_def_registry

    op_def = op_def_registry.get(node.op)
    if op_def is not None and op_def.input_arg and op_def.input_arg[0].type:
        return [tf.dtypes.as_dtype(op_def.input_arg[0].type).name]
    return []


def _collect(tables) -> dict[str, dict[str, list[str]]]:
    ops: dict[str, dict[str, list[str]]] = {}
    for table in tables:
        for c in table:
            frozen, _ = freeze_case(c)
            nodes = list(frozen.graph_def.node)
            nodes += [n for f in frozen.graph_def.library.function for n in f.node_def]
            for op in c.ops:
                dtypes = sorted({d for n in nodes if n.op == op for d in node_dtypes(n)})
                if not dtypes:
                    raise AssertionError(f"case {c.id}: no {op} node with a dtype in its frozen graph")
                ops.setdefault(op, {})[c.id] = dtypes
    return ops


def collect(tables, sweep=()) -> dict:
    """``{"conformance": {op: {case_id: dtypes}}, "numerics": {…}}`` for every op the cases of ``tables`` (and of
    the numerics sweep tables ``sweep``) declare."""
    return {"conformance": _collect(tables), "numerics": _collect(sweep)}


def sweep_tables() -> list:
    from . import test_numerics

    return [test_numerics.TABLE]


def sources():
    """The tables the data file is made from: the conformance tables (``TABLES``) and the numerics sweep."""
    from .test_registry_docs import TABLES

    return TABLES, sweep_tables()


def dumps(data: dict) -> str:
    """Sorted, one case per line (its dtype list inline), so a table change is a readable diff."""
    text = json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False)
    return re.sub(r"\[\s+([^\[\]{}]*?)\s+\]", lambda m: "[" + ", ".join(
        part.strip() for part in m.group(1).split(",")) + "]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"{REGENERATE}", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/ops_tested.json is stale")
    args = parser.parse_args(argv)
    text = dumps(collect(*sources()))
    if args.check:
        current = DATA_PATH.read_text(encoding="utf-8") if DATA_PATH.exists() else ""
        if current != text:
            sys.stderr.write(f"{DATA_PATH} is stale; regenerate it with `{REGENERATE}`\n")
            return 1
        return 0
    DATA_PATH.write_text(text, encoding="utf-8")
    from converter import opdocs

    return opdocs.main([])


if __name__ == "__main__":
    sys.exit(main())
