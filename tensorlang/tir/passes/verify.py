"""IR verifier: checks that a loop-IR function is well formed. It rewrites nothing.

Checked: every variable is bound (a shape variable, an enclosing loop or a ``Let``; allocation
sizes read shape variables only, since passes may substitute loop variables away), no loop
rebinds an enclosing loop's variable, no tensor-level node survives lowering, operand dtypes
and vector lanes agree (a ``Let``'s variable has its value's dtype), loads and stores match
their buffer's element type, and (after flattening) every access has one index.
"""

from __future__ import annotations

from ... import dtype as dt
from ...errors import IRVerifyError
from ...te.expr import Binary, Expr, Let, Reduce, Select, TensorLoad, Var
from ..nodes import Allocate, For, IfThenElse, Load, PrimFunc, Ramp, Seq, Store


def verify(func: PrimFunc, flat: bool = False) -> None:
    """Raise IRVerifyError naming the first problem found in ``func``."""
    bound = {v.uid for v in func.shape_vars}

    def err(msg, node):
        raise IRVerifyError(f"{func.name}: {msg}: {node}")

    def expr(e: Expr, scope):
        from ...arith import walk
        lets = {n.var.uid for n in walk(e) if isinstance(n, Let)}
        scope = scope | lets if lets else scope
        for n in walk(e):
            if isinstance(n, (TensorLoad, Reduce)):
                err("tensor-level node left after lowering", n)
            if isinstance(n, Var) and n.dtype != "handle" and n.uid not in scope:
                err(f"variable {n.name!r} is not bound", e)
            if isinstance(n, Binary):
                if n.a.dtype != n.b.dtype:
                    err(f"operands of {n.op} have dtypes {n.a.dtype} and {n.b.dtype}", n)
            if isinstance(n, Let) and (n.var.dtype != n.value.dtype or n.dtype != n.body.dtype):
                err("let variable, value and body dtypes disagree", n)
            if isinstance(n, Select) and n.true_value.dtype != n.false_value.dtype:
                err("if_then_else branches differ in dtype", n)
            if isinstance(n, Load):
                access(n.buffer, n.indices, n.dtype, n)
            if isinstance(n, Ramp) and dt.lanes(n.base.dtype) != 1:
                err("ramp base must be a scalar", n)

    def access(buf, indices, dtype, node):
        if dt.element(dtype) != buf.dtype:
            err(f"access of {buf.dtype} buffer {buf.name!r} as {dtype}", node)
        if flat and len(indices) != 1:
            err(f"access of {buf.name!r} has {len(indices)} indices after flattening", node)
        if not flat and len(indices) != len(buf.shape):
            err(f"access of {buf.name!r} has {len(indices)} indices for {len(buf.shape)} dimensions", node)
        if len(indices) == 1 and dt.lanes(indices[0].dtype) != dt.lanes(dtype):
            err("index and value lanes differ", node)

    def stmt(s, scope):
        if isinstance(s, Seq):
            for x in s.stmts:
                stmt(x, scope)
        elif isinstance(s, Store):
            for i in s.indices:
                expr(i, scope)
            expr(s.value, scope)
            access(s.buffer, s.indices, s.value.dtype, s)
        elif isinstance(s, For):
            if s.var.uid in scope:
                err(f"loop variable {s.var.name!r} rebinds an enclosing variable", s.var)
            expr(s.min, scope)
            expr(s.extent, scope)
            stmt(s.body, scope | {s.var.uid})
        elif isinstance(s, IfThenElse):
            expr(s.cond, scope)
            if not dt.is_bool(s.cond.dtype) or dt.lanes(s.cond.dtype) != 1:
                err("guard condition must be a scalar bool", s.cond)
            stmt(s.then_case, scope)
            if s.else_case is not None:
                stmt(s.else_case, scope)
        elif isinstance(s, Allocate):
            for d in s.buffer.shape + s.buffer.strides:
                expr(d, frozenset(bound))      # sizes: shape variables only, never loops
            stmt(s.body, scope)
        else:
            err(f"unknown statement {type(s).__name__}", s)
    stmt(func.body, frozenset(bound))
