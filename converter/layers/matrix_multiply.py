"""MATRIX_MULTIPLY: ``IMatrixMultiplyLayer`` (batched matmul with per-operand ``MatrixOperation``).

Semantics: ``TRANSPOSE`` swaps an operand's last two dims; ``VECTOR`` treats its last dim as a vector
(a row vector for input 0, a column vector for input 1) and drops that dim from the result; the leading
(batch) dims broadcast as in ``np.matmul``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import base

ROLES = ()


@dataclass(frozen=True)
class Params(base.LayerParams):
    op0: str = "NONE"  #: ``MatrixOperation`` member name applied to input 0
    op1: str = "NONE"  #: ... and to input 1


def add(network, inputs, p: Params, weights=None, keep=None):
    return network.add_matrix_multiply(inputs[0], base.trt_enum("MatrixOperation", p.op0), inputs[1],
                                       base.trt_enum("MatrixOperation", p.op1))


def read(layer):
    return Params(op0=base.enum_name(layer.op0), op1=base.enum_name(layer.op1)), {}


def run(rec, p: Params, prepared, ins):
    a, b = ins
    op0, op1 = p.op0, p.op1
    if op0 == "TRANSPOSE":
        a = np.swapaxes(a, -1, -2)
    elif op0 == "VECTOR":
        a = a[..., None, :]
    if op1 == "TRANSPOSE":
        b = np.swapaxes(b, -1, -2)
    elif op1 == "VECTOR":
        b = b[..., :, None]
    y = np.matmul(a, b)
    if op1 == "VECTOR":
        y = y[..., 0]
    if op0 == "VECTOR":
        y = y[..., 0, :] if op1 != "VECTOR" else y[..., 0]
    return y


KIND = base.register("MATRIX_MULTIPLY", Params, add=add, read=read, run=run, roles=ROLES)
