"""Render ``docs/ops.md`` — every supported TF op, its TensorRT layers and restrictions — from the registry.

``python -m converter.opdocs`` rewrites the file; ``python -m converter.opdocs --check``
exits 1 when the file is stale.  A test compares :func:`render` with the file,
so the table can never drift from the converters.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "ops.md"

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


def render() -> str:
    """The Markdown text of ``docs/ops.md``."""
    from . import ops  # noqa: F401 - importing registers every converter
    from .ops.helpers import FOLDABLE_OPS
    from .registry import REGISTRY

    names = sorted(REGISTRY, key=lambda n: (n.lower(), n))
    lines = [
        "# Supported TensorFlow ops",
        "",
        "<!-- Generated from converter/registry.py by `python -m converter.opdocs`; do not edit by hand. -->",
        "",
        f"**{len(names)} TensorFlow ops** convert to TensorRT layers.",
        "",
        "Rules for every op:",
        "",
    ]
    lines += [f"- {rule}" for rule in SHARED_RULES]
    lines += [
        "",
        "| TF op | TensorRT layers | Folds constants | Restrictions |",
        "| --- | --- | --- | --- |",
    ]
    for name in names:
        entry = REGISTRY[name]
        folds = "yes" if name in FOLDABLE_OPS else ""
        lines.append(f"| `{name}` | {_layers(entry)} | {folds} | {_cell(entry.restrictions)} |")
    lines += ["", "## Not converted on purpose", ""]
    lines += [f"- **{op}**: {why}." for op, why in NOT_CONVERTED.items()]
    lines += ["", "Any other op is reported by the support check (with counts and node names) before a layer is "
              "built.", ""]
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
