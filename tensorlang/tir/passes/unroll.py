"""Unrolling: a loop marked ``unrolled`` with a constant extent becomes its iterations, one
after another, with the loop variable replaced by each value."""

from __future__ import annotations

import dataclasses

from ...arith import const_int, rewrite, substitute
from ...te.expr import Const
from ..nodes import For, PrimFunc, seq

MAX_UNROLL = 512   # iterations; beyond this a loop stays a loop (with a note in the IR)


def unroll_loops(func: PrimFunc) -> PrimFunc:
    """Replace each constant-extent ``unrolled`` loop by its iterations."""
    def fn(n):
        if not (isinstance(n, For) and n.kind == "unrolled"):
            return None
        ext = const_int(n.extent)
        if ext is None or ext > MAX_UNROLL:
            why = "non-constant extent" if ext is None else f"extent {ext} > {MAX_UNROLL}"
            return dataclasses.replace(n, kind="serial",
                                       annotations=n.annotations + ((f"not unrolled: {why}", None),))
        return seq(*[substitute(n.body, {n.var: n.min + Const(k, n.var.dtype)}) for k in range(ext)])
    return dataclasses.replace(func, body=rewrite(func.body, fn))
