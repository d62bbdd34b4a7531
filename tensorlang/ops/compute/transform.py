"""Layout and indexing operators as compute definitions, in TVM TOPI's conventions (no
schedules attached): each output element is a load of one input element (or a constant).

* ``transpose(X, axes=None)``: numpy semantics (None reverses the axes).
* ``reshape(X, newshape)``: row-major, one -1 allowed; each output element's flat index is
  unravelled into X's indices with floordiv/floormod.
* ``concatenate(tensors, axis=0)``: the inputs' ranges along ``axis`` selected by nested
  ``if_then_else`` (only the selected load runs); dtypes promote as in tensorlang.
* ``pad(X, pad_width, value=0.0)``: numpy-style ``pad_width`` (an int, a ``(before, after)``
  pair, or one pair per axis), constant padding with ``value`` in X's dtype.
* ``take(X, indices, axis=None)``: gather by an int32/int64 index tensor; ``axis=None``
  gathers from the flattened X. Out-of-range indices are **clamped** to ``[0, n - 1]`` (TOPI's
  ``mode="clip"``), so a negative index reads the first element, not the last as numpy's
  wrap-around would.
* ``expand_dims(X, axis)`` and ``squeeze(X, axis=None)``: numpy semantics.
"""

from __future__ import annotations

import numbers

from ... import dtype as dt
from ... import te
from ...errors import TensorlangTypeError, TensorlangValueError
from .elemwise import const_shape
from .reduce import normalize_axes

_INT32_MAX = 2**31 - 1


def _int(op: str, v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral):
        raise TensorlangTypeError(f"{op}: {what} must be an int, got {v!r}")
    return int(v)


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def _flat_index(idx, shape):
    """Row-major flat position of ``idx`` in ``shape`` (int64 when it may not fit int32)."""
    wide = _size(shape) > _INT32_MAX
    flat = te.const(0, "int64" if wide else "int32")
    for i, n in zip(idx, shape):
        flat = flat * n + (te.cast("int64", i) if wide else i)
    return flat


def _unravel(flat, shape) -> tuple:
    """The indices in ``shape`` of the row-major position ``flat``."""
    idx = []
    for n in reversed(shape):
        idx.append(te.floormod(flat, n) if n != 1 else 0)
        flat = te.floordiv(flat, n)
    return tuple(reversed(idx))


def transpose(X, axes=None):
    """X with its axes permuted: output axis ``d`` is X's axis ``axes[d]``."""
    shape = const_shape("transpose", X)
    ndim = len(shape)
    if axes is None:
        axes = tuple(reversed(range(ndim)))
    if not isinstance(axes, (tuple, list)):
        raise TensorlangTypeError(f"transpose: axes must be a tuple of ints or None, got {axes!r}")
    if len(axes) != ndim:
        raise TensorlangValueError(f"transpose: axes {tuple(axes)} do not match a {ndim}-D tensor")
    normalize_axes("transpose", axes, ndim)      # checks the range and repeats
    axes = tuple(_int("transpose", a, "axes") % ndim for a in axes)
    inv = [axes.index(d) for d in range(ndim)]
    return te.compute(tuple(shape[a] for a in axes),
                      lambda *idx: X[tuple(idx[inv[d]] for d in range(ndim))],
                      name="T_transpose", tag="injective")


def reshape(X, newshape):
    """X's elements, in row-major order, in ``newshape`` (one entry may be -1)."""
    shape = const_shape("reshape", X)
    newshape = (newshape,) if not isinstance(newshape, (tuple, list)) else tuple(newshape)
    newshape = [_int("reshape", n, "newshape entry") for n in newshape]
    size = _size(shape)
    unknown = [d for d, n in enumerate(newshape) if n == -1]
    if len(unknown) > 1:
        raise TensorlangValueError(f"reshape: only one -1 is allowed in newshape {tuple(newshape)}")
    if any(n < -1 for n in newshape):
        raise TensorlangValueError(f"reshape: negative dimension in newshape {tuple(newshape)}")
    if unknown:
        known = _size(n for n in newshape if n != -1)
        if known == 0 or size % known:
            raise TensorlangValueError(f"reshape: cannot reshape {size} elements into "
                                       f"{tuple(newshape)}")
        newshape[unknown[0]] = size // known
    newshape = tuple(newshape)
    if _size(newshape) != size:
        raise TensorlangValueError(f"reshape: cannot reshape {size} elements into {newshape}")
    return te.compute(newshape, lambda *idx: X[_unravel(_flat_index(idx, newshape), shape)],
                      name="T_reshape", tag="injective")


def concatenate(tensors, axis: int = 0):
    """The tensors joined along ``axis``; the other dimensions must agree."""
    if not isinstance(tensors, (tuple, list)) or not tensors:
        raise TensorlangValueError("concatenate: tensors must be a non-empty list of tensors")
    shapes = [const_shape("concatenate", T, f"tensors[{n}]") for n, T in enumerate(tensors)]
    ndim = len(shapes[0])
    if ndim == 0:
        raise TensorlangValueError("concatenate: zero-dimensional tensors cannot be concatenated")
    axis, = normalize_axes("concatenate", _int("concatenate", axis, "axis"), ndim)
    for n, s in enumerate(shapes):
        if len(s) != ndim or any(a != b for d, (a, b) in enumerate(zip(s, shapes[0])) if d != axis):
            raise TensorlangValueError(
                f"concatenate: tensors[{n}] has shape {s}, which does not match {shapes[0]} "
                f"outside axis {axis}")
    offsets = [0]
    for s in shapes:
        offsets.append(offsets[-1] + s[axis])
    out_shape = shapes[0][:axis] + (offsets[-1],) + shapes[0][axis + 1:]

    def body(*idx):
        def load(n):
            return tensors[n][idx[:axis] + (idx[axis] - offsets[n],) + idx[axis + 1:]]
        out = load(len(tensors) - 1)
        for n in reversed(range(len(tensors) - 1)):
            out = te.if_then_else(idx[axis] < offsets[n + 1], load(n), out)
        return out
    return te.compute(out_shape, body, name="T_concat", tag="injective")


def _pad_pairs(pad_width, ndim: int) -> list:
    """numpy's ``pad_width`` forms as one (before, after) pair of ints per axis."""
    def pair(p):
        if isinstance(p, (tuple, list)):
            if len(p) == 1:
                p = (p[0], p[0])
            if len(p) != 2:
                raise TensorlangValueError(f"pad: pad_width {pad_width!r} is not an int, a "
                                           "(before, after) pair, or one pair per axis")
            return tuple(_int("pad", v, "pad_width entry") for v in p)
        v = _int("pad", p, "pad_width")
        return v, v
    if isinstance(pad_width, (tuple, list)) and pad_width \
            and all(isinstance(p, (tuple, list)) for p in pad_width):
        if len(pad_width) == 1:
            pairs = [pair(pad_width[0])] * ndim
        elif len(pad_width) == ndim:
            pairs = [pair(p) for p in pad_width]
        else:
            raise TensorlangValueError(f"pad: pad_width has {len(pad_width)} pairs for a "
                                       f"{ndim}-D tensor")
    else:
        pairs = [pair(pad_width)] * ndim
    if any(v < 0 for p in pairs for v in p):
        raise TensorlangValueError(f"pad: pad_width {pad_width!r} has a negative width")
    return pairs


def pad(X, pad_width, value=0.0):
    """X surrounded by ``value``: ``pad_width[d] = (before, after)`` elements on axis ``d``."""
    shape = const_shape("pad", X)
    pairs = _pad_pairs(pad_width, len(shape))
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TensorlangTypeError(f"pad: value must be a number, got {value!r}")
    try:
        fill = te.const(value, X.dtype)
    except TensorlangValueError as e:
        raise TensorlangValueError(f"pad: value: {e}") from None
    out_shape = tuple(b + n + a for (b, a), n in zip(pairs, shape))

    def body(*idx):
        inside = []
        for i, (b, a), n in zip(idx, pairs, shape):
            if b:
                inside.append(i >= b)
            if a:
                inside.append(i < b + n)
        x = X[tuple(i - b if b else i for i, (b, _) in zip(idx, pairs))]
        return te.if_then_else(te.all(*inside), x, fill) if inside else x
    return te.compute(out_shape, body, name="T_pad", tag="injective")


def take(X, indices, axis=None):
    """``X`` gathered at ``indices`` (an int32/int64 tensor) along ``axis``, or from the
    flattened X when ``axis`` is None. Indices outside ``[0, n)`` are clamped into it."""
    shape = const_shape("take", X)
    ishape = const_shape("take", indices, "indices")
    if not dt.is_int(indices.dtype):
        raise TensorlangTypeError(f"take: indices must be an integer tensor, got {indices.dtype}")
    if axis is None:
        n, out_shape = _size(shape), ishape
    else:
        axis, = normalize_axes("take", _int("take", axis, "axis"), len(shape))
        n, out_shape = shape[axis], shape[:axis] + ishape + shape[axis + 1:]
    if n == 0:
        raise TensorlangValueError(f"take: cannot take from an empty axis of shape {shape}")

    def body(*idx):
        lo = 0 if axis is None else axis
        at = te.binary("min", te.binary("max", indices[idx[lo:lo + len(ishape)]], 0), n - 1)
        if n - 1 <= _INT32_MAX and indices.dtype != "int32":
            at = at.astype("int32")       # clamped into [0, n): the other indices are int32
        if axis is None:
            return X[_unravel(at, shape)]
        return X[idx[:axis] + (at,) + idx[axis + len(ishape):]]
    return te.compute(out_shape, body, name="T_take", tag="injective")


def expand_dims(X, axis):
    """X with a new axis of length 1 at ``axis`` (an int or tuple, as numpy)."""
    shape = const_shape("expand_dims", X)
    ndim = len(shape) + (len(axis) if isinstance(axis, (tuple, list)) else 1)
    new = normalize_axes("expand_dims", axis, ndim)
    it = iter(shape)
    out_shape = tuple(1 if d in new else next(it) for d in range(ndim))
    return te.compute(out_shape, lambda *idx: X[tuple(i for d, i in enumerate(idx) if d not in new)],
                      name="T_expand_dims", tag="injective")


def squeeze(X, axis=None):
    """X without its axes of length 1 (only those in ``axis`` when given)."""
    shape = const_shape("squeeze", X)
    if axis is None:
        gone = tuple(d for d, n in enumerate(shape) if n == 1)
    else:
        gone = normalize_axes("squeeze", axis, len(shape))
        for d in gone:
            if shape[d] != 1:
                raise TensorlangValueError(f"squeeze: axis {d} has length {shape[d]}, not 1")
    out_shape = tuple(n for d, n in enumerate(shape) if d not in gone)

    def body(*idx):
        it = iter(idx)
        return X[tuple(0 if d in gone else next(it) for d in range(len(shape)))]
    return te.compute(out_shape, body, name="T_squeeze", tag="injective")


def strided_slice(X, begin, end, strides=None):
    """X[begin[d]:end[d]:strides[d]] on every axis (numpy's basic slicing with positive
    strides; ends are clamped, negative begin/end count from the end)."""
    op = "strided_slice"
    shape = const_shape(op, X)
    n = len(shape)
    strides = tuple(strides) if strides is not None else (1,) * n
    if not (len(begin) == len(end) == len(strides) == n):
        raise TensorlangValueError(f"{op}: begin, end and strides need one entry per axis of "
                                   f"X's shape {shape}, got {begin}, {end}, {strides}")
    starts, out = [], []
    for d, (b, e, s) in enumerate(zip(begin, end, strides)):
        if s < 1:
            raise TensorlangValueError(f"{op}: strides must be positive, got {s} on axis {d}")
        b, e, _ = slice(b, e, s).indices(shape[d])
        starts.append(b)
        out.append(max(0, -(-(e - b) // s)))
    if 0 in out:
        raise TensorlangValueError(f"{op}: the slice of X's shape {shape} from {begin} to "
                                   f"{end} is empty")
    return te.compute(tuple(out), lambda *i: X[tuple(b + s * x for b, s, x in
                                                      zip(starts, strides, i))],
                      name="T_strided_slice", tag="injective")


def broadcast_to(X, shape):
    """X broadcast to ``shape`` (numpy's rules)."""
    op = "broadcast_to"
    src = const_shape(op, X)
    shape = tuple(_int(op, d, "a dimension of shape") for d in shape)
    lead = len(shape) - len(src)
    if lead < 0 or any(s not in (1, t) for s, t in zip(src, shape[lead:])):
        raise TensorlangValueError(f"{op}: X's shape {src} does not broadcast to {shape}")
    return te.compute(shape, lambda *i: X[tuple(0 if s == 1 else x
                                                for s, x in zip(src, i[lead:]))],
                      name="T_broadcast_to", tag="broadcast")
