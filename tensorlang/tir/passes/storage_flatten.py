"""Storage flattening: multi-dimensional accesses ``C[i, j]`` become accesses of a flat,
row-major buffer ``C[i*N + j]``. Parameters keep their shapes (the runtime checks them); the
body sees one-dimensional buffers that share the parameters' data pointers.

Flat offsets are int32 when they provably stay below 2**31, and int64
otherwise (symbolic or huge shapes), so that no offset or allocation size can wrap."""

from __future__ import annotations

import dataclasses

from ...arith import rewrite, simplify as simplify_expr
from ...te.expr import Expr, cast
from ..nodes import Allocate, Buffer, Load, PrimFunc, Store


def offset_dtype(b: Buffer) -> str:
    """int32 when every offset fits: a known size below 2**31, or one dimension (whose index
    is below its extent, itself an int32 value)."""
    size = b.const_size()
    if len(b.shape) == 1 and b.shape[0].dtype == "int32" and not b.strides \
            or size is not None and size < 2**31:
        return "int32"
    return "int64"


def _widen(b: Buffer, exprs) -> tuple:
    t = offset_dtype(b)
    return tuple(e if e.dtype == t else cast(t, e) for e in exprs)


def _wide(b: Buffer) -> Buffer:
    return Buffer(b.name, b.dtype, _widen(b, b.shape), b.data, _widen(b, b.strides))


def flat(b: Buffer) -> Buffer:
    if len(b.shape) == 1 and b.shape[0].dtype == offset_dtype(b) and not b.strides:
        return b
    return Buffer(b.name, b.dtype, (simplify_expr(_wide(b).size()),), b.data)


def flat_index(b: Buffer, indices) -> Expr:
    return simplify_expr(_wide(b).flat_index(_widen(b, indices)))


def storage_flatten(func: PrimFunc) -> PrimFunc:
    """Rewrite every Load/Store/Allocate to a one-dimensional buffer."""
    def fn(n):
        if isinstance(n, (Load, Store)) and n.buffer is not flat(n.buffer):
            return dataclasses.replace(n, buffer=flat(n.buffer),
                                       indices=(flat_index(n.buffer, n.indices),))
        if isinstance(n, Allocate):
            return dataclasses.replace(n, buffer=flat(n.buffer))
        return None
    return dataclasses.replace(func, body=rewrite(func.body, fn))
