"""Simplify: fold constants and index arithmetic in every expression, using the ranges of the
enclosing loops; drop guards that ranges decide, loops of extent 0, and replace loops of
extent 1 by their single iteration."""

from __future__ import annotations

import dataclasses

from ...arith import bound, simplify as simplify_expr, substitute
from ...te.expr import Const, Expr
from ..nodes import Allocate, For, IfThenElse, PrimFunc, Seq, Stmt, Store, seq


def loop_range(mn: Expr, ext: Expr, env: dict) -> tuple:
    """Inclusive range of a loop variable running over ``[mn, mn + ext)``."""
    lo, hi = bound(mn, env)
    return lo, hi + bound(ext, env)[1] - 1


def simplify_stmt(s: Stmt, env: dict) -> Stmt | None:
    """Simplified ``s`` (``None`` when it does nothing). ``env``: var uid -> (lo, hi)."""
    if isinstance(s, Seq):
        parts = [simplify_stmt(x, env) for x in s.stmts]
        parts = [p for p in parts if p is not None]
        return seq(*parts) if parts else None
    if isinstance(s, Store):
        return Store(s.buffer, tuple(simplify_expr(i, env) for i in s.indices),
                     simplify_expr(s.value, env))
    if isinstance(s, For):
        mn, ext = simplify_expr(s.min, env), simplify_expr(s.extent, env)
        if isinstance(ext, Const) and ext.value <= 0:
            return None
        if isinstance(ext, Const) and ext.value == 1:
            return simplify_stmt(substitute(s.body, {s.var: mn}), env)
        inner = dict(env)
        inner[s.var.uid] = loop_range(mn, ext, env)
        body = simplify_stmt(s.body, inner)
        return None if body is None else dataclasses.replace(s, min=mn, extent=ext, body=body)
    if isinstance(s, IfThenElse):
        c = simplify_expr(s.cond, env)
        if isinstance(c, Const):
            branch = s.then_case if c.value else s.else_case
            return None if branch is None else simplify_stmt(branch, env)
        then = simplify_stmt(s.then_case, env)
        other = None if s.else_case is None else simplify_stmt(s.else_case, env)
        if then is None and other is None:
            return None
        if then is None:
            return IfThenElse(~c, other)
        return IfThenElse(c, then, other)
    if isinstance(s, Allocate):
        body = simplify_stmt(s.body, env)
        return None if body is None else dataclasses.replace(s, body=body)
    raise TypeError(f"simplify: unknown statement {type(s).__name__}")


def simplify(func: PrimFunc) -> PrimFunc:
    """Simplify every statement and expression of ``func``."""
    env = {v.uid: (0, float("inf")) for v in func.shape_vars}
    body = simplify_stmt(func.body, env)
    return dataclasses.replace(func, body=body if body is not None else Seq(()))
