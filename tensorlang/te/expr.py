"""Expression IR: small immutable nodes for scalar (and, after vectorization, vector) expressions.

Every node is a frozen dataclass. Two nodes are *structurally* equal when they have the same
type and equal fields (``structural_equal``); variables carry a unique id, so two variables
named ``i`` are still different. Python's ``==`` on expressions builds an ``eq`` node (as in
TVM), whose truth value is structural equality, so ``a == b`` works both inside ``compute``
bodies and in ordinary ``if`` tests.
"""

from __future__ import annotations

import builtins
import dataclasses
import itertools
import math
from dataclasses import dataclass
from typing import Any

from .. import dtype as dt
from ..errors import TensorlangTypeError, TensorlangValueError

_uid = itertools.count()


def structural_equal(a, b) -> bool:
    """True when ``a`` and ``b`` are the same tree (same node types, same fields)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, Node):
        return builtins.all(structural_equal(getattr(a, f.name), getattr(b, f.name))
                   for f in dataclasses.fields(a))
    if isinstance(a, tuple):
        return len(a) == len(b) and builtins.all(structural_equal(x, y) for x, y in zip(a, b))
    return a == b


def structural_hash(a) -> int:
    if isinstance(a, Node):
        h = a.__dict__.get("_hash")
        if h is None:
            h = hash((type(a).__name__,) + tuple(structural_hash(getattr(a, f.name))
                                                 for f in dataclasses.fields(a)))
            object.__setattr__(a, "_hash", h)
        return h
    if isinstance(a, tuple):
        return hash(tuple(structural_hash(x) for x in a))
    return hash(a)


class Node:
    """Base of all IR nodes (expressions and statements): structural equality and hashing."""

    def __hash__(self):
        return structural_hash(self)

    def __str__(self):
        from ..tir.printer import to_text
        return to_text(self)

    __repr__ = __str__


class ExprOp:
    """Arithmetic operator overloading, shared by expressions and iteration variables."""

    def __add__(self, o): return binary("add", self, o)
    def __radd__(self, o): return binary("add", o, self)
    def __sub__(self, o): return binary("sub", self, o)
    def __rsub__(self, o): return binary("sub", o, self)
    def __mul__(self, o): return binary("mul", self, o)
    def __rmul__(self, o): return binary("mul", o, self)
    def __truediv__(self, o): return _true_divide(self, o)
    def __rtruediv__(self, o): return _true_divide(o, self)
    def __floordiv__(self, o): return binary("floordiv", self, o)
    def __rfloordiv__(self, o): return binary("floordiv", o, self)
    def __mod__(self, o): return binary("floormod", self, o)
    def __rmod__(self, o): return binary("floormod", o, self)
    def __neg__(self):
        # -0.0 - x (not 0 - x) keeps the sign of zero for floats; LLVM reads it as fneg
        x = as_expr(self)
        return binary("sub", -0.0 if dt.is_float(x.dtype) else 0, x)
    def __lt__(self, o): return binary("lt", self, o)
    def __le__(self, o): return binary("le", self, o)
    def __gt__(self, o): return binary("gt", self, o)
    def __ge__(self, o): return binary("ge", self, o)
    def __and__(self, o): return binary("and", self, o)
    def __rand__(self, o): return binary("and", o, self)
    def __or__(self, o): return binary("or", self, o)
    def __ror__(self, o): return binary("or", o, self)
    def __xor__(self, o): return binary("xor", self, o)
    def __invert__(self): return logical_not(self)

    def astype(self, dtype) -> "Expr":
        """Convert to ``dtype`` (C semantics: float to int truncates toward zero)."""
        return cast(dtype, self)


class Expr(Node, ExprOp):
    """Base of expression nodes. Each has a ``dtype`` field."""

    dtype: str

    def __eq__(self, o): return binary("eq", self, o)
    def __ne__(self, o): return binary("ne", self, o)
    __hash__ = Node.__hash__

    def __bool__(self):
        raise TensorlangTypeError(
            f"the symbolic expression `{self}` has no truth value; use tl.if_then_else, "
            "tl.all or tl.any to branch on it inside a compute definition")

    def __int__(self):
        raise TensorlangTypeError(
            f"int(): `{self}` is a symbolic expression, not a constant; its value is known "
            "only at call time (tl.get_const_tuple raises the same way for symbolic shapes)")

    __index__ = __int__

    def __float__(self):
        raise TensorlangTypeError(f"float(): `{self}` is a symbolic expression, not a constant")


@dataclass(frozen=True, eq=False, repr=False)
class Const(Expr):
    """A constant. ``int()``, ``operator.index()`` and ``float()`` give its value, as for
    TVM's ``IntImm``/``FloatImm``, so ``[int(d) for d in T.shape]`` works."""
    value: Any
    dtype: str

    def __int__(self):
        return int(self.value)

    def __index__(self):
        if not (dt.is_int(self.dtype) or dt.is_bool(self.dtype)):
            raise TensorlangTypeError(f"operator.index(): the constant `{self}` is a {self.dtype}, "
                                      "not an integer")
        return int(self.value)

    def __float__(self):
        return float(self.value)


def get_const_tuple(shape) -> tuple:
    """The ints of a shape whose dimensions are constants (TVM's ``topi.utils
    .get_const_tuple``): ``get_const_tuple(T.shape) == (64, 56, 56)``; a symbolic dimension
    raises ``TensorlangTypeError`` naming it."""
    dims = getattr(shape, "shape", shape)
    out = []
    for d in dims:
        if isinstance(d, int) and not isinstance(d, bool):
            out.append(d)
        elif isinstance(d, Const) and (dt.is_int(d.dtype)):
            out.append(int(d.value))
        else:
            raise TensorlangTypeError(f"get_const_tuple: dimension `{d}` of {tuple(dims)} is not "
                                      "a constant integer")
    return tuple(out)


@dataclass(frozen=True, eq=False, repr=False)
class Var(Expr):
    """A named scalar variable: a loop index, a symbolic shape, or a buffer's data pointer."""
    name: str
    dtype: str = "int32"
    uid: int = dataclasses.field(default_factory=lambda: next(_uid))


# op names: arithmetic, comparisons (result bool), logic (bool: logical; ints: bitwise)
ARITH_OPS = ("add", "sub", "mul", "div", "floordiv", "floormod", "truncmod", "min", "max")
CMP_OPS = ("eq", "ne", "lt", "le", "gt", "ge")
LOGIC_OPS = ("and", "or", "xor")


@dataclass(frozen=True, eq=False, repr=False)
class Binary(Expr):
    """``a <op> b``. ``div`` is true division for floats and truncating division for integers;
    ``floordiv``/``floormod`` round toward minus infinity, as Python's ``//`` and ``%``."""
    op: str
    a: Expr
    b: Expr
    dtype: str

    def __bool__(self):
        if self.op == "eq":
            return structural_equal(self.a, self.b)
        if self.op == "ne":
            return not structural_equal(self.a, self.b)
        return Expr.__bool__(self)


@dataclass(frozen=True, eq=False, repr=False)
class Not(Expr):
    a: Expr
    dtype: str = "bool"


@dataclass(frozen=True, eq=False, repr=False)
class Select(Expr):
    """``if_then_else``: only the branch that ``cond`` selects is evaluated (so a padded load
    in the other branch never runs)."""
    cond: Expr
    true_value: Expr
    false_value: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Let(Expr):
    """``let var = value in body``: ``value`` is evaluated once, where the Let stands, and
    ``body`` reads it as ``var``. Inlining binds a producer that is read more than once this
    way, so that a chain of inlined stages stays linear in size instead of being copied out."""
    var: Var
    value: Expr
    body: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Cast(Expr):
    value: Expr
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Call(Expr):
    """A pure math intrinsic: exp, log, sqrt, rsqrt, tanh, sigmoid, abs, floor, ceil, power, erf."""
    name: str
    args: tuple
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class TensorLoad(Expr):
    """``T[i, j]``: read one element of a tensor (before lowering maps tensors to buffers)."""
    tensor: Any
    indices: tuple
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Range(Node):
    """The half-open interval ``[min, min + extent)``."""
    min: Expr
    extent: Expr

    @staticmethod
    def of(lo, hi) -> "Range":
        lo, hi = as_expr(lo, "int32"), as_expr(hi, "int32")
        from ..arith import simplify
        lo = cast(dt.promote(lo.dtype, hi.dtype), lo) if dt.is_int(lo.dtype) and dt.is_int(hi.dtype) else lo
        return Range(lo, simplify(hi - lo))


class IterVar(ExprOp):
    """An iteration axis: a variable with a domain and a kind (``data`` parallel or ``reduce``).

    Iteration variables compare by identity; in expressions they stand for their ``var``.
    """

    def __init__(self, dom: Range | None, var: Var, kind: str):
        self.dom, self.var, self.kind = dom, var, kind

    @property
    def name(self) -> str:
        return self.var.name

    @property
    def dtype(self) -> str:
        return self.var.dtype

    # ``k == 0`` builds an expression (as in TVM); its truth value is identity, so iteration
    # variables still work as dict keys and in ``in`` tests.
    def __eq__(self, o):
        if not isinstance(o, (Expr, IterVar, int, float)):
            return NotImplemented
        return binary("eq", self, o)

    def __ne__(self, o):
        if not isinstance(o, (Expr, IterVar, int, float)):
            return NotImplemented
        return binary("ne", self, o)

    def __hash__(self):
        return hash(self.var.uid)

    def __repr__(self):
        from ..tir.printer import Printer
        dom = f", {Printer().range(self.dom)}" if self.dom else ""
        return f"IterVar({self.var.name}{dom}, {self.kind})"


@dataclass(frozen=True, eq=False, repr=False)
class CommReducer(Node):
    """A commutative reducer: ``result`` combines ``lhs`` (the accumulator) with ``rhs``."""
    leaf_node = True  # traversals do not descend into the combiner's own variables
    name: str
    lhs: Var
    rhs: Var
    result: Expr
    identity: Expr

    def combine(self, acc: Expr, value: Expr) -> Expr:
        from ..arith import substitute
        return substitute(self.result, {self.lhs: acc, self.rhs: value})


@dataclass(frozen=True, eq=False, repr=False)
class Reduce(Expr):
    """A reduction of ``source`` over the reduce axes ``axis`` where ``condition`` holds."""
    combiner: CommReducer
    source: Expr
    axis: tuple
    condition: Expr
    dtype: str


# --------------------------------------------------------------------------- constructors

def const(value, dtype: str | None = None) -> Const:
    """A constant. Without ``dtype``: bool, int32 or float32 from the Python value."""
    if isinstance(value, Const):
        return value if dtype is None else cast(dtype, value)
    if dtype is None:
        dtype = "bool" if isinstance(value, bool) else "int32" if isinstance(value, int) else "float32"
    dtype = dt.check(dtype)
    if not isinstance(value, (bool, int, float)) and not hasattr(value, "dtype"):
        raise TensorlangTypeError(f"tl.const expects a Python number, got {type(value).__name__}")
    if dt.is_bool(dtype):
        return Const(bool(value), dtype)
    if dt.is_float(dtype):
        return Const(float(dt.to_numpy(dtype).type(value)), dtype)   # rounded to dtype
    if isinstance(value, float) and not float(value).is_integer():
        raise TensorlangValueError(f"constant {value} is not an integer but dtype is {dtype}")
    value = int(value)
    lo, hi = dt.min_value(dtype), dt.max_value(dtype)
    if not lo <= value <= hi:
        raise TensorlangValueError(f"constant {value} does not fit in {dtype} [{lo}, {hi}]")
    return Const(value, dtype)


def var(name: str = "v", dtype: str = "int32") -> Var:
    """A symbolic scalar variable (``tl.var("n")`` as a symbolic tensor extent)."""
    if not isinstance(name, str):
        raise TensorlangTypeError(f"tl.var expects a name string, got {type(name).__name__}")
    return Var(name, dt.check(dtype))


def as_expr(x, dtype: str | None = None) -> Expr:
    """Turn ``x`` (an Expr, IterVar or Python number) into an Expr."""
    if isinstance(x, Expr):
        return x
    if isinstance(x, IterVar):
        return x.var
    if isinstance(x, (bool, int, float)):
        return const(x, dtype)
    if hasattr(x, "op") and hasattr(x, "shape"):
        raise TensorlangTypeError(
            f"tensor {getattr(x, 'name', x)!r} used as a scalar; index it, e.g. {x.name}[i, j]")
    raise TensorlangTypeError(f"cannot use {type(x).__name__} {x!r} as an expression")


def _literal_dtype(value, other: str) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int32" if dt.is_bool(other) else dt.element(other)
    return dt.element(other) if dt.is_float(other) else "float32"


def _operands(a, b):
    if not isinstance(a, (Expr, IterVar)) and isinstance(b, (Expr, IterVar)):
        b = as_expr(b)
        a = as_expr(a, _literal_dtype(a, b.dtype))
    elif isinstance(a, (Expr, IterVar)) and not isinstance(b, (Expr, IterVar)):
        a = as_expr(a)
        b = as_expr(b, _literal_dtype(b, a.dtype))
    else:
        a, b = as_expr(a), as_expr(b)
    return a, b


def result_dtype(op: str, a: Expr, b: Expr) -> str:
    """The dtype of ``a <op> b`` for operands of equal dtype (vector lanes included)."""
    return dt.with_lanes("bool", dt.lanes(a.dtype)) if op in CMP_OPS else a.dtype


def binary(op: str, a, b) -> Expr:
    """Build ``a <op> b``, converting Python numbers and promoting mixed dtypes with casts."""
    a, b = _operands(a, b)
    common = dt.promote(dt.element(a.dtype), dt.element(b.dtype))
    if op in LOGIC_OPS and dt.is_float(common):
        raise TensorlangTypeError(f"operator {op!r} needs bool or integer operands, got {common}")
    if op in ARITH_OPS and op not in ("min", "max") and dt.is_bool(common):
        raise TensorlangTypeError(f"operator {op!r} on bools: convert them first, e.g. "
                                  ".astype('int32') (or use tl.any / tl.all, | and &)")
    if dt.element(a.dtype) != common:
        a = cast(common, a)
    if dt.element(b.dtype) != common:
        b = cast(common, b)
    return Binary(op, a, b, result_dtype(op, a, b))


def _true_divide(a, b) -> Expr:
    """``a / b``: float division. Between integers it is ambiguous (C truncates, Python gives
    a float), so, as in TVM, it is an error that names the explicit alternatives."""
    a, b = _operands(a, b)
    if dt.is_int(a.dtype) and dt.is_int(b.dtype):
        raise TensorlangTypeError(
            f"`{a} / {b}` divides integers, which is ambiguous; use `//` or tl.floordiv (floor, as "
            "in Python), tl.truncdiv (toward zero, as in C), or convert to float with .astype()")
    return binary("div", a, b)


def cast(dtype: str, x) -> Expr:
    dtype = dt.check(dtype)
    x = as_expr(x, dtype)
    if x.dtype == dtype:
        return x
    if isinstance(x, Const):
        v = x.value
        if dt.is_bool(dtype):
            return Const(bool(v), dtype)
        if dt.is_float(dtype):
            return Const(float(dt.to_numpy(dtype).type(v)), dtype)
        if dt.is_int(dtype) and isinstance(v, float) and not math.isfinite(v):
            return Cast(x, dtype)
        import numpy as np
        wrapped = np.array(int(v) & (2**64 - 1), dtype=np.uint64).astype(dt.to_numpy(dtype))
        return Const(int(wrapped), dtype)
    return Cast(x, dtype)


def logical_not(x) -> Expr:
    x = as_expr(x)
    if not dt.is_bool(x.dtype):
        raise TensorlangTypeError(f"logical not needs a bool expression, got {x.dtype}")
    return Not(x, x.dtype)


def _bool(x, what: str) -> Expr:
    x = as_expr(x)
    if not dt.is_bool(x.dtype):
        raise TensorlangTypeError(f"{what} expects bool conditions, got `{x}` of dtype {x.dtype}")
    return x


def all(*conds) -> Expr:  # noqa: A001  (mirrors tvm.te.all)
    """Logical and of all conditions."""
    if not conds:
        return const(True)
    out = _bool(conds[0], "tl.all")
    for c in conds[1:]:
        out = binary("and", out, _bool(c, "tl.all"))
    return out


def any(*conds) -> Expr:  # noqa: A001
    """Logical or of all conditions."""
    if not conds:
        return const(False)
    out = _bool(conds[0], "tl.any")
    for c in conds[1:]:
        out = binary("or", out, _bool(c, "tl.any"))
    return out


def if_then_else(cond, t, f) -> Expr:
    """``t`` where ``cond`` holds, else ``f``; only the selected branch is evaluated."""
    cond = _bool(cond, "tl.if_then_else")
    t, f = _operands(t, f)
    common = dt.promote(t.dtype, f.dtype)
    return Select(cond, cast(common, t), cast(common, f), common)


def floordiv(a, b) -> Expr:
    return binary("floordiv", a, b)


def floormod(a, b) -> Expr:
    return binary("floormod", a, b)


def truncdiv(a, b) -> Expr:
    """Integer division rounding toward zero (C semantics)."""
    a, b = _operands(a, b)
    if not dt.is_int(a.dtype):
        raise TensorlangTypeError(f"truncdiv needs integers, got {a.dtype}")
    return binary("div", a, b)


def truncmod(a, b) -> Expr:
    return binary("truncmod", a, b)


def max_value(dtype: str) -> Const:
    return const(dt.max_value(dtype), dtype)


def min_value(dtype: str) -> Const:
    return const(dt.min_value(dtype), dtype)


FLOAT_MATH = ("exp", "log", "sqrt", "rsqrt", "tanh", "sigmoid", "floor", "ceil", "erf", "power",
              "sin", "cos", "exp2", "log2", "log10", "round", "trunc", "isnan")


def call(name: str, *args) -> Call:
    args = tuple(as_expr(a) for a in args)
    if name == "power":
        args = _operands(*args)
        common = dt.promote(args[0].dtype, args[1].dtype)
        args = tuple(cast(common, a) for a in args)
    x = args[0]
    if name in FLOAT_MATH and not dt.is_float(x.dtype):
        raise TensorlangTypeError(
            f"tl.{name} expects a float expression, got `{x}` of dtype {x.dtype}; "
            f"convert it first with .astype('float32')")
    if name == "abs" and dt.is_bool(x.dtype):
        raise TensorlangTypeError("tl.abs expects a number, got bool")
    return Call(name, args, "bool" if name == "isnan" else x.dtype)


def exp(x): return call("exp", x)
def log(x): return call("log", x)
def sqrt(x): return call("sqrt", x)
def rsqrt(x): return call("rsqrt", x)
def tanh(x): return call("tanh", x)
def sigmoid(x): return call("sigmoid", x)
def floor(x): return call("floor", x)
def ceil(x): return call("ceil", x)
def erf(x): return call("erf", x)
def power(x, y): return call("power", x, y)
def sin(x): return call("sin", x)
def cos(x): return call("cos", x)
def exp2(x): return call("exp2", x)
def log2(x): return call("log2", x)
def log10(x): return call("log10", x)
def round(x): return call("round", x)  # noqa: A001  (halves to even, as numpy)
def trunc(x): return call("trunc", x)
def isnan(x): return call("isnan", x)


def abs(x):  # noqa: A001
    x = as_expr(x)
    return x if dt.is_uint(x.dtype) else call("abs", x)
