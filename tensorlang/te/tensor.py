"""Tensors and the operations that produce them: ``placeholder``, ``compute``, reductions.

A tensor is the output of an operation. ``PlaceholderOp`` is an input; ``ComputeOp`` defines
each element by an expression of its indices (``op.axis``), possibly a reduction over
``op.reduce_axis``. Nothing here says *how* to compute: that is the schedule's job.
"""

from __future__ import annotations

import inspect
import math
import numbers

from .. import dtype as dt
from ..errors import TensorlangTypeError, TensorlangValueError
from . import expr as E
from .expr import CommReducer, Expr, IterVar, Range, Reduce, TensorLoad, Var


class Tensor:
    """The (single) output of an operation; index it to read an element: ``A[i, j]``."""

    def __init__(self, op: "Operation"):
        self.op = op

    shape = property(lambda self: self.op.shape)
    dtype = property(lambda self: self.op.dtype)
    name = property(lambda self: self.op.name)
    ndim = property(lambda self: len(self.op.shape))

    def __getitem__(self, indices) -> TensorLoad:
        if not isinstance(indices, tuple):
            indices = (indices,)
        if len(indices) != self.ndim:
            raise TensorlangValueError(
                f"tensor {self.name!r} has {self.ndim} dimensions but was indexed with "
                f"{len(indices)} indices")
        idx = []
        for n, i in enumerate(indices):
            if isinstance(i, slice):
                raise TensorlangTypeError(f"tensor {self.name!r}: slices are not supported in "
                                          f"compute definitions; index dimension {n} with an expression")
            if isinstance(i, float):
                raise TensorlangTypeError(
                    f"tensor {self.name!r}: index {n} is the float {i!r}; indices must be integers")
            i = E.as_expr(i, "int32")
            if not dt.is_int(i.dtype):
                raise TensorlangTypeError(
                    f"tensor {self.name!r}: index {n} `{i}` has dtype {i.dtype}; indices must be integers")
            idx.append(i)
        return TensorLoad(self, tuple(idx), self.dtype)

    def __repr__(self):
        return f"Tensor({self.name}, shape={list(map(str, self.shape))}, {self.dtype})"

    def __hash__(self):
        return id(self)

    def __eq__(self, other):
        return self is other


def _scalar_misuse(self, *_):
    raise TensorlangTypeError(f"tensor {self.name!r} used as a scalar; index it, e.g. "
                              f"{self.name}[{', '.join('i' + str(k) for k in range(self.ndim))}]")


for _op in ("add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "lt", "le", "gt", "ge",
            "and", "or", "xor"):
    setattr(Tensor, f"__{_op}__", _scalar_misuse)
    setattr(Tensor, f"__r{_op}__", _scalar_misuse)
Tensor.__neg__ = Tensor.__bool__ = _scalar_misuse


class Operation:
    name: str
    shape: tuple
    dtype: str

    def output(self, i: int = 0) -> Tensor:
        if i != 0:
            raise TensorlangValueError(f"operation {self.name!r} has one output, asked for {i}")
        return self._out

    @property
    def input_tensors(self) -> list:
        return []

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class PlaceholderOp(Operation):
    """An input tensor whose values are given at call time."""

    def __init__(self, name, shape, dtype):
        self.name, self.shape, self.dtype = name, shape, dtype
        self.axis, self.reduce_axis, self.tag = [], [], ""
        self._out = Tensor(self)


class ComputeOp(Operation):
    """``out[axis] = body``, where ``body`` may be a single top-level ``Reduce``."""

    def __init__(self, name, tag, axis, body: Expr, shape):
        self.name, self.tag, self.axis, self.body, self.shape = name, tag, axis, body, shape
        self.dtype = body.dtype
        self.reduce_axis = list(body.axis) if isinstance(body, Reduce) else []
        self._out = Tensor(self)

    @property
    def input_tensors(self) -> list:
        from ..arith import walk
        seen = []
        for n in walk(self.body):
            if isinstance(n, TensorLoad) and n.tensor not in seen:
                seen.append(n.tensor)
        return seen


def index_dtype(dtype: str) -> str:
    """The dtype of loop variables over an extent of ``dtype``: int32, or int64 for extents
    that may not fit (loops never count in narrow or unsigned types)."""
    return "int64" if dtype in ("int64", "uint32", "uint64") else "int32"


def as_int(x):
    """numpy integers and integral floats (``N / bn`` in TVM tutorials) as Python ints."""
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return int(x)
    if isinstance(x, numbers.Real) and not isinstance(x, bool) and float(x).is_integer():
        return int(x)
    return x


def _shape(shape, what: str) -> tuple:
    if isinstance(shape, (int, Expr)):
        shape = (shape,)
    if not isinstance(shape, (tuple, list)):
        raise TensorlangTypeError(f"{what}: shape must be a tuple of ints or tl.var, got {shape!r}")
    out = []
    for n, s in enumerate(shape):
        s = as_int(s)
        if isinstance(s, bool) or not isinstance(s, (int, Expr)):
            raise TensorlangTypeError(f"{what}: shape[{n}] = {s!r} is not an int or a tl.var")
        if isinstance(s, int) and s < 0:
            raise TensorlangValueError(f"{what}: shape[{n}] = {s} is negative")
        s = E.as_expr(s, "int32")
        if not dt.is_int(s.dtype):
            raise TensorlangTypeError(f"{what}: shape[{n}] `{s}` must be an integer expression")
        out.append(s)
    return tuple(out)


def placeholder(shape, dtype: str = "float32", name: str = "placeholder") -> Tensor:
    """An input tensor of ``shape`` (ints or ``tl.var``) and ``dtype``."""
    try:
        dtype = dt.check(dtype)
    except TensorlangTypeError as e:
        raise TensorlangTypeError(f"placeholder {name!r}: {e}") from None
    return PlaceholderOp(name, _shape(shape, f"placeholder {name!r}"), dtype).output(0)


def reduce_axis(dom, name: str = "rv") -> IterVar:
    """A reduction axis over ``dom = (lo, hi)`` (half-open)."""
    if isinstance(dom, Range):
        rng = dom
    elif isinstance(dom, (tuple, list)) and len(dom) == 2:
        rng = Range.of(*dom)
    else:
        raise TensorlangTypeError(f"reduce_axis {name!r}: dom must be (lo, hi), got {dom!r}")
    if not dt.is_int(rng.extent.dtype):
        raise TensorlangTypeError(f"reduce_axis {name!r}: bounds must be integers, got {rng.extent.dtype}")
    t = index_dtype(rng.extent.dtype)
    rng = Range(E.cast(t, rng.min), E.cast(t, rng.extent))
    return IterVar(rng, Var(name, t), "reduce")


def compute(shape, fcompute, name: str = "compute", tag: str = "", attrs=None) -> Tensor:
    """The tensor of ``shape`` whose element at ``(i, j, ...)`` is ``fcompute(i, j, ...)``."""
    shape = _shape(shape, f"compute {name!r}")
    if not callable(fcompute):
        raise TensorlangTypeError(f"compute {name!r}: fcompute must be callable")
    try:
        params = list(inspect.signature(fcompute).parameters.values())
    except (TypeError, ValueError):
        params = None
    if params is not None:
        varargs = any(p.kind == p.VAR_POSITIONAL for p in params)
        if not varargs and len(params) != len(shape):
            raise TensorlangTypeError(
                f"compute {name!r}: fcompute takes {len(params)} arguments but the shape has "
                f"{len(shape)} dimensions; it must take one index per dimension")
        names = [p.name for p in params] if not varargs else []
    else:
        names = []
    names = names + [f"ax{n}" for n in range(len(names), len(shape))]
    axis = [IterVar(Range(E.const(0, index_dtype(s.dtype)), E.cast(index_dtype(s.dtype), s)),
                    Var(nm, index_dtype(s.dtype)), "data") for nm, s in zip(names, shape)]
    body = fcompute(*[iv.var for iv in axis])
    if isinstance(body, (list, tuple)):
        raise TensorlangTypeError(f"compute {name!r}: multiple outputs are not supported yet")
    body = E.as_expr(body)
    from ..arith import walk
    nested = [n for n in walk(body) if isinstance(n, Reduce) and n is not body]
    if nested:
        raise TensorlangValueError(
            f"compute {name!r}: a reduction must be the whole body (got `{body}`); compute the "
            "reduction in its own tensor and combine it in a second compute")
    return ComputeOp(name, tag, axis, body, shape).output(0)


# --------------------------------------------------------------------------- reducers

def _axes(axis, who: str) -> tuple:
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    for a in axes:
        if not isinstance(a, IterVar) or a.kind != "reduce":
            raise TensorlangTypeError(f"{who}: axis {a!r} is not a reduce_axis; create it with "
                                      "tl.reduce_axis((lo, hi), name)")
    if not axes:
        raise TensorlangValueError(f"{who}: needs at least one reduce axis")
    return axes


def comm_reducer(fcombine, fidentity, name: str = "reduce"):
    """A commutative reducer from ``fcombine(x, y)`` and ``fidentity(dtype)``.

    The returned function is called as ``reducer(expr, axis=k, where=None)``; called with two
    expressions instead (``reducer(a, b)``), it combines them elementwise.
    """
    def reducer(expr, *rest, axis=None, where=None):
        if len(rest) > 1:
            raise TensorlangTypeError(f"{name}: expected (expr, axis) or two expressions")
        if rest and isinstance(rest[0], (IterVar, list, tuple)) and axis is None:
            axis = rest[0]
        elif rest:
            if axis is not None or where is not None:
                raise TensorlangTypeError(f"{name}: combining two expressions takes no axis/where")
            return fcombine(E.as_expr(expr), E.as_expr(rest[0]))
        if axis is None:
            raise TensorlangValueError(f"{name}: pass axis=<reduce axis> (or two expressions)")
        if isinstance(expr, (tuple, list)):
            raise TensorlangTypeError(f"{name}: tuple reductions (e.g. argmax over (index, value) "
                                      "pairs) are not supported yet; reduce each value separately")
        expr = E.as_expr(expr)
        axes = _axes(axis, name)
        lhs, rhs = Var("x", expr.dtype), Var("y", expr.dtype)
        result = fcombine(lhs, rhs)
        if isinstance(result, (tuple, list)):
            raise TensorlangTypeError(f"{name}: fcombine returned a tuple; tuple reductions are not "
                                      "supported yet")
        result = E.as_expr(result)
        if result.dtype != expr.dtype:
            result = E.cast(expr.dtype, result)
        ident = E.as_expr(fidentity(expr.dtype), expr.dtype)
        ident = E.cast(expr.dtype, ident)
        cond = E.const(True) if where is None else E._bool(where, f"{name}(where=...)")
        return Reduce(CommReducer(name, lhs, rhs, result, ident), expr, axes, cond, expr.dtype)
    reducer.__name__ = name
    reducer.__doc__ = f"The {name} reduction of an expression over reduce axes."
    return reducer


sum = comm_reducer(lambda x, y: x + y, lambda t: E.const(0, t), name="sum")  # noqa: A001
def _lowest(t):      # -inf for floats (numpy's max of all -inf is -inf), else the minimum
    return E.const(-math.inf, t) if dt.is_float(t) else E.min_value(t)


def _highest(t):
    return E.const(math.inf, t) if dt.is_float(t) else E.max_value(t)


max = comm_reducer(lambda x, y: E.binary("max", x, y), _lowest, name="max")  # noqa: A001
min = comm_reducer(lambda x, y: E.binary("min", x, y), _highest, name="min")  # noqa: A001
