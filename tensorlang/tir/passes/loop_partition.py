"""Loop partitioning: split a loop whose body has a tail guard into a main loop, where the
guard is provably true and removed, and a tail loop that keeps it.

A guard ``c*v + rest < 0`` (``c > 0``, ``v`` this loop's variable) holds for every value of
the inner loops' variables in ``rest`` as long as ``v < (-max(rest) - 1) // c + 1``. The loop
over ``v`` becomes ``[min, m)`` without the guard and ``[m, min + extent)`` with it, so a
non-divisible split costs one partial tile instead of a test in every iteration, and the
main body stays vectorizable.
"""

from __future__ import annotations

import dataclasses

from ...arith import free_vars, linear, map_children, rewrite, simplify as simplify_expr, walk
from ...te.expr import Binary, Const, Expr, Var
from ..nodes import For, IfThenElse, PrimFunc, seq
from .simplify import simplify, simplify_stmt


def _conjuncts(c: Expr):
    if isinstance(c, Binary) and c.op == "and":
        return _conjuncts(c.a) + _conjuncts(c.b)
    return [c]


def _split_point(term: Expr, loop: For, inner: dict):
    """The first value of ``loop.var`` for which ``term`` may be false, or None."""
    if not (isinstance(term, Binary) and term.op == "lt"):
        return None
    lin = linear(simplify_expr(term.a - term.b))
    if lin is None:
        return None
    terms, const = lin
    c = terms.pop(loop.var, 0)
    if not isinstance(c, int) or c <= 0:
        return None
    rmax = Const(const, loop.var.dtype)
    for t, k in terms.items():
        if isinstance(t, Var) and t.uid in inner:
            mn, ext = inner[t.uid]
            t_max = mn + ext - 1 if k > 0 else mn
            rmax = rmax + t_max * k
        elif any(u in inner for u in free_vars(t)):
            return None      # a non-linear use of an inner variable: no closed form
        else:
            rmax = rmax + t * k
    if loop.var.uid in free_vars(rmax):
        return None
    return (0 - rmax - 1) // c + 1


def _partition(s):
    if isinstance(s, For):
        inner = {n.var.uid: (n.min, n.extent) for n in walk(s.body) if isinstance(n, For)}
        guards = [t for n in walk(s.body) if isinstance(n, IfThenElse) and n.else_case is None
                  for t in _conjuncts(n.cond)]
        cut, removed = None, []
        for g in guards:
            m = _split_point(g, s, inner)
            if m is not None:
                cut = m if cut is None else Binary("min", cut, m, m.dtype)
                removed.append(g)
        if cut is None:
            return dataclasses.replace(s, body=_partition(s.body))
        end = s.min + s.extent
        cut = simplify_expr(Binary("max", s.min, Binary("min", cut, end, end.dtype), end.dtype))

        def drop(n):
            if isinstance(n, Binary) and any(n == g for g in removed):
                return Const(True, "bool")
            return None
        main_body = simplify_stmt(rewrite(s.body, drop), {})
        main = main_body and dataclasses.replace(
            s, extent=simplify_expr(cut - s.min), body=_partition(main_body))
        tail = dataclasses.replace(s, min=cut, extent=simplify_expr(end - cut),
                                   body=_partition(s.body))
        return seq(main, tail)
    return map_children(s, lambda c: _partition(c) if not isinstance(c, Expr) else c)


def loop_partition(func: PrimFunc) -> PrimFunc:
    """Partition every loop that carries a removable tail guard, then simplify (so that a tail
    of one iteration becomes straight-line code with constant inner extents)."""
    return simplify(dataclasses.replace(func, body=_partition(func.body)))
