"""Vectorization: a loop marked ``vectorized`` with constant extent ``n`` becomes one
iteration over vectors of ``n`` lanes.

The loop variable becomes ``ramp(min, 1, n)``; arithmetic on ramps stays a ramp while it is
affine (``ramp(b, 1, n) * 4 + c -> ramp(b*4 + c, 4, n)``), so that a load or store whose index
is ``ramp(base, 1, n)`` is one contiguous vector access; other vector indices become gathers.
Scalars that meet vectors are broadcast; a ``Let`` whose value becomes a vector binds a
vector variable of its own. When the body cannot run as vectors (a store of a
reduction into one element, a guard that depends on the lane, an allocation), the loop stays
a serial loop and says why in a note.
"""

from __future__ import annotations

import dataclasses

from ... import dtype as dt
from ...arith import const_int, map_children, may_fault, rewrite, substitute, walk
from ...te.expr import Binary, Call, Cast, Const, Expr, Let, Not, Select, Var, result_dtype
from ..nodes import Allocate, Broadcast, For, IfThenElse, Load, PrimFunc, Ramp, Seq, Store, broadcast


class _CannotVectorize(Exception):
    pass



def _lanes(e: Expr) -> int:
    return dt.lanes(e.dtype)


class _Vectorizer:
    def __init__(self, var: Var, ramp: Ramp):
        self.var, self.ramp, self.n = var, ramp, ramp.lanes
        self.lets: dict = {}      # uid of a Let's variable -> its vector variable

    def expr(self, e: Expr) -> Expr:
        if isinstance(e, Var):
            return self.ramp if e.uid == self.var.uid else self.lets.get(e.uid, e)
        if isinstance(e, Let):
            v = self.expr(e.value)
            var = e.var if _lanes(v) == 1 else Var(e.var.name, v.dtype)
            if var is not e.var:
                self.lets[e.var.uid] = var
            b = self.expr(e.body)
            return e if v is e.value and b is e.body else Let(var, v, b, b.dtype)
        if isinstance(e, (Ramp, Broadcast)):
            raise _CannotVectorize("nested vectorized loops")
        if isinstance(e, Binary):
            out = self.binary(e.op, self.expr(e.a), self.expr(e.b), e)
            if e.op in ("and", "or") and _lanes(out) > 1 and may_fault(e.b):
                raise _CannotVectorize(f"`{e}` must short-circuit (its right side reads memory)")
            return out
        if isinstance(e, Load):
            idx = self.expr(e.indices[0])
            if _lanes(idx) == 1:
                return e if idx is e.indices[0] else Load(e.buffer, (idx,), e.dtype)
            return Load(e.buffer, (idx,), dt.with_lanes(e.dtype, self.n))
        if isinstance(e, Select):
            c, t, f = self.expr(e.cond), self.expr(e.true_value), self.expr(e.false_value)
            if _lanes(c) > 1 and (may_fault(t) or may_fault(f)):
                raise _CannotVectorize("if_then_else whose lane-dependent condition guards loads")
            n = max(_lanes(c), _lanes(t), _lanes(f))
            t, f = broadcast(t, n), broadcast(f, n)
            return Select(c, t, f, t.dtype) if n > 1 or c is not e.cond else e
        if isinstance(e, Cast):
            v = self.expr(e.value)
            return Cast(v, dt.with_lanes(e.dtype, _lanes(v))) if v is not e.value else e
        if isinstance(e, Not):
            v = self.expr(e.a)
            return Not(v, v.dtype) if v is not e.a else e
        if isinstance(e, Call):
            args = [self.expr(a) for a in e.args]
            n = max(_lanes(a) for a in args)
            if n == 1:
                return e
            return Call(e.name, tuple(broadcast(a, n) for a in args), dt.with_lanes(e.dtype, n))
        return e

    def binary(self, op, a, b, orig: Binary) -> Expr:
        la, lb = _lanes(a), _lanes(b)
        if la == 1 and lb == 1:
            return orig if (a is orig.a and b is orig.b) else Binary(op, a, b, orig.dtype)
        if dt.is_int(a.dtype):
            ra, rb = isinstance(a, Ramp), isinstance(b, Ramp)
            if op in ("add", "sub") and (ra or la == 1) and (rb or lb == 1):
                base = Binary(op, a.base if ra else a, b.base if rb else b, dt.element(a.dtype))
                zero = Const(0, dt.element(a.dtype))
                stride = Binary(op, a.stride if ra else zero, b.stride if rb else zero, zero.dtype)
                return Ramp(base, stride, self.n, a.dtype if ra else b.dtype)
            if op == "mul" and ra and lb == 1:
                return Ramp(Binary("mul", a.base, b, b.dtype), Binary("mul", a.stride, b, b.dtype),
                            self.n, a.dtype)
            if op == "mul" and rb and la == 1:
                return Ramp(Binary("mul", a, b.base, a.dtype), Binary("mul", a, b.stride, a.dtype),
                            self.n, b.dtype)
        a, b = broadcast(a, self.n), broadcast(b, self.n)
        return Binary(op, a, b, result_dtype(op, a, b))

    def stmt(self, s):
        if isinstance(s, Store):
            idx, val = self.expr(s.indices[0]), self.expr(s.value)
            if _lanes(idx) == 1:
                if _lanes(val) > 1:
                    raise _CannotVectorize("every lane stores to the same element "
                                           "(a reduction over the vectorized axis)")
                if any(isinstance(n, Load) for n in walk(val)):
                    # must still run once per iteration (e.g. an accumulation)
                    raise _CannotVectorize("a store that does not depend on the vectorized axis")
                return s
            if not (isinstance(idx, Ramp) and const_int(idx.stride) not in (None, 0)):
                raise _CannotVectorize(f"scatter store with index {idx}")
            return Store(s.buffer, (idx,), broadcast(val, self.n))
        if isinstance(s, For):
            if _lanes(self.expr(s.min)) > 1 or _lanes(self.expr(s.extent)) > 1:
                raise _CannotVectorize("an inner loop's bounds depend on the vectorized axis")
            return dataclasses.replace(s, body=self.stmt(s.body))
        if isinstance(s, IfThenElse):
            if _lanes(self.expr(s.cond)) > 1:
                raise _CannotVectorize(f"the guard `{s.cond}` depends on the vectorized axis")
            return map_children(s, lambda c: c if isinstance(c, Expr) else self.stmt(c))
        if isinstance(s, Seq):
            return Seq(tuple(self.stmt(x) for x in s.stmts))
        if isinstance(s, Allocate):
            raise _CannotVectorize("an allocation inside the vectorized loop")
        raise _CannotVectorize(f"statement {type(s).__name__}")


def vectorize_loop(loop: For):
    """The vector form of one ``vectorized`` loop, or the loop made serial with a note."""
    n = const_int(loop.extent)
    if n is not None and n <= 1:         # nothing to vectorize: zero or one iteration
        return Seq(()) if n <= 0 else substitute(loop.body, {loop.var: loop.min})
    try:
        if n is None:
            raise _CannotVectorize(f"non-constant extent {loop.extent}")
        ramp = Ramp(loop.min, Const(1, loop.var.dtype), n, dt.with_lanes(loop.var.dtype, n))
        return _Vectorizer(loop.var, ramp).stmt(loop.body)
    except _CannotVectorize as why:
        return dataclasses.replace(loop, kind="serial",
                                   annotations=loop.annotations + ((f"not vectorized: {why}", None),))


def vectorize_loops(func: PrimFunc) -> PrimFunc:
    """Vectorize every loop marked ``vectorized`` (innermost first)."""
    def fn(n):
        return vectorize_loop(n) if isinstance(n, For) and n.kind == "vectorized" else None
    return dataclasses.replace(func, body=rewrite(func.body, fn))
