"""Storage flattening: multi-dimensional accesses ``C[i, j]`` become accesses of a flat,
row-major buffer ``C[i*N + j]``. Parameters keep their shapes (the runtime checks them); the
body sees one-dimensional buffers that share the parameters' data pointers."""

from __future__ import annotations

import dataclasses

from ...arith import rewrite, simplify as simplify_expr
from ..nodes import Allocate, Buffer, Load, PrimFunc, Store


def flat(b: Buffer) -> Buffer:
    return b if len(b.shape) == 1 else Buffer(b.name, b.dtype, (simplify_expr(b.size()),), b.data)


def storage_flatten(func: PrimFunc) -> PrimFunc:
    """Rewrite every Load/Store/Allocate to a one-dimensional buffer."""
    def fn(n):
        if isinstance(n, Load) and len(n.indices) != 1:
            return Load(flat(n.buffer), (simplify_expr(n.buffer.flat_index(n.indices)),), n.dtype)
        if isinstance(n, Store) and len(n.indices) != 1:
            return Store(flat(n.buffer), (simplify_expr(n.buffer.flat_index(n.indices)),), n.value)
        if isinstance(n, Allocate):
            return dataclasses.replace(n, buffer=flat(n.buffer))
        if isinstance(n, (Load, Store)) and len(n.buffer.shape) != 1:
            return dataclasses.replace(n, buffer=flat(n.buffer))
        return None
    return dataclasses.replace(func, body=rewrite(func.body, fn))
