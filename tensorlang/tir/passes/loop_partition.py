"""Loop partitioning: split a loop whose body has a tail guard into a main loop, where the
guard is provably true and removed, and a tail loop that keeps it.

A guard ``c*v + rest < 0`` (``c > 0``, ``v`` this loop's variable) holds for every value of
the inner loops' variables in ``rest`` as long as ``v < (-max(rest) - 1) // c + 1``. The loop
over ``v`` becomes ``[min, m)`` without the guard and ``[m, min + extent)`` with it, so a
non-divisible split costs one partial tile instead of a test in every iteration, and the
main body stays vectorizable. A parallel loop is not cut when its main part would be short
(under 16 iterations): its tail would run alone after the main part, serialising the loop.
"""

from __future__ import annotations

import dataclasses

from ...arith import (const_int, free_vars, is_index_expr, linear, map_children, rewrite,
                      simplify as simplify_expr, walk)
from ...te.expr import Binary, Const, Expr, Var, structural_equal
from ..nodes import For, IfThenElse, PrimFunc, seq
from .simplify import simplify, simplify_stmt


def _conjuncts(c: Expr):
    if isinstance(c, Binary) and c.op == "and":
        return _conjuncts(c.a) + _conjuncts(c.b)
    return [c]


def _split_point(term: Expr, loop: For, inner: dict):
    """``(m, exact)``: the first value ``m`` of ``loop.var`` for which ``term`` may be false
    (or None), and whether ``term`` is certainly false from ``m`` on (no inner variables)."""
    if not (isinstance(term, Binary) and term.op == "lt" and is_index_expr(term.a)
            and is_index_expr(term.b)):
        return None, False
    terms, const = linear(simplify_expr(term.a - term.b))
    c = terms.pop(loop.var, 0)
    if c <= 0:
        return None, False
    exact = True
    rmax = Const(const, loop.var.dtype)
    for t, k in terms.items():
        if isinstance(t, Var) and t.uid in inner:
            mn, ext = inner[t.uid]
            t_max = mn + ext - 1 if k > 0 else mn
            rmax = rmax + t_max * k
            exact = False
        elif any(u in inner for u in free_vars(t)):
            return None, False    # a non-linear use of an inner variable: no closed form
        else:
            rmax = rmax + t * k
    if any(u == loop.var.uid or u in inner for u in free_vars(rmax)):
        return None, False        # an inner loop's bounds read other inner loops: no closed form
    return (0 - rmax - 1) // c + 1, exact


PARALLEL_MIN_MAIN = 16


def _partition(s):
    if isinstance(s, For):
        inner = {n.var.uid: (n.min, n.extent) for n in walk(s.body) if isinstance(n, For)}
        guards = [t for n in walk(s.body) if isinstance(n, IfThenElse) and n.else_case is None
                  for t in _conjuncts(n.cond)]
        cut, removed, exact = None, [], False
        for g in guards:
            m, exact = _split_point(g, s, inner)
            if m is not None:
                cut = m if cut is None else Binary("min", cut, m, m.dtype)
                removed.append(g)
        if cut is None:
            return dataclasses.replace(s, body=_partition(s.body))
        end = s.min + s.extent
        cut = simplify_expr(Binary("max", s.min, Binary("min", cut, end, end.dtype), end.dtype))
        main_ext = const_int(cut - s.min)
        if s.kind == "parallel" and main_ext is not None and main_ext < PARALLEL_MIN_MAIN:
            # the tail of a parallel loop runs after the main part's threads join: with a
            # short main part (2 iterations cut into 1 + 1) that would serialise the loop
            return dataclasses.replace(s, body=_partition(s.body))

        def decided(value):
            def fn(n):
                if isinstance(n, Binary) and any(structural_equal(n, g) for g in removed):
                    return Const(value, "bool")
                return None
            return fn
        main_body = simplify_stmt(rewrite(s.body, decided(True)), {})
        main = main_body and dataclasses.replace(
            s, extent=simplify_expr(cut - s.min), body=_partition(main_body))
        tail_body = s.body
        if exact and len(removed) == 1:      # one guard, false for every v >= cut
            tail_body = simplify_stmt(rewrite(s.body, decided(False)), {})
        tail = tail_body and dataclasses.replace(s, min=cut, extent=simplify_expr(end - cut),
                                                 body=_partition(tail_body))
        return seq(main, tail)
    return map_children(s, lambda c: _partition(c) if not isinstance(c, Expr) else c)


def loop_partition(func: PrimFunc) -> PrimFunc:
    """Partition every loop that carries a removable tail guard, then simplify (so that a tail
    of one iteration becomes straight-line code with constant inner extents)."""
    return simplify(dataclasses.replace(func, body=_partition(func.body)))
