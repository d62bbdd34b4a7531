"""Loop IR -> LLVM IR text.

One LLVM module holds one or more kernels. A kernel is ``void @name(ptr %arg.A, ..., i32 %arg.n,
..., ptr %tl.ws, ptr %tl.err)``: one pointer per buffer parameter (``noalias``, aligned to its
element size, which the runtime checks), one integer per symbolic shape variable, the
caller's workspace (64-byte aligned), and a pointer to four int64 error slots that the
runtime reads after the call (bounds violations and failed allocations are reported there
instead of crashing).

* Heap intermediates of constant size are carved from the workspace at offsets fixed here
  (a stack discipline: nested buffers get disjoint ranges, buffers in sequence share one);
  the kernel's ``workspace_bytes`` is the high-water mark. Intermediates of symbolic size,
  and those inside a parallel loop (each thread needs its own), use ``aligned_alloc``.

* Vector expressions become LLVM vector types: a load or store whose index is
  ``ramp(base, 1, n)`` is one ``<n x T>`` access; other vector indices are gathered lane by lane.
* A ``parallel`` loop is outlined into its own function ``void (ptr ctx, i64 begin, i64 end)``
  that runs iterations ``[begin, end)``; the variables it reads travel in a struct ``ctx`` on
  the caller's stack. The kernel calls ``tensorlang_parallel_launch(fn, ctx, extent)``, the
  thread pool of ``tensorlang/runtime/threadpool.py``, which hands out chunks of the
  iterations to its threads and the caller as they become free and returns when all are
  done (``codegen`` makes sure the pool is compiled and known to the JIT). A parallel loop
  inside another one runs serially (no oversubscription).
* Integer division never traps: division by 0 gives 0 (as numpy does) and by -1 negates.
* ``if_then_else`` whose branches read memory or divide is emitted with branches, so that only
  the selected branch runs.
* A ``Let``'s value is emitted once, where the Let stands, and its body reads that register:
  an inlined stage read several times is not duplicated in the LLVM text.

LLVM IR is emitted as text (llvmlite's IR builder cannot set ``nsw`` or fast-math flags);
llvmlite then parses, verifies, optimises and compiles it.
"""

from __future__ import annotations

import json
import struct

from .. import dtype as dt
from . import vecmath
from ..arith import may_fault, walk
from ..te.expr import Binary, Call, Cast, Const, Expr, Let, Not, Select, Var
from ..tir.nodes import (Allocate, Broadcast, Buffer, For, IfThenElse, Load, PrimFunc, Ramp, Seq,
                         Store)

_SCALAR = {"bool": "i1", "int8": "i8", "int16": "i16", "int32": "i32", "int64": "i64",
           "uint8": "i8", "uint16": "i16", "uint32": "i32", "uint64": "i64",
           "float16": "half", "float32": "float", "float64": "double", "handle": "ptr"}
_MANGLE = {"half": "f16", "float": "f32", "double": "f64"}


def lty(dtype: str) -> str:
    """LLVM type of a value of ``dtype`` (``<16 x float>`` for ``float32x16``)."""
    e, n = _SCALAR[dt.element(dtype)], dt.lanes(dtype)
    return e if n == 1 else f"<{n} x {e}>"


def sty(dtype: str) -> str:
    """LLVM type of ``dtype`` in memory (bools are bytes)."""
    return lty(dtype).replace("i1", "i8") if dt.is_bool(dt.element(dtype)) else lty(dtype)


def _scalar_literal(value, dtype: str) -> str:
    if dt.is_float(dtype):
        v = float(value)
        if dtype in ("float16", "float32"):
            import numpy as np
            v = float(np.dtype(dtype).type(v))
        return "0x%016X" % struct.unpack("<Q", struct.pack("<d", v))[0]
    if dt.is_bool(dtype):
        return "true" if value else "false"
    return str(int(value))


def literal(value, dtype: str) -> str:
    """An LLVM constant of ``dtype``; vectors are splats."""
    s = _scalar_literal(value, dt.element(dtype))
    n = dt.lanes(dtype)
    if n == 1:
        return s
    e = _SCALAR[dt.element(dtype)]
    return "<" + ", ".join(f"{e} {s}" for _ in range(n)) + ">"


class V:
    """An SSA value: its IR dtype and its LLVM reference."""
    __slots__ = ("dtype", "ref")

    def __init__(self, dtype, ref):
        self.dtype, self.ref = dtype, ref

    @property
    def ty(self):
        return lty(self.dtype)

    def __str__(self):
        return f"{self.ty} {self.ref}"


class ModuleGen:
    """Collects functions, declarations and attributes of one LLVM module."""

    def __init__(self, name: str, target, bounds_check: bool, fast_math: bool):
        from .target import triple_and_layout
        self.name, self.target = name, target
        self.bounds_check, self.fast_math = bounds_check, fast_math
        self.triple, self.layout = triple_and_layout(target)
        self.decls: dict[str, str] = {}
        self.functions: list[str] = []
        self.globals: list[str] = []
        self.counter = 0
        self.kernel = name                  # the kernel being emitted, and its
        self.buffer_names: list[str] = []   # buffers (for bounds-error reports)
        self.ws_top = self.ws_bytes = 0     # and its workspace: offset in use, high-water mark

    def declare(self, name: str, decl: str) -> str:
        self.decls.setdefault(name, decl)
        return name

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}.{self.counter}"

    def buffer_id(self, name: str) -> int:
        if name not in self.buffer_names:
            self.buffer_names.append(name)
        return self.buffer_names.index(name)

    def attributes(self) -> str:
        attrs = [f'"target-cpu"="{self.target.cpu}"', "nounwind"]
        if self.target.features:
            attrs.append(f'"target-features"="{self.target.features}"')
        if self.target.has_avx512():
            attrs += ['"min-legal-vector-width"="512"', '"prefer-vector-width"="512"']
        return "attributes #0 = { " + " ".join(attrs) + " }"

    def text(self) -> str:
        head = [f'; ModuleID = "{self.name}"', f'target triple = "{self.triple}"',
                f'target datalayout = "{self.layout}"', ""]
        return "\n".join(head + self.globals + [""] + list(self.decls.values()) + [""]
                         + self.functions + [self.attributes(), ""])


class FnGen:
    """Emits one LLVM function from loop IR."""

    def __init__(self, mod: ModuleGen, in_parallel: bool = False):
        self.mod = mod
        self.lines: list[str] = []
        self.entry_allocas: list[str] = []
        self.stack_slots: dict[int, str] = {}
        self.env: dict[int, V] = {}
        self.n = 0
        self.block = "entry"
        self.in_parallel = in_parallel
        # contract: a*b+c may use FMA, as C compilers do; fast_math adds reassociation (not
        # the no-NaN/no-inf assumptions, which would break isnan and saturating functions)
        self.fm = "reassoc nsz arcp contract " if mod.fast_math else "contract "
        self.index_ctx = False

    # ----------------------------------------------------------------- emission helpers

    def tmp(self) -> str:
        self.n += 1
        return f"%t{self.n}"

    def label(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def emit(self, text: str, dtype: str | None = None):
        if dtype is None:
            self.lines.append("  " + text)
            return None
        r = self.tmp()
        self.lines.append(f"  {r} = {text}")
        return V(dtype, r)

    def start_block(self, name: str):
        self.lines.append(f"{name}:")
        self.block = name

    def br(self, target: str):
        self.emit(f"br label %{target}")

    def const(self, value, dtype) -> V:
        return V(dtype, literal(value, dtype))

    def splat(self, v: V, n: int) -> V:
        if dt.lanes(v.dtype) == n:
            return v
        vd = dt.with_lanes(v.dtype, n)
        ins = self.emit(f"insertelement {lty(vd)} poison, {v}, i32 0", vd)
        return self.emit(f"shufflevector {lty(vd)} {ins.ref}, {lty(vd)} poison, <{n} x i32> zeroinitializer", vd)

    def intrinsic(self, name: str, dtype: str, args: list[V], ret: str | None = None) -> V:
        ret = ret or dtype
        n, e = dt.lanes(dtype), _SCALAR[dt.element(dtype)]
        m = _MANGLE.get(e, e)
        suffix = m if n == 1 else f"v{n}{m}"
        fname = f"llvm.{name}.{suffix}"
        self.mod.declare(fname, f"declare {lty(ret)} @{fname}({', '.join(a.ty for a in args)})")
        return self.emit(f"call {self.fm}{lty(ret)} @{fname}({', '.join(map(str, args))})", ret)

    # ----------------------------------------------------------------- expressions

    def ev(self, e: Expr) -> V:
        if isinstance(e, Const):
            return self.const(e.value, e.dtype)
        if isinstance(e, Var):
            return self.env[e.uid]
        if isinstance(e, Binary):
            return self.binary(e)
        if isinstance(e, Let):         # the value once, where the Let stands; the body reads it
            self.env[e.var.uid] = self.ev(e.value)
            try:
                return self.ev(e.body)
            finally:
                del self.env[e.var.uid]
        if isinstance(e, Not):
            return self.emit(f"xor {self.ev(e.a)}, {literal(True, e.dtype)}", e.dtype)
        if isinstance(e, Select):
            return self.select(e)
        if isinstance(e, Cast):
            return self.cast(self.ev(e.value), e.dtype)
        if isinstance(e, Call):
            return self.call(e)
        if isinstance(e, Load):
            return self.load(e)
        if isinstance(e, Ramp):
            base = self.splat(self.ev(e.base), e.lanes)
            stride = self.splat(self.ev(e.stride), e.lanes)
            el = _SCALAR[dt.element(e.dtype)]
            iota = V(e.dtype, "<" + ", ".join(f"{el} {k}" for k in range(e.lanes)) + ">")
            step = self.emit(f"mul {stride}, {iota.ref}", e.dtype)
            return self.emit(f"add {base}, {step.ref}", e.dtype)
        if isinstance(e, Broadcast):
            return self.splat(self.ev(e.value), e.lanes)
        raise NotImplementedError(f"codegen: {type(e).__name__} {e}")

    def binary(self, e: Binary) -> V:
        if e.op in ("and", "or") and e.dtype == "bool" and may_fault(e.b):
            return self.short_circuit(e)
        a, b = self.ev(e.a), self.ev(e.b)
        op, ty = e.op, e.a.dtype
        if dt.is_float(ty):
            return self.float_binary(op, a, b, e.dtype)
        signed = not dt.is_uint(ty) and not dt.is_bool(ty)
        # nsw lets LLVM widen index arithmetic; not under bounds_check, where an index that
        # overflows must still be caught rather than become poison
        nsw = " nsw" if self.index_ctx and signed and not self.mod.bounds_check else ""
        simple = {"add": f"add{nsw}", "sub": f"sub{nsw}", "mul": f"mul{nsw}",
                  "and": "and", "or": "or", "xor": "xor"}
        if op in simple:
            return self.emit(f"{simple[op]} {a}, {b.ref}", e.dtype)
        if op in ("eq", "ne", "lt", "le", "gt", "ge"):
            cc = op if op in ("eq", "ne") else ("s" if signed else "u") + op
            return self.emit(f"icmp {cc} {a}, {b.ref}", e.dtype)
        if op in ("min", "max"):
            cc = ("s" if signed else "u") + ("lt" if op == "min" else "gt")
            c = self.emit(f"icmp {cc} {a}, {b.ref}", dt.with_lanes("bool", dt.lanes(ty)))
            return self.emit(f"select {c}, {a}, {b}", ty)
        return self.int_division(op, a, b, signed)

    def int_division(self, op: str, a: V, b: V, signed: bool) -> V:
        """div (truncating), floordiv, floormod, truncmod that never trap."""
        ty = a.dtype
        booly = dt.with_lanes("bool", dt.lanes(ty))
        zero, one, m1 = (self.const(v, ty) for v in (0, 1, -1))
        if b.ref.lstrip("-").isdigit():                       # constant divisor
            bv = int(b.ref)
            if bv == 0:
                return zero
            if bv == -1 and signed:
                return self.emit(f"sub {zero}, {a.ref}", ty) if op in ("div", "floordiv") else zero
            is0 = is_m1 = None
            bs = b
        else:
            is0 = self.emit(f"icmp eq {b}, {zero.ref}", booly)
            bad = is0
            if signed:
                is_m1 = self.emit(f"icmp eq {b}, {m1.ref}", booly)
                bad = self.emit(f"or {is0}, {is_m1.ref}", booly)
            bs = self.emit(f"select {bad}, {one}, {b}", ty)
        if not signed:
            r = self.emit(f"{'udiv' if op in ('div', 'floordiv') else 'urem'} {a}, {bs.ref}", ty)
        else:
            q = self.emit(f"sdiv {a}, {bs.ref}", ty)
            rem = self.emit(f"srem {a}, {bs.ref}", ty)
            if op == "div":
                r = q
            elif op == "truncmod":
                r = rem
            else:
                nz = self.emit(f"icmp ne {rem}, {zero.ref}", booly)
                x = self.emit(f"xor {rem}, {bs.ref}", ty)
                neg = self.emit(f"icmp slt {x}, {zero.ref}", booly)
                adj = self.emit(f"and {nz}, {neg.ref}", booly)
                if op == "floordiv":
                    d = self.emit(f"zext {adj} to {lty(ty)}", ty)
                    r = self.emit(f"sub {q}, {d.ref}", ty)
                else:
                    add = self.emit(f"select {adj}, {bs}, {zero}", ty)
                    r = self.emit(f"add {rem}, {add.ref}", ty)
            if is_m1 is not None:
                neg_a = self.emit(f"sub {zero}, {a.ref}", ty)
                r = self.emit(f"select {is_m1}, {neg_a if op in ('div', 'floordiv') else zero}, {r}", ty)
        if is0 is not None:
            r = self.emit(f"select {is0}, {zero}, {r}", ty)
        return r

    def float_binary(self, op: str, a: V, b: V, rdtype: str) -> V:
        fm, ty = self.fm, a.dtype
        arith = {"add": "fadd", "sub": "fsub", "mul": "fmul", "div": "fdiv", "truncmod": "frem"}
        if op in arith:
            return self.emit(f"{arith[op]} {fm}{a}, {b.ref}", ty)
        if op in ("eq", "ne", "lt", "le", "gt", "ge"):
            cc = "une" if op == "ne" else "o" + op
            return self.emit(f"fcmp {fm}{cc} {a}, {b.ref}", rdtype)
        if op in ("min", "max"):
            # numpy's maximum: a > b ? a : b, and a when a is NaN (b's NaN falls through);
            # of two zeros, b. On x86 this is vmaxps and a masked move, where llvm.maximum
            # (which also orders -0 below +0, unlike numpy) takes three times as many.
            mask = dt.with_lanes("bool", dt.lanes(ty))
            c = self.emit(f"fcmp {fm}{'olt' if op == 'min' else 'ogt'} {a}, {b.ref}", mask)
            r = self.emit(f"select {c}, {a}, {b}", ty)
            if self.mod.fast_math:
                return r
            nan = self.emit(f"fcmp uno {a}, {a.ref}", mask)
            return self.emit(f"select {nan}, {a}, {r}", ty)
        if dt.element(ty) == "float16":         # as numpy: compute in float32, round once
            wide = dt.with_lanes("float32", dt.lanes(ty))
            return self.cast(self.float_divmod(op, self.cast(a, wide), self.cast(b, wide)), ty)
        return self.float_divmod(op, a, b)

    def float_divmod(self, op: str, a: V, b: V) -> V:
        """Python/numpy ``//`` and ``%`` on floats (numpy's npy_divmod): the remainder comes
        from ``frem`` and takes the divisor's sign; the quotient is rounded from (a - mod)/b."""
        fm = ""                                          # no contraction here: exactness
        ty = a.dtype
        booly = dt.with_lanes("bool", dt.lanes(ty))
        zero, one, half = (self.const(v, ty) for v in (0.0, 1.0, 0.5))
        mod = self.emit(f"frem {fm}{a}, {b.ref}", ty)
        nz = self.emit(f"fcmp {fm}une {mod}, {zero.ref}", booly)
        bneg = self.emit(f"fcmp {fm}olt {b}, {zero.ref}", booly)
        mneg = self.emit(f"fcmp {fm}olt {mod}, {zero.ref}", booly)
        differ = self.emit(f"xor {bneg}, {mneg.ref}", booly)
        adj = self.emit(f"and {nz}, {differ.ref}", booly)
        if op == "floormod":
            fixed = self.emit(f"fadd {fm}{mod}, {b.ref}", ty)
            m2 = self.emit(f"select {adj}, {fixed}, {mod}", ty)
            signed0 = self.intrinsic("copysign", ty, [zero, b])
            return self.emit(f"select {nz}, {m2}, {signed0}", ty)
        diff = self.emit(f"fsub {fm}{a}, {mod.ref}", ty)
        div = self.emit(f"fdiv {fm}{diff}, {b.ref}", ty)
        dm1 = self.emit(f"fsub {fm}{div}, {one.ref}", ty)
        div = self.emit(f"select {adj}, {dm1}, {div}", ty)
        fl = self.intrinsic("floor", ty, [div])
        frac = self.emit(f"fsub {fm}{div}, {fl.ref}", ty)
        up = self.emit(f"fcmp {fm}ogt {frac}, {half.ref}", booly)
        fl1 = self.emit(f"fadd {fm}{fl}, {one.ref}", ty)
        fl = self.emit(f"select {up}, {fl1}, {fl}", ty)
        dnz = self.emit(f"fcmp {fm}une {div}, {zero.ref}", booly)
        quot = self.emit(f"fdiv {fm}{a}, {b.ref}", ty)
        signed0 = self.intrinsic("copysign", ty, [zero, quot])
        res = self.emit(f"select {dnz}, {fl}, {signed0}", ty)
        bz = self.emit(f"fcmp oeq {b}, {zero.ref}", booly)     # x // 0 is x / 0, as in numpy
        return self.emit(f"select {bz}, {quot}, {res}", ty)

    def cast(self, v: V, to: str) -> V:
        fr = v.dtype
        to = dt.with_lanes(to, dt.lanes(fr)) if dt.lanes(to) == 1 else to
        if lty(fr) == lty(to) and dt.is_float(fr) == dt.is_float(to):
            return V(to, v.ref)
        tt = lty(to)
        if dt.is_bool(to):
            if dt.is_float(fr):
                return self.emit(f"fcmp une {v}, {literal(0.0, fr)}", to)
            return self.emit(f"icmp ne {v}, {literal(0, fr)}", to)
        if dt.is_float(fr) and dt.is_float(to):
            return self.emit(f"{'fpext' if dt.bits(to) > dt.bits(fr) else 'fptrunc'} {v} to {tt}", to)
        if dt.is_float(fr):
            return self.emit(f"{'fptoui' if dt.is_uint(to) else 'fptosi'} {v} to {tt}", to)
        src_signed = not (dt.is_uint(fr) or dt.is_bool(fr))
        if dt.is_float(to):
            return self.emit(f"{'sitofp' if src_signed else 'uitofp'} {v} to {tt}", to)
        if dt.bits(to) == dt.bits(fr):
            return V(to, v.ref)
        if dt.bits(to) < dt.bits(fr):
            return self.emit(f"trunc {v} to {tt}", to)
        return self.emit(f"{'sext' if src_signed else 'zext'} {v} to {tt}", to)

    def call(self, e: Call) -> V:
        args = [self.ev(a) for a in e.args]
        x, ty, fm = args[0], e.dtype, self.fm
        direct = {"exp": "exp", "log": "log", "sqrt": "sqrt", "floor": "floor", "ceil": "ceil",
                  "power": "pow", "tanh": "tanh", "sin": "sin", "cos": "cos", "exp2": "exp2",
                  "log2": "log2", "log10": "log10", "round": "roundeven", "trunc": "trunc"}
        if e.name == "exp":
            return self.exp(x)
        if e.name == "tanh" and dt.element(ty) == "float32" and dt.lanes(ty) > 1:
            return vecmath.tanh_f32(self, x)
        if e.name in direct:
            return self.intrinsic(direct[e.name], ty, args)
        if e.name == "abs":
            if dt.is_float(ty):
                return self.intrinsic("fabs", ty, args)
            neg = self.emit(f"sub {self.const(0, ty)}, {x.ref}", ty)
            c = self.emit(f"icmp slt {x}, {literal(0, ty)}", dt.with_lanes("bool", dt.lanes(ty)))
            return self.emit(f"select {c}, {neg}, {x}", ty)
        if e.name == "isnan":
            return self.emit(f"fcmp uno {x}, {x.ref}", e.dtype)
        if e.name == "rsqrt":
            s = self.intrinsic("sqrt", ty, args)
            return self.emit(f"fdiv {fm}{self.const(1.0, ty)}, {s.ref}", ty)
        if e.name == "sigmoid":
            n = self.emit(f"fneg {fm}{x}", ty)
            ex = self.exp(n)
            d = self.emit(f"fadd {fm}{self.const(1.0, ty)}, {ex.ref}", ty)
            return self.emit(f"fdiv {fm}{self.const(1.0, ty)}, {d.ref}", ty)
        if e.name == "erf":
            if dt.element(ty) == "float32" and dt.lanes(ty) > 1:
                return vecmath.erf_f32(self, x)
            if dt.element(ty) == "float16":      # no half erf in libm: compute in float32
                return self.cast(self.libm("erff", self.cast(x, "float32")), ty)
            return self.libm("erf" if dt.element(ty) == "float64" else "erff", x)
        raise NotImplementedError(f"codegen: math function {e.name}")

    def exp(self, x: V) -> V:
        """float32 vectors inline (codegen/vecmath.py); otherwise LLVM's exp (libm)."""
        if dt.element(x.dtype) == "float32" and dt.lanes(x.dtype) > 1:
            return vecmath.exp_f32(self, x)
        return self.intrinsic("exp", x.dtype, [x])

    def libm(self, fname: str, x: V) -> V:
        """Call a scalar C math function, lane by lane for vectors."""
        el = dt.element(x.dtype)
        self.mod.declare(fname, f"declare {lty(el)} @{fname}({lty(el)})")
        if dt.lanes(x.dtype) == 1:
            return self.emit(f"call {lty(el)} @{fname}({x})", el)
        out = V(x.dtype, "poison")
        for k in range(dt.lanes(x.dtype)):
            s = self.emit(f"extractelement {x}, i32 {k}", el)
            r = self.emit(f"call {lty(el)} @{fname}({s})", el)
            out = self.emit(f"insertelement {out}, {r}, i32 {k}", x.dtype)
        return out

    def short_circuit(self, e: Binary) -> V:
        """``a && b`` / ``a || b`` that evaluates ``b`` only when it matters (``b`` may read
        memory that ``a`` guards, e.g. a split's tail guard followed by a ``where=``)."""
        a = self.ev(e.a)
        start, lb, lm = self.block, self.label("rhs"), self.label("rhs.end")
        if e.op == "and":
            self.emit(f"br {a}, label %{lb}, label %{lm}")
        else:
            self.emit(f"br {a}, label %{lm}, label %{lb}")
        self.start_block(lb)
        b = self.ev(e.b)
        end = self.block
        self.br(lm)
        self.start_block(lm)
        short = "false" if e.op == "and" else "true"
        return self.emit(f"phi i1 [ {short}, %{start} ], [ {b.ref}, %{end} ]", "bool")

    def select(self, e: Select) -> V:
        c = self.ev(e.cond)
        risky = may_fault(e.true_value) or may_fault(e.false_value)
        if not risky or dt.lanes(c.dtype) > 1:
            t, f = self.ev(e.true_value), self.ev(e.false_value)
            return self.emit(f"select {c}, {t}, {f}", e.dtype)
        lt, lf, lm = self.label("sel.t"), self.label("sel.f"), self.label("sel.end")
        self.emit(f"br {c}, label %{lt}, label %{lf}")
        self.start_block(lt)
        t = self.ev(e.true_value)
        bt = self.block
        self.br(lm)
        self.start_block(lf)
        f = self.ev(e.false_value)
        bf = self.block
        self.br(lm)
        self.start_block(lm)
        return self.emit(f"phi {lty(e.dtype)} [ {t.ref}, %{bt} ], [ {f.ref}, %{bf} ]", e.dtype)

    # ----------------------------------------------------------------- memory

    def index(self, e: Expr) -> V:
        """An index, widened to int64 (zero-extended when unsigned) for address arithmetic;
        signed index arithmetic is emitted with ``nsw`` (the runtime checks sizes)."""
        prev, self.index_ctx = self.index_ctx, True
        try:
            v = self.ev(e)
        finally:
            self.index_ctx = prev
        return self.cast(v, "int64")

    def address(self, buf: Buffer, idx_expr: Expr, dtype: str):
        """(pointer or vector of pointers, lanes, contiguous?) of an access."""
        base = self.env[buf.data.uid]
        n = dt.lanes(dtype)
        et = sty(buf.dtype)
        if isinstance(idx_expr, Ramp) and isinstance(idx_expr.stride, Const) and idx_expr.stride.value == 1:
            i = self.index(idx_expr.base)
            return self.emit(f"getelementptr inbounds {et}, ptr {base.ref}, {i}", "handle"), True
        i = self.index(idx_expr)
        if n == 1:
            return self.emit(f"getelementptr inbounds {et}, ptr {base.ref}, {i}", "handle"), True
        return i, False

    def checked(self, buf: Buffer, idx_expr: Expr, access):
        """Run ``access()`` only when the index is inside ``buf`` (bounds_check builds)."""
        if not self.mod.bounds_check:
            return access()
        idx = self.index(idx_expr)
        n = dt.lanes(idx.dtype)
        size = self.splat(self.index(buf.shape[0]), n)
        booly = dt.with_lanes("bool", n)
        ge = self.emit(f"icmp sge {idx}, {literal(0, idx.dtype)}", booly)
        lt = self.emit(f"icmp slt {idx}, {size.ref}", booly)
        ok = self.emit(f"and {ge}, {lt.ref}", booly)
        lanes_ok = ok
        if n > 1:
            fname = f"llvm.vector.reduce.and.v{n}i1"
            self.mod.declare(fname, f"declare i1 @{fname}(<{n} x i1>)")
            ok = self.emit(f"call i1 @{fname}({ok})", "bool")
        lok, lbad, lend = self.label("in.bounds"), self.label("out.of.bounds"), self.label("access.end")
        self.emit(f"br {ok}, label %{lok}, label %{lbad}")
        self.start_block(lbad)
        err = self.env[-1]
        first = idx
        if n > 1:                      # report the first lane that is out of bounds
            bad = self.emit(f"xor {lanes_ok}, {literal(True, booly)}", booly)
            bits, lane = self.tmp(), self.tmp()        # i{n}: not an IR dtype, so raw lines
            self.mod.declare(f"llvm.cttz.i{n}", f"declare i{n} @llvm.cttz.i{n}(i{n}, i1)")
            self.lines.append(f"  {bits} = bitcast {bad} to i{n}")
            self.lines.append(f"  {lane} = call i{n} @llvm.cttz.i{n}(i{n} {bits}, i1 true)")
            first = self.emit(f"extractelement {idx}, i{n} {lane}", dt.element(idx.dtype))
        # only the first violation is recorded (threads of a parallel loop may race here)
        won = self.emit(f"cmpxchg ptr {err.ref}, i64 0, i64 1 seq_cst seq_cst", "handle")
        flag = self.tmp()
        self.lines.append(f"  {flag} = extractvalue {{ i64, i1 }} {won.ref}, 1")
        lrec, lskip = self.label("record"), self.label("recorded")
        self.emit(f"br i1 {flag}, label %{lrec}, label %{lskip}")
        self.start_block(lrec)
        for slot, val in ((1, str(self.mod.buffer_id(buf.name))), (2, first.ref)):
            p = self.emit(f"getelementptr i64, ptr {err.ref}, i32 {slot}", "handle")
            self.emit(f"store i64 {val}, ptr {p.ref}")
        self.br(lskip)
        self.start_block(lskip)
        lbad = self.block
        self.br(lend)
        self.start_block(lok)
        v = access()
        bok = self.block
        self.br(lend)
        self.start_block(lend)
        if v is None:
            return None
        zero = "zeroinitializer" if dt.lanes(v.dtype) > 1 else literal(0, v.dtype)
        return self.emit(f"phi {v.ty} [ {v.ref}, %{bok} ], [ {zero}, %{lbad} ]", v.dtype)

    def load(self, e: Load) -> V:
        def access():
            ptr, contiguous = self.address(e.buffer, e.indices[0], e.dtype)
            st = sty(e.dtype)
            align = dt.itemsize(e.buffer.dtype)
            if contiguous:
                raw = self.emit(f"load {st}, ptr {ptr.ref}, align {align}", e.dtype)
            else:                               # gather, lane by lane
                el = dt.element(e.dtype)
                raw = V(e.dtype, "poison")
                for k in range(dt.lanes(e.dtype)):
                    i = self.emit(f"extractelement {ptr}, i32 {k}", "int64")
                    p = self.emit(f"getelementptr inbounds {sty(el)}, ptr {self.env[e.buffer.data.uid].ref}, {i}", "handle")
                    x = self.emit(f"load {sty(el)}, ptr {p.ref}, align {align}", el)
                    raw = self.emit(f"insertelement {st} {raw.ref}, {sty(el)} {x.ref}, i32 {k}", e.dtype)
            if dt.is_bool(e.dtype):         # any nonzero byte is True, as in numpy
                zero = "zeroinitializer" if dt.lanes(e.dtype) > 1 else "0"
                return self.emit(f"icmp ne {st} {raw.ref}, {zero}", e.dtype)
            return raw
        return self.checked(e.buffer, e.indices[0], access)

    def store(self, s: Store) -> None:
        val = self.ev(s.value)

        def access():
            ptr, contiguous = self.address(s.buffer, s.indices[0], s.value.dtype)
            st = sty(val.dtype)
            v = val
            if dt.is_bool(val.dtype):
                v = V(val.dtype, self.emit(f"zext {val} to {st}", val.dtype).ref)
            align = dt.itemsize(s.buffer.dtype)
            if contiguous:
                self.emit(f"store {st} {v.ref}, ptr {ptr.ref}, align {align}")
            else:
                el = dt.element(val.dtype)
                for k in range(dt.lanes(val.dtype)):
                    i = self.emit(f"extractelement {ptr}, i32 {k}", "int64")
                    p = self.emit(f"getelementptr inbounds {sty(el)}, ptr {self.env[s.buffer.data.uid].ref}, {i}", "handle")
                    x = self.emit(f"extractelement {st} {v.ref}, i32 {k}", el)
                    self.emit(f"store {sty(el)} {x.ref}, ptr {p.ref}, align {align}")
            return None
        self.checked(s.buffer, s.indices[0], access)

    # ----------------------------------------------------------------- statements

    def stmt(self, s) -> None:
        if isinstance(s, Seq):
            for x in s.stmts:
                self.stmt(x)
        elif isinstance(s, Store):
            self.store(s)
        elif isinstance(s, For):
            if s.kind == "parallel" and not self.in_parallel:
                self.parallel_for(s)
            else:
                self.serial_for(s.var, self.ev(s.min), self.ev(s.min + s.extent), s.body)
        elif isinstance(s, IfThenElse):
            c = self.ev(s.cond)
            lt, lf, lend = self.label("then"), self.label("else"), self.label("endif")
            self.emit(f"br {c}, label %{lt}, label %{lf if s.else_case is not None else lend}")
            self.start_block(lt)
            self.stmt(s.then_case)
            self.br(lend)
            if s.else_case is not None:
                self.start_block(lf)
                self.stmt(s.else_case)
                self.br(lend)
            self.start_block(lend)
        elif isinstance(s, Allocate):
            self.allocate(s)
        else:
            raise NotImplementedError(f"codegen: statement {type(s).__name__}")

    def serial_for(self, var: Var, begin: V, end: V, body) -> None:
        ty = lty(var.dtype)
        pre, head, lbody, lexit = self.block, self.label("for.head"), self.label("for.body"), self.label("for.end")
        self.br(head)
        self.start_block(head)
        i = self.tmp()
        phi_at = len(self.lines)
        self.lines.append(None)          # the phi, filled in once the latch block is known
        c = self.emit(f"icmp slt {ty} {i}, {end.ref}", "bool")
        self.emit(f"br {c}, label %{lbody}, label %{lexit}")
        self.start_block(lbody)
        self.env[var.uid] = V(var.dtype, i)
        self.stmt(body)
        del self.env[var.uid]            # out of scope: a later copy of this loop rebinds it
        nxt = self.emit(f"add nsw {ty} {i}, 1", var.dtype)
        latch = self.block
        self.br(head)
        self.lines[phi_at] = f"  {i} = phi {ty} [ {begin.ref}, %{pre} ], [ {nxt.ref}, %{latch} ]"
        self.start_block(lexit)

    def parallel_for(self, s: For) -> None:
        """Outline the loop body into a function of a sub-range of the iterations, and hand
        it to the thread pool (``tensorlang/runtime/threadpool.py``)."""
        captured = {}
        inner = {n.var.uid for n in walk(s) if isinstance(n, For)}
        for n in walk(s):
            if isinstance(n, Var) and n.uid in self.env and n.uid not in inner:
                captured[n.uid] = self.env[n.uid]
            if isinstance(n, (Load, Store, Allocate)):
                b = n.buffer
                if b.data.uid in self.env:
                    captured[b.data.uid] = self.env[b.data.uid]
                for x in walk(b.shape[0]):       # sizes: bounds checks, heap allocations
                    if isinstance(x, Var) and x.uid in self.env:
                        captured[x.uid] = self.env[x.uid]
        captured[-1] = self.env[-1]
        keys = list(captured)
        struct_ty = "{ " + ", ".join(captured[k].ty for k in keys) + " }"
        ctx = self.tmp()
        self.entry_allocas.append(f"  {ctx} = alloca {struct_ty}, align 8")
        for slot, k in enumerate(keys):
            p = self.emit(f"getelementptr {struct_ty}, ptr {ctx}, i32 0, i32 {slot}", "handle")
            self.emit(f"store {captured[k]}, ptr {p.ref}")
        fname = self.mod.fresh(f"{self.mod.kernel}.parallel")
        extent = self.cast(self.ev(s.extent), "int64")
        self.mod.declare("tensorlang_parallel_launch",
                         "declare void @tensorlang_parallel_launch(ptr, ptr, i64)")
        self.emit(f'call void @tensorlang_parallel_launch(ptr @"{fname}", ptr {ctx}, {extent})')

        # the outlined body runs iterations [min + begin, min + end) of the loop
        g = FnGen(self.mod, in_parallel=True)
        for slot, k in enumerate(keys):
            p = g.emit(f"getelementptr {struct_ty}, ptr %ctx, i32 0, i32 {slot}", "handle")
            g.env[k] = g.emit(f"load {captured[k].ty}, ptr {p.ref}", captured[k].dtype)
        ty = s.var.dtype
        lo = g.ev(s.min)
        begin = g.emit(f"add {lo}, {g.cast(V('int64', '%begin'), ty).ref}", ty)
        end = g.emit(f"add {lo}, {g.cast(V('int64', '%end'), ty).ref}", ty)
        g.serial_for(s.var, begin, end, s.body)
        g.emit("ret void")
        self.mod.functions.append(
            g.finish(f'define internal void @"{fname}"(ptr %ctx, i64 %begin, i64 %end) #0'))

    def allocate(self, s: Allocate) -> None:
        b = s.buffer
        et = sty(b.dtype)
        if s.scope == "stack":
            # one stack slot per buffer and function: copies of an Allocate (unrolled or
            # partitioned loops) are never live at once, so they share it
            p = self.stack_slots.get(b.data.uid)
            if p is None:
                p = self.stack_slots[b.data.uid] = self.tmp()
                self.entry_allocas.append(f"  {p} = alloca {et}, i64 {max(b.const_size(), 1)}, align 64")
            self.env[b.data.uid] = V("handle", p)
            self.stmt(s.body)
            del self.env[b.data.uid]
            return
        size = b.const_size()
        if size is not None and not self.in_parallel:
            # a constant range of the caller's workspace, free again once the body is emitted
            offset = self.mod.ws_top
            self.mod.ws_top += -(-max(size * dt.itemsize(b.dtype), 1) // 64) * 64
            self.mod.ws_bytes = max(self.mod.ws_bytes, self.mod.ws_top)
            p = self.emit(f"getelementptr inbounds i8, ptr {self.env[-2].ref}, i64 {offset}", "handle")
            self.env[b.data.uid] = p
            self.stmt(s.body)
            del self.env[b.data.uid]
            self.mod.ws_top = offset
            return
        count = self.cast(self.ev(b.shape[0]), "int64")
        nbytes = self.emit(f"mul i64 {count.ref}, {dt.itemsize(b.dtype)}", "int64")
        padded = self.emit(f"add i64 {nbytes.ref}, 63", "int64")
        rounded = self.emit(f"and i64 {padded.ref}, -64", "int64")
        safe = self.emit(f"select i1 {self.emit(f'icmp eq i64 {rounded.ref}, 0', 'bool').ref}, i64 64, i64 {rounded.ref}", "int64")
        self.mod.declare("aligned_alloc", "declare noalias ptr @aligned_alloc(i64, i64)")
        self.mod.declare("free", "declare void @free(ptr)")
        p = self.emit(f"call ptr @aligned_alloc(i64 64, i64 {safe.ref})", "handle")
        isnull = self.emit(f"icmp eq ptr {p.ref}, null", "bool")
        lok, lfail, lend = self.label("alloc.ok"), self.label("alloc.fail"), self.label("alloc.end")
        self.emit(f"br i1 {isnull.ref}, label %{lfail}, label %{lok}")
        self.start_block(lfail)
        self.emit(f"store i64 2, ptr {self.env[-1].ref}")
        self.br(lend)
        self.start_block(lok)
        self.env[b.data.uid] = p
        self.stmt(s.body)
        del self.env[b.data.uid]
        self.emit(f"call void @free(ptr {p.ref})")
        self.br(lend)
        self.start_block(lend)

    def finish(self, header: str) -> str:
        body = [x for x in self.lines if x is not None]
        return "\n".join([header + " {", "entry:"] + self.entry_allocas + body + ["}", ""])


def _dim(s: Expr, names: dict):
    """A dimension for the runtime's checks: an int, a variable's name, or an expression
    tree ``[op, a, b]`` over those."""
    if isinstance(s, Const):
        return s.value
    if isinstance(s, Var):
        return names[s.uid]
    if isinstance(s, Cast):
        return _dim(s.value, names)
    return [s.op, _dim(s.a, names), _dim(s.b, names)]


def codegen(funcs, target, bounds_check: bool = False, fast_math: bool = False,
            name: str | None = None) -> tuple[str, dict]:
    """LLVM IR text of one module holding the kernels ``funcs`` (a PrimFunc or a list of
    them) and the metadata the runtime needs: ``{"name", "target", "kernels": [...]}`` with
    each kernel's parameters (to check call arguments) and ``workspace_bytes``."""
    funcs = [funcs] if isinstance(funcs, PrimFunc) else list(funcs)
    mod = ModuleGen(name or funcs[0].name, target, bounds_check, fast_math)
    kernels = [_kernel(mod, f) for f in funcs]
    meta = {"name": mod.name, "target": str(target), "kernels": kernels}
    blob = json.dumps(meta).encode() + b"\0"
    enc = "".join(chr(c) if 32 <= c < 127 and c not in (34, 92) else f"\\{c:02X}" for c in blob)
    mod.globals.append(f'@__tensorlang_meta = private unnamed_addr constant [{len(blob)} x i8] c"{enc}"')
    mod.functions.append("define ptr @tensorlang_metadata() {\nentry:\n  ret ptr @__tensorlang_meta\n}\n")
    if "tensorlang_parallel_launch" in mod.decls:
        # the JIT resolves the launch call to this process's pool: compile it, register it
        from ..runtime.threadpool import install
        install()
    return mod.text(), meta


def _kernel(mod: ModuleGen, func: PrimFunc) -> dict:
    """Emit ``func`` into ``mod``; its metadata."""
    mod.kernel, mod.buffer_names, mod.ws_top, mod.ws_bytes = func.name, [], 0, 0
    first = len(mod.functions)           # the kernel goes before its outlined parallel loops
    g = FnGen(mod)
    params = []
    for b in func.params:
        g.env[b.data.uid] = V("handle", f'%"arg.{b.name}"')
        params.append(f'ptr noalias align {dt.itemsize(b.dtype)} %"arg.{b.name}"')
    for v in func.shape_vars:
        g.env[v.uid] = V(v.dtype, f'%"arg.{v.name}.{v.uid}"')
        params.append(f'{lty(v.dtype)} %"arg.{v.name}.{v.uid}"')
    g.env[-2] = V("handle", '%"tl.ws"')
    params.append('ptr noalias align 64 %"tl.ws"')
    g.env[-1] = V("handle", '%"tl.err"')
    params.append('ptr %"tl.err"')
    for b in func.params:
        mod.buffer_id(b.name)
    g.stmt(func.body)
    g.emit("ret void")
    mod.functions.insert(first, g.finish(f'define void @"{func.name}"({", ".join(params)}) #0'))
    unique: dict[int, str] = {}
    for v in func.shape_vars:            # two different variables may share a name
        nm, k = v.name, 0
        while nm in unique.values():
            k += 1
            nm = f"{v.name}_{k}"
        unique[v.uid] = nm
    return {
        "name": func.name,
        "params": [{"name": b.name, "dtype": b.dtype, "shape": [_dim(s, unique) for s in b.shape]}
                   for b in func.params],
        "shape_vars": [{"name": unique[v.uid], "dtype": v.dtype} for v in func.shape_vars],
        "outputs": list(func.outputs),
        "buffers": mod.buffer_names,
        "workspace_bytes": mod.ws_bytes,
        "target": str(mod.target),
        "bounds_check": mod.bounds_check,
        "tir": str(func),
    }
