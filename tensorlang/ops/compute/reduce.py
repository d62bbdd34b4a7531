"""Reductions as compute definitions, in TVM TOPI's conventions (no schedules attached).

``sum, mean, max, min(X, axis=None, keepdims=False)`` and ``argmax, argmin`` with numpy's
meaning of ``axis``: an int, a tuple of ints (negative counts from the end) or None (every
axis); ``keepdims`` leaves each reduced axis as a dimension of 1.

* ``sum`` keeps X's dtype (as TOPI; numpy widens small integers); ``mean`` divides the sum
  by the count, in X's dtype for floats and in float64 for integers (as numpy).
* ``max``/``min`` start from -inf/+inf for floats (the dtype's extremes for integers), as
  ``tl.max``/``tl.min`` do, and propagate NaN; reducing an empty axis is an error.
* ``argmax``/``argmin`` return int64 indices, the first occurrence on ties, and for
  ``axis=None`` the position in the flattened (row-major) array. tensorlang has no tuple
  reductions, so they take two stages: the extreme value, then the smallest index where
  X equals it (or is NaN, so a NaN wins at its first position, as in numpy).
"""

from __future__ import annotations

import numbers

from ... import dtype as dt
from ... import te
from ...errors import TensorlangTypeError, TensorlangValueError
from .elemwise import const_shape


def normalize_axes(op: str, axis, ndim: int) -> tuple:
    """``axis`` (int, tuple of ints or None) as sorted non-negative axes, checked."""
    if axis is None:
        return tuple(range(ndim))
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    out = []
    for a in axes:
        if isinstance(a, bool) or not isinstance(a, numbers.Integral):
            raise TensorlangTypeError(f"{op}: axis must be an int, a tuple of ints or None, "
                                      f"got {axis!r}")
        if not -ndim <= a < ndim:
            raise TensorlangValueError(f"{op}: axis {a} is out of range for a {ndim}-D tensor")
        a = int(a) % ndim
        if a in out:
            raise TensorlangValueError(f"{op}: axis {a} is repeated in {axis!r}")
        out.append(a)
    return tuple(sorted(out))


def _reduce_plan(op: str, X, axis, keepdims: bool):
    """(shape, axes, out_shape, index) where ``index(out_idx, red_vars)`` gives X's indices."""
    shape = const_shape(op, X)
    axes = normalize_axes(op, axis, len(shape))
    if keepdims:
        out_shape = tuple(1 if d in axes else n for d, n in enumerate(shape))
    else:
        out_shape = tuple(n for d, n in enumerate(shape) if d not in axes)

    def index(out_idx, red):
        out_idx, red = iter(out_idx), iter(red)
        idx = []
        for d in range(len(shape)):
            if d in axes:
                idx.append(next(red))
                if keepdims:
                    next(out_idx)       # the kept dimension of 1
            else:
                idx.append(next(out_idx))
        return tuple(idx)
    return shape, axes, out_shape, index


def _reduce(op: str, reducer, X, axis, keepdims: bool, source=None, dtype=None):
    shape, axes, out_shape, index = _reduce_plan(op, X, axis, keepdims)
    if reducer is not te.sum and any(shape[d] == 0 for d in axes):
        raise TensorlangValueError(f"{op}: cannot reduce the empty axis of shape {shape}")
    source = source or (lambda x: x)

    def body(*idx):
        red = [te.reduce_axis((0, shape[d]), name=f"k{d}") for d in axes]
        return reducer(source(X[index(idx, red)]), axis=red) if red else source(X[index(idx, ())])
    return te.compute(out_shape, body, name=f"T_{op}", tag="comm_reduce")


def sum(X, axis=None, keepdims: bool = False):
    """The sum over ``axis``, in X's dtype."""
    return _reduce("sum", te.sum, X, axis, keepdims)


def max(X, axis=None, keepdims: bool = False):
    """The maximum over ``axis``."""
    return _reduce("max", te.max, X, axis, keepdims)


def min(X, axis=None, keepdims: bool = False):
    """The minimum over ``axis``."""
    return _reduce("min", te.min, X, axis, keepdims)


def mean(X, axis=None, keepdims: bool = False):
    """The mean over ``axis``: in X's dtype for floats, float64 for integers and bools."""
    shape, axes, _, _ = _reduce_plan("mean", X, axis, keepdims)
    count = 1
    for d in axes:
        count *= shape[d]
    out_dtype = X.dtype if dt.is_float(X.dtype) else "float64"
    total = _reduce("mean", te.sum, X, axis, keepdims, source=lambda x: x.astype(out_dtype))
    n = te.const(count, out_dtype)
    return te.compute(total.shape, lambda *idx: total[idx] / n, name="T_mean",
                      tag="elemwise")


def _arg_extreme(op: str, reducer, X, axis, keepdims: bool):
    if axis is not None and isinstance(axis, (tuple, list)):
        raise TensorlangTypeError(f"{op}: axis must be an int or None, got {axis!r}")
    shape, axes, out_shape, index = _reduce_plan(op, X, axis, keepdims)
    if any(shape[d] == 0 for d in axes):
        raise TensorlangValueError(f"{op}: cannot reduce the empty axis of shape {shape}")
    if not axes:                     # a 0-D X: its only element is at index 0
        return te.compute(out_shape, lambda *idx: te.const(0, "int64"), name=f"T_{op}",
                          tag="comm_reduce_idx")
    best = _reduce(op, reducer, X, axis, keepdims)
    strides, stride = {}, 1          # of the reduced axes, row-major within them
    for d in reversed(axes):
        strides[d] = stride
        stride *= shape[d]
    nan_check = dt.is_float(X.dtype)

    def body(*idx):
        red = [te.reduce_axis((0, shape[d]), name=f"k{d}") for d in axes]
        pos = te.const(0, "int64")
        for d, k in zip(axes, red):
            pos = pos + k.astype("int64") * strides[d]
        x = X[index(idx, red)]
        hit = x == best[idx]
        if nan_check:
            hit = hit | te.isnan(x)
        return te.min(te.if_then_else(hit, pos, te.const(stride, "int64")), axis=red)
    return te.compute(out_shape, body, name=f"T_{op}", tag="comm_reduce_idx")


def argmax(X, axis=None, keepdims: bool = False):
    """int64 index of the first maximum along ``axis`` (flattened position if None)."""
    return _arg_extreme("argmax", te.max, X, axis, keepdims)


def argmin(X, axis=None, keepdims: bool = False):
    """int64 index of the first minimum along ``axis`` (flattened position if None)."""
    return _arg_extreme("argmin", te.min, X, axis, keepdims)
