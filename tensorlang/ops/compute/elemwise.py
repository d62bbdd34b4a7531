"""Element-wise operators as compute definitions, in TVM TOPI's conventions.

Each function takes tensors (and Python scalars where noted) and returns a new tensor; no
schedule is attached, so the results compose into larger pipelines and are correct under
the default schedule ``tl.create_schedule(out.op)``.

* **binary** ``add, subtract, multiply, divide, maximum, minimum, power``: two tensors, or a
  tensor and a Python number, broadcast as numpy does (shapes aligned on the right, a
  dimension of 1 stretches). The result dtype is tensorlang's own promotion (``te.expr``):
  a Python number takes the tensor's dtype (a float number with an integer tensor gives
  float32), mixed tensors promote to the wider type, float beats int. ``divide`` of two
  integers is an error, as ``/`` on integer expressions is; ``power`` needs floats.
* **unary** ``relu, gelu, silu, sigmoid, tanh, exp, log, sqrt, abs, negative``: same shape
  and dtype; the transcendental ones need a float tensor.
* ``clip(X, a_min, a_max)`` keeps X's dtype; ``cast(X, dtype)`` converts (float to int
  truncates toward zero, anything to bool is ``!= 0``).

``const_shape`` (a tensor's shape as ints, checked) is shared with ``reduce`` and
``transform``.
"""

from __future__ import annotations

import math
import numbers

from ... import dtype as dt
from ... import te
from ...errors import TensorlangTypeError, TensorlangValueError

# --------------------------------------------------------------------------- helpers

def check_tensor(op: str, X, what: str = "X") -> None:
    """Raise unless ``X`` is a tensor."""
    if not isinstance(X, te.Tensor):
        raise TensorlangTypeError(f"{op}: {what} must be a tensor, got {type(X).__name__}")


def const_shape(op: str, X, what: str = "X") -> tuple:
    """``X``'s shape as Python ints (every operator here needs constant shapes)."""
    check_tensor(op, X, what)
    shape = []
    for d in X.shape:
        v = getattr(d, "value", d)
        if not isinstance(v, int):
            raise TensorlangValueError(f"{op}: {what} has the symbolic dimension {d}; "
                                       "only constant shapes are supported")
        shape.append(v)
    return tuple(shape)


def _number(op: str, v, what: str):
    """A Python number from ``v`` (numpy scalars included), or a TensorlangTypeError."""
    if isinstance(v, (bool, numbers.Number)) and hasattr(v, "item"):
        v = v.item()
    if not isinstance(v, (bool, int, float)):
        raise TensorlangTypeError(f"{op}: {what} must be a tensor or a Python number, "
                                  f"got {type(v).__name__}")
    return v


def broadcast_shape(op: str, a: tuple, b: tuple) -> tuple:
    """numpy's broadcast of two shapes."""
    out = []
    for n in range(1, max(len(a), len(b)) + 1):
        x = a[-n] if n <= len(a) else 1
        y = b[-n] if n <= len(b) else 1
        if x != y and 1 not in (x, y):
            raise TensorlangValueError(f"{op}: shapes {a} and {b} do not broadcast")
        out.append(y if x == 1 else x)
    return tuple(reversed(out))


def _broadcast_load(X, shape: tuple, out_ndim: int):
    """``idx -> X[...]`` for ``X`` of ``shape`` broadcast to ``out_ndim`` dimensions."""
    lead = out_ndim - len(shape)

    def load(idx):
        return X[tuple(0 if d == 1 else i for d, i in zip(shape, idx[lead:]))]
    return load


def _wrap(op: str, fn, *args):
    """``fn(*args)`` with a type error reworded to start with the operator name."""
    try:
        return fn(*args)
    except TensorlangTypeError as e:
        raise TensorlangTypeError(f"{op}: {e}") from None


def _binary(op: str, fn, A, B):
    a_is, b_is = isinstance(A, te.Tensor), isinstance(B, te.Tensor)
    if not (a_is or b_is):
        raise TensorlangTypeError(f"{op}: needs at least one tensor operand, got "
                                  f"{type(A).__name__} and {type(B).__name__}")
    if not a_is:
        A = _number(op, A, "the first operand")
    if not b_is:
        B = _number(op, B, "the second operand")
    sa = const_shape(op, A, "A") if a_is else ()
    sb = const_shape(op, B, "B") if b_is else ()
    shape = broadcast_shape(op, sa, sb)
    la = _broadcast_load(A, sa, len(shape)) if a_is else (lambda idx: A)
    lb = _broadcast_load(B, sb, len(shape)) if b_is else (lambda idx: B)
    # check the dtypes once, outside compute, so a type error names the operator
    probe = [te.var("i") for _ in shape]
    _wrap(op, fn, la(probe), lb(probe))
    return te.compute(shape, lambda *idx: fn(la(idx), lb(idx)), name=f"T_{op}",
                      tag="broadcast")


def _unary(op: str, fn, X, tag: str = "elemwise", float_only: bool = False):
    if float_only:
        _float_only(op, X)
    shape = const_shape(op, X)
    probe = [te.var("i") for _ in shape]
    _wrap(op, fn, X[tuple(probe)])
    return te.compute(shape, lambda *idx: fn(X[idx]), name=f"T_{op}", tag=tag)


def _float_only(op: str, X) -> None:
    check_tensor(op, X)
    if not dt.is_float(X.dtype):
        raise TensorlangTypeError(f"{op}: X must be a float tensor, got {X.dtype}; convert it "
                                  "first with cast(X, 'float32')")


# --------------------------------------------------------------------------- binary

def add(A, B):
    """A + B, broadcast."""
    return _binary("add", lambda a, b: a + b, A, B)


def subtract(A, B):
    """A - B, broadcast."""
    return _binary("subtract", lambda a, b: a - b, A, B)


def multiply(A, B):
    """A * B, broadcast."""
    return _binary("multiply", lambda a, b: a * b, A, B)


def divide(A, B):
    """A / B (true division), broadcast; integer / integer is an error."""
    return _binary("divide", lambda a, b: a / b, A, B)


def maximum(A, B):
    """The element-wise maximum, broadcast."""
    return _binary("maximum", lambda a, b: te.binary("max", a, b), A, B)


def minimum(A, B):
    """The element-wise minimum, broadcast."""
    return _binary("minimum", lambda a, b: te.binary("min", a, b), A, B)


def power(A, B):
    """A ** B, broadcast; float operands only (a Python number takes the tensor's dtype)."""
    def pw(a, b):
        a = te.const(a, b.dtype) if isinstance(a, (int, float)) and dt.is_float(b.dtype) else a
        b = te.const(b, a.dtype) if isinstance(b, (int, float)) and dt.is_float(a.dtype) else b
        return te.power(a, b)
    return _binary("power", pw, A, B)


# --------------------------------------------------------------------------- unary

# Activations as scalar expressions, shared with the epilogues of dense/conv (linalg.py).
ACTIVATIONS = {
    "relu": lambda x: te.binary("max", x, 0),
    "relu6": lambda x: te.binary("min", te.binary("max", x, 0), 6),
    "gelu": lambda x: 0.5 * x * (1.0 + te.erf(x * (1.0 / math.sqrt(2.0)))),
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + te.tanh(math.sqrt(2.0 / math.pi)
                                                     * (x + 0.044715 * x * x * x))),
    "silu": lambda x: x * te.sigmoid(x),
    "sigmoid": te.sigmoid,
    "tanh": te.tanh,
}


def activation(X, kind: str):
    """The activation named ``kind`` (a key of ``ACTIVATIONS``) as a stage over X."""
    if kind not in ACTIVATIONS:
        raise TensorlangValueError(f"activation must be one of {list(ACTIVATIONS)}, got {kind!r}")
    return _unary(kind, ACTIVATIONS[kind], X, float_only=kind != "relu" and kind != "relu6")


def relu(X):
    """max(X, 0)."""
    return _unary("relu", ACTIVATIONS["relu"], X)


def gelu(X, approximate: str = "none"):
    """0.5 x (1 + erf(x / sqrt(2))), or with ``approximate="tanh"``
    0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))."""
    if approximate not in ("none", "tanh"):
        raise TensorlangValueError(f"gelu: approximate must be 'none' or 'tanh', "
                                   f"got {approximate!r}")
    return _unary("gelu", ACTIVATIONS["gelu_tanh" if approximate == "tanh" else "gelu"], X,
                  float_only=True)


def silu(X):
    """x * sigmoid(x)."""
    return _unary("silu", ACTIVATIONS["silu"], X, float_only=True)


def sigmoid(X):
    """1 / (1 + exp(-x))."""
    return _unary("sigmoid", te.sigmoid, X, float_only=True)


def tanh(X):
    return _unary("tanh", te.tanh, X, float_only=True)


def exp(X):
    return _unary("exp", te.exp, X, float_only=True)


def log(X):
    return _unary("log", te.log, X, float_only=True)


def sqrt(X):
    return _unary("sqrt", te.sqrt, X, float_only=True)


def abs(X):
    return _unary("abs", te.abs, X)


def negative(X):
    """-x (integers wrap around, as in numpy)."""
    return _unary("negative", lambda x: -x, X)


def clip(X, a_min, a_max):
    """X limited to [a_min, a_max] (numbers; either may be None), in X's dtype."""
    shape = const_shape("clip", X)
    if a_min is None and a_max is None:
        raise TensorlangValueError("clip: a_min and a_max cannot both be None")
    bounds = []
    for what, v in (("a_min", a_min), ("a_max", a_max)):
        if v is None:
            bounds.append(None)
            continue
        v = _number("clip", v, what)
        try:
            bounds.append(te.const(v, X.dtype))
        except (TensorlangTypeError, TensorlangValueError) as e:
            raise TensorlangTypeError(f"clip: {what}: {e}") from None
    lo, hi = bounds
    if lo is not None and hi is not None and lo.value > hi.value:
        raise TensorlangValueError(f"clip: a_min {a_min} is greater than a_max {a_max}")

    def body(*idx):
        x = X[idx]
        if lo is not None:
            x = te.max(x, lo)
        return x if hi is None else te.min(x, hi)
    return te.compute(shape, body, name="T_clip", tag="elemwise")


def cast(X, dtype):
    """X converted to ``dtype`` (float to int truncates toward zero; to bool is ``!= 0``)."""
    check_tensor("cast", X)
    try:
        dtype = dt.check(dtype)
    except TensorlangTypeError as e:
        raise TensorlangTypeError(f"cast: dtype: {e}") from None
    return _unary("cast", lambda x: x.astype(dtype), X)


def rsqrt(X):
    """1 / sqrt(x)."""
    return _unary("rsqrt", te.rsqrt, X, float_only=True)


def erf(X):
    """The error function."""
    return _unary("erf", te.erf, X, float_only=True)


# --------------------------------------------------------------------------- comparisons

COMPARISONS = {"equal": lambda a, b: a == b, "not_equal": lambda a, b: a != b,
               "less": lambda a, b: a < b, "less_equal": lambda a, b: a <= b,
               "greater": lambda a, b: a > b, "greater_equal": lambda a, b: a >= b}


def compare(op: str, A, B):
    """``op`` (a key of ``COMPARISONS``) of A and B, broadcast as the binary operators; the
    result is a bool tensor."""
    if op not in COMPARISONS:
        raise TensorlangValueError(f"compare: op must be one of {list(COMPARISONS)}, got {op!r}")
    return _binary(op, COMPARISONS[op], A, B)


def where(cond, A, B):
    """A where ``cond`` (a bool tensor) is true, else B; the three broadcast together and A
    and B (tensors or numbers) give the dtype."""
    check_tensor("where", cond, "cond")
    if cond.dtype != "bool":
        raise TensorlangTypeError(f"where: cond must be a bool tensor, got {cond.dtype}")
    sc = const_shape("where", cond, "cond")
    sa = const_shape("where", A, "A") if isinstance(A, te.Tensor) else ()
    sb = const_shape("where", B, "B") if isinstance(B, te.Tensor) else ()
    shape = broadcast_shape("where", broadcast_shape("where", sc, sa), sb)
    if isinstance(A, te.Tensor) and isinstance(B, te.Tensor) and A.dtype != B.dtype:
        raise TensorlangTypeError(f"where: A and B must have the same dtype, got {A.dtype} "
                                  f"and {B.dtype}")
    dtype = A.dtype if isinstance(A, te.Tensor) else B.dtype if isinstance(B, te.Tensor) \
        else "float32"
    lc = _broadcast_load(cond, sc, len(shape))
    la = _broadcast_load(A, sa, len(shape)) if isinstance(A, te.Tensor) \
        else (lambda idx: te.const(_number("where", A, "A"), dtype))
    lb = _broadcast_load(B, sb, len(shape)) if isinstance(B, te.Tensor) \
        else (lambda idx: te.const(_number("where", B, "B"), dtype))
    return te.compute(shape, lambda *i: te.if_then_else(lc(i), la(i), lb(i)), name="T_where",
                      tag="broadcast")
