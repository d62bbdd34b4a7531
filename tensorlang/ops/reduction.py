"""Reductions: ``reduce(op, shape, axis, keepdims)`` for ``sum, mean, max, min, argmax,
argmin`` (the compute definitions of :mod:`tensorlang.ops.compute.reduce`) and
``global_avg_pool2d`` (NCHW), each with a schedule chosen by where the reduced axes lie:

* **the innermost input axes are reduced** (e.g. ``axis=-1``, or ``axis=None``): each output
  element reduces a contiguous run of the input, so the reduction axes are fused into one
  and accumulated in ``acc`` independent vectors by two rfactors (``nn.vector_partials``'
  scheme: one vector accumulator would chain every add on the previous one); the output
  elements (rows) run in parallel, with every stage of a row (mean's division, argmax's
  extreme value then its first index) computed at the row.
* **the innermost input axis is kept** (e.g. ``axis=0`` of a matrix): an output tile of
  ``nv`` vectors of the innermost axis is accumulated in registers (a write cache computed
  at the tile) with the reduction loops outside it, so each step is ``nv`` contiguous vector
  loads and ops; the tiles run in parallel.
* otherwise (the innermost axis reduced together with a kept axis before it): the output
  elements in parallel, each reduction a plain loop.

Loops run in parallel when the input has ``PARALLEL_MIN`` elements or more (see
``injective``: below that a fork/join costs about as much as the work).

Templates: ``"ops/reduce"`` (knobs ``acc`` or ``nv``, and ``parallel``) and
``"ops/global_avg_pool2d"`` (``acc``).
"""

from __future__ import annotations

import autotune

from .. import dtype as dt
from .. import te
from ..errors import TensorlangTypeError, TensorlangValueError
from ..schedule import create_schedule
from . import compute
from .common import check_dims, knob, vector_lanes
from .compute.reduce import normalize_axes
from .injective import PARALLEL_MIN, _size
from .nn import vector_partials

OPS = ("argmax", "argmin", "max", "mean", "min", "sum")
ACC = 4          # vector accumulators of a contiguous reduction
NV = 8           # vectors of an output tile when the innermost axis is kept


def _fuse_reduce(s, red):
    """``red``'s reduction loops fused into one (they are innermost and adjacent)."""
    ks = list(s[red].op.reduce_axis)
    return s[red].fuse(*ks) if len(ks) > 1 else ks[0]


def _inner_reduced(s, out, reds, lanes, acc_n, parallel):
    """Contiguous reductions: vector accumulators, output elements in parallel."""
    at = []                     # every stage but ``out``, computed at out's element
    for red in reds:
        k = _fuse_reduce(s, red)
        if red.op.tag != "comm_reduce_idx":  # argmax's index: a select on a `||`, which
            at += vector_partials(s, red, k, lanes, acc_n)   # does not vectorize
        if red is not out:
            at.append(red)
    if not out.op.axis:         # a 0-D output: one element, nothing to split
        return
    row = s[out].fuse(*out.op.axis) if len(out.op.axis) > 1 else out.op.axis[0]
    for stage in at:
        s[stage].compute_at(s[out], row)
    if parallel:
        s[out].parallel(row)


def _inner_kept(s, out, reds, lanes, nv, parallel):
    """Output tiles of ``nv`` vectors along the kept innermost axis, in registers."""
    if out in reds:
        cache = s.cache_write(out, "global")
        reds = [r for r in reds if r is not out] + [cache]
    *lead, j = out.op.axis
    jo, ji = s[out].split(j, factor=lanes * nv)
    s[out].vectorize(ji)
    outer = s[out].fuse(*lead, jo) if lead else jo
    if parallel:
        s[out].parallel(outer)
    for red in reds:
        s[red].compute_at(s[out], outer)
        *rl, jr = s[red].op.axis
        s[red].reorder(*rl, *s[red].op.reduce_axis, jr)
        ju, jv = s[red].split(jr, factor=lanes)
        s[red].unroll(ju)
        s[red].vectorize(jv)


def reduce(op: str, shape, axis=None, keepdims: bool = False, dtype: str = "float32"):
    """``op`` (``sum, mean, max, min, argmax, argmin``) of a placeholder X of ``shape`` over
    ``axis`` (an int, a tuple of ints, or None for all; numpy's meaning) with numpy's
    ``keepdims``. Returns ``(schedule, [X, out])`` (template ``"ops/reduce"``)."""
    if op not in OPS:
        raise TensorlangValueError(f"reduce: unknown op {op!r}; known ops: {', '.join(OPS)}")
    if not isinstance(shape, (tuple, list)):
        raise TensorlangTypeError(f"reduce: shape must be a tuple of ints, got {shape!r}")
    check_dims("reduce", **{f"shape[{n}]": d for n, d in enumerate(shape)})
    if not isinstance(keepdims, bool):
        raise TensorlangTypeError(f"reduce: keepdims must be a bool, got {keepdims!r}")
    if op in ("argmax", "argmin") and isinstance(axis, (tuple, list)):
        raise TensorlangTypeError(f"reduce: {op}'s axis must be an int or None, got {axis!r}")
    axes = normalize_axes(f"reduce: {op}", axis, len(shape))
    dtype = dt.check(dtype)
    if op == "mean" and not dt.is_float(dtype):
        raise TensorlangTypeError(f"reduce: mean needs a float dtype, got {dtype}")
    return _reduce_template(op, list(shape), list(axes), keepdims, dtype)


@autotune.template("ops/reduce", warn_fallback=False)
def _reduce_template(op, shape, axes, keepdims, dtype):
    X = te.placeholder(tuple(shape), name="X", dtype=dtype)
    if op in ("argmax", "argmin"):             # an int axis, or None: the flattened X
        out = getattr(compute, op)(X, axes[0] if len(axes) == 1 else None, keepdims)
    else:
        out = getattr(compute, op)(X, tuple(axes), keepdims)
    s = create_schedule(out.op)
    cfg = autotune.get_config()
    lanes = vector_lanes(dtype)
    parallel = bool(knob(cfg, "parallel", [0, 1], int(_size(shape) >= PARALLEL_MIN)))
    reds = [st.op.output(0) for st in s.stages
            if isinstance(st.op, te.ComputeOp) and st.op.reduce_axis]
    ndim = len(shape)
    if not axes:
        pass                                     # nothing reduced: a copy
    elif tuple(axes) == tuple(range(ndim - len(axes), ndim)):
        _inner_reduced(s, out, reds, lanes, knob(cfg, "acc", [1, 2, 4, 8], ACC), parallel)
    elif ndim - 1 not in axes:
        _inner_kept(s, out, reds, lanes, knob(cfg, "nv", [1, 2, 4, 8], NV), parallel)
    else:
        row = s[out].fuse(*out.op.axis) if len(out.op.axis) > 1 else out.op.axis[0]
        for red in reds:
            if red is not out:
                s[red].compute_at(s[out], row)
        if parallel:
            s[out].parallel(row)
    return s, [X, out]


def global_avg_pool2d(N: int, C: int, H: int, W: int, dtype: str = "float32"):
    """O[n, c, 0, 0] = mean of X[n, c, :, :] (NCHW). Returns ``(schedule, [X, O])``
    (template ``"ops/global_avg_pool2d"``): each (n, c) plane is a contiguous reduction,
    accumulated in vectors, the planes in parallel."""
    check_dims("global_avg_pool2d", N=N, C=C, H=H, W=W)
    dtype = dt.check(dtype)
    if not dt.is_float(dtype):
        raise TensorlangTypeError(f"global_avg_pool2d: dtype must be a float type, got {dtype}")
    return _gap_template(N, C, H, W, dtype)


@autotune.template("ops/global_avg_pool2d", warn_fallback=False)
def _gap_template(N, C, H, W, dtype):
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    out = compute.global_avg_pool2d(X)
    s = create_schedule(out.op)
    cfg = autotune.get_config()
    lanes = vector_lanes(dtype)
    acc = knob(cfg, "acc", [1, 2, 4], _small_acc(H * W, lanes))
    parallel = bool(knob(cfg, "parallel", [0, 1], int(N * C * H * W >= PARALLEL_MIN)))
    total = out.op.input_tensors[0]
    _inner_reduced(s, out, [total], lanes, acc, parallel)
    return s, [X, out]


def _small_acc(n: int, lanes: int) -> int:
    """Accumulators for a reduction of ``n`` elements: ACC, fewer when n is short."""
    acc = ACC
    while acc > 1 and acc * lanes > n:
        acc //= 2
    return acc
