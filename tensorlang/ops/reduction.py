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
``"ops/global_avg_pool2d"`` (``acc``): the compute definitions scheduled by
``schedule_reduce`` / ``schedule_global_avg_pool2d``, which find the reduction by its tag
(``"comm_reduce"``, ``"comm_reduce_idx"``) and derive the reduced axes from it. Both take
``epilogue=`` (element-wise stages over the output, e.g. a scale; inlined into the output
stage, the reductions computed at its elements or tiles as before).
"""

from __future__ import annotations


from ..dispatch import get_config, template
from .. import dtype as dt
from .. import te
from ..errors import TensorlangTypeError, TensorlangValueError
from ..schedule import create_schedule
from . import compute
from .common import (check_dims, epilogue_of, find_anchor, fuse_epilogue, knob, placeholders,
                     vector_lanes)
from .compute.reduce import normalize_axes
from .injective import PARALLEL_MIN
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


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= int(getattr(d, "value", d))
    return n


def reduce(op: str, shape, axis=None, keepdims: bool = False, dtype: str = "float32",
           epilogue=None):
    """``op`` (``sum, mean, max, min, argmax, argmin``) of a placeholder X of ``shape`` over
    ``axis`` (an int, a tuple of ints, or None for all; numpy's meaning) with numpy's
    ``keepdims``. Returns ``(schedule, [X, (epilogue inputs...,) out])`` (template
    ``"ops/reduce"``)."""
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
    return _reduce_template(op, list(shape), list(axes), keepdims, dtype,
                            epilogue=epilogue_of("reduce", epilogue, -1))


@template("ops/reduce", warn_fallback=False)
def _reduce_template(op, shape, axes, keepdims, dtype, *, epilogue=None):
    X = te.placeholder(tuple(shape), name="X", dtype=dtype)
    if op in ("argmax", "argmin"):             # an int axis, or None: the flattened X
        T = getattr(compute, op)(X, axes[0] if len(axes) == 1 else None, keepdims)
    else:
        T = getattr(compute, op)(X, tuple(axes), keepdims)
    out, extra, _ = fuse_epilogue("reduce", T, epilogue, [X])
    s = create_schedule(out.op)
    schedule_reduce(get_config(), s, [out])
    return s, [X, *extra, out]


def reduced_axes(red) -> list:
    """The axes of the input placeholder that the reduction stage ``red`` reduces (those it
    indexes with its reduction variables), and that placeholder."""
    from ..arith import walk
    from ..te.expr import TensorLoad
    rvars = {id(k.var) for k in red.op.reduce_axis}
    for n in walk(red.op.body):
        if isinstance(n, TensorLoad) and isinstance(n.tensor.op, te.PlaceholderOp):
            return sorted(d for d, i in enumerate(n.indices) if id(i) in rvars), n.tensor
    X, = placeholders(red)
    return [], X


def schedule_reduce(cfg, s, outs):
    """Schedule a reduction of ``compute.reduce`` (anchor: the stage tagged
    ``"comm_reduce"``/``"comm_reduce_idx"`` nearest the output) by where the reduced axes
    lie (see the module docstring). Returns ``s``."""
    out, = outs
    anchor = find_anchor(s, out, ("comm_reduce", "comm_reduce_idx"))
    axes, X = reduced_axes(anchor)
    shape = [int(getattr(d, "value", d)) for d in X.shape]
    lanes = vector_lanes(X.dtype)
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
            if red.op is not out.op:
                s[red].compute_at(s[out], row)
        if parallel:
            s[out].parallel(row)
    return s


def global_avg_pool2d(N: int, C: int, H: int, W: int, dtype: str = "float32", epilogue=None):
    """O[n, c, 0, 0] = mean of X[n, c, :, :] (NCHW). Returns ``(schedule, [X, (epilogue
    inputs...,) O])`` (template ``"ops/global_avg_pool2d"``): each (n, c) plane is a
    contiguous reduction, accumulated in vectors, the planes in parallel."""
    check_dims("global_avg_pool2d", N=N, C=C, H=H, W=W)
    dtype = dt.check(dtype)
    if not dt.is_float(dtype):
        raise TensorlangTypeError(f"global_avg_pool2d: dtype must be a float type, got {dtype}")
    return _gap_template(N, C, H, W, dtype,
                         epilogue=epilogue_of("global_avg_pool2d", epilogue, 1))


@template("ops/global_avg_pool2d", warn_fallback=False)
def _gap_template(N, C, H, W, dtype, *, epilogue=None):
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    out, extra, _ = fuse_epilogue("global_avg_pool2d", compute.global_avg_pool2d(X), epilogue,
                                [X])
    s = create_schedule(out.op)
    schedule_global_avg_pool2d(get_config(), s, [out])
    return s, [X, *extra, out]


def schedule_global_avg_pool2d(cfg, s, outs):
    """The plane sums (anchor tag ``"global_pool_avg"``'s input) accumulated in ``acc``
    vectors (knob), computed at each output element, the planes in parallel. Returns ``s``."""
    out, = outs
    anchor = find_anchor(s, out, "global_pool_avg")
    total, = anchor.op.input_tensors
    X, = total.op.input_tensors
    _, _, H, W = (int(getattr(d, "value", d)) for d in X.shape)
    lanes = vector_lanes(anchor.dtype)
    acc = knob(cfg, "acc", [1, 2, 4], _small_acc(H * W, lanes))
    parallel = bool(knob(cfg, "parallel", [0, 1], int(_size(X.shape) >= PARALLEL_MIN)))
    _inner_reduced(s, out, [total], lanes, acc, parallel)
    return s


def _small_acc(n: int, lanes: int) -> int:
    """Accumulators for a reduction of ``n`` elements: ACC, fewer when n is short."""
    acc = ACC
    while acc > 1 and acc * lanes > n:
        acc //= 2
    return acc
