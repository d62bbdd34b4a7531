"""The one printer for every IR node: expressions, tensor-level reductions, loop IR, functions.

The loop IR prints as an indented Python-like loop nest::

    def mm(A: float32[1024, 1024], B: float32[1024, 1024], C: float32[1024, 1024]):
      for i.outer in parallel(32):
        for j.outer in range(32):
          ...
            for j.inner in vectorized(32):
              C[...] = C[...] + A[...] * B[...]

``range``/``parallel``/``vectorized``/``unrolled`` name each loop's kind and take the same
arguments as Python's ``range`` (stop, or start and stop). ``let x = ...`` lines before a
store bind the values that inlining shares (the ``Let``s around the stored value); a ``Let``
elsewhere prints inline as ``(let x = ... in ...)``. ``if`` lines are guards of partial
tiles; ``allocate`` lines name the intermediate buffers and where they live (stack or heap).
Variables that share a name get a numeric suffix so that every printed name is unambiguous.
"""

from __future__ import annotations

import math

from .. import dtype as dt
from ..te.expr import (Binary, Call, Cast, CommReducer, Const, Let, Not, Range, Reduce, Select,
                       TensorLoad, Var)
from .nodes import (Allocate, Broadcast, Buffer, For, IfThenElse, Load, PrimFunc, Ramp, Seq, Store)

_INFIX = {"add": ("+", 4), "sub": ("-", 4), "mul": ("*", 5), "div": ("/", 5),
          "floordiv": ("//", 5), "floormod": ("%", 5),
          "eq": ("==", 3), "ne": ("!=", 3), "lt": ("<", 3), "le": ("<=", 3), "gt": (">", 3),
          "ge": (">=", 3), "and": ("&&", 2), "or": ("||", 1), "xor": ("^", 2)}


class Printer:
    def __init__(self):
        self.names: dict[int, str] = {}
        self.used: set[str] = set()

    def name(self, v: Var) -> str:
        if v.uid not in self.names:
            base, n = v.name, 0
            nm = base
            while nm in self.used:
                n += 1
                nm = f"{base}_{n}"
            self.used.add(nm)
            self.names[v.uid] = nm
        return self.names[v.uid]

    # ----------------------------------------------------------------- expressions

    def expr(self, e, prec: int = 0) -> str:
        text, p = self._expr(e)
        return f"({text})" if p < prec else text

    def _expr(self, e) -> tuple[str, int]:
        if isinstance(e, Const):
            return self.const(e), 9
        if isinstance(e, Var):
            return self.name(e), 9
        if isinstance(e, Binary):
            if e.op in ("min", "max", "truncmod") or (e.op == "div" and not dt.is_float(e.dtype)):
                name = "truncdiv" if e.op == "div" else e.op
                return f"{name}({self.expr(e.a)}, {self.expr(e.b)})", 9
            if e.op in ("and", "or") and not dt.is_bool(e.dtype):
                sym, p = ("&", 2) if e.op == "and" else ("|", 1)
            else:
                sym, p = _INFIX[e.op]
            return f"{self.expr(e.a, p)} {sym} {self.expr(e.b, p + 1)}", p
        if isinstance(e, Not):
            return f"!{self.expr(e.a, 8)}", 8
        if isinstance(e, Select):
            return (f"if_then_else({self.expr(e.cond)}, {self.expr(e.true_value)}, "
                    f"{self.expr(e.false_value)})"), 9
        if isinstance(e, Cast):
            return f"{e.dtype}({self.expr(e.value)})", 9
        if isinstance(e, Let):
            return f"let {self.name(e.var)} = {self.expr(e.value)} in {self.expr(e.body)}", 0
        if isinstance(e, Call):
            return f"{e.name}({', '.join(self.expr(a) for a in e.args)})", 9
        if isinstance(e, TensorLoad):
            return f"{e.tensor.name}[{', '.join(self.expr(i) for i in e.indices)}]", 9
        if isinstance(e, Load):
            return f"{e.buffer.name}[{', '.join(self.expr(i) for i in e.indices)}]", 9
        if isinstance(e, Ramp):
            return f"ramp({self.expr(e.base)}, {self.expr(e.stride)}, {e.lanes})", 9
        if isinstance(e, Broadcast):
            return f"broadcast({self.expr(e.value)}, {e.lanes})", 9
        if isinstance(e, Reduce):
            axes = ", ".join(f"{self.name(a.var)} in {self.range(a.dom)}" for a in e.axis)
            where = "" if (isinstance(e.condition, Const) and e.condition.value) \
                else f", where={self.expr(e.condition)}"
            return f"{e.combiner.name}({self.expr(e.source)}, axis=[{axes}]{where})", 9
        if isinstance(e, CommReducer):
            return (f"comm_reducer({self.name(e.lhs)}, {self.name(e.rhs)}: {self.expr(e.result)}, "
                    f"identity={self.expr(e.identity)})"), 9
        if isinstance(e, Range):
            return self.range(e), 9
        return repr(e), 9

    def const(self, c: Const) -> str:
        if dt.is_bool(c.dtype):
            return "True" if c.value else "False"
        if dt.is_float(c.dtype):
            if not math.isfinite(c.value):
                return repr(float(c.value))            # inf, -inf, nan
            text = repr(float(c.value))
            return text + "f" if c.dtype == "float32" else text
        return str(c.value) if c.dtype in ("int32", "int64") else f"{c.dtype}({c.value})"

    def range(self, r: Range) -> str:
        if isinstance(r.min, Const) and r.min.value == 0:
            return f"range({self.expr(r.extent)})"
        from ..arith import simplify
        return f"range({self.expr(r.min)}, {self.expr(simplify(r.min + r.extent))})"

    # ----------------------------------------------------------------- statements

    def stmt(self, s, depth: int) -> list[str]:
        pad = "  " * depth
        if isinstance(s, Seq):
            return [line for x in s.stmts for line in self.stmt(x, depth)]
        if isinstance(s, Store):
            idx = ", ".join(self.expr(i) for i in s.indices)
            lets, v = [], s.value
            while isinstance(v, Let):
                lets.append(f"{pad}let {self.name(v.var)} = {self.expr(v.value)}")
                v = v.body
            return lets + [f"{pad}{s.buffer.name}[{idx}] = {self.expr(v)}"]
        if isinstance(s, For):
            fn = {"serial": "range"}.get(s.kind, s.kind)
            rng = self.range(Range(s.min, s.extent))[len("range"):]
            notes = "".join(f"  # {k}" + ("" if v is None else f"={v}") for k, v in s.annotations)
            return [f"{pad}for {self.name(s.var)} in {fn}{rng}:{notes}"] + self.stmt(s.body, depth + 1)
        if isinstance(s, IfThenElse):
            out = [f"{pad}if {self.expr(s.cond)}:"] + self.stmt(s.then_case, depth + 1)
            if s.else_case is not None:
                out += [f"{pad}else:"] + self.stmt(s.else_case, depth + 1)
            return out
        if isinstance(s, Allocate):
            return [f"{pad}allocate {self.buffer(s.buffer)} on {s.scope}"] + self.stmt(s.body, depth)
        if isinstance(s, PrimFunc):
            params = ", ".join(self.buffer(b) for b in s.params)
            head = [f"def {s.name}({params}):"]
            if s.shape_vars:
                head.append("  # symbolic shapes: " + ", ".join(self.name(v) for v in s.shape_vars))
            return head + self.stmt(s.body, depth + 1)
        return [f"{pad}{self.expr(s)}"]

    def buffer(self, b: Buffer) -> str:
        strides = f" strides=[{', '.join(self.expr(x) for x in b.strides)}]" if b.strides else ""
        return f"{b.name}: {b.dtype}[{', '.join(self.expr(x) for x in b.shape)}]{strides}"


def to_text(node) -> str:
    """Readable text of any IR node."""
    p = Printer()
    if isinstance(node, (Seq, Store, For, IfThenElse, Allocate, PrimFunc)):
        return "\n".join(p.stmt(node, 0))
    if isinstance(node, Buffer):
        return p.buffer(node)
    return p.expr(node)
