"""Row-wise and element-wise operators: ``softmax``, ``layer_norm``, ``row_sum``, ``row_max``
(over the last axis of a rows x cols matrix) and ``fused_elementwise`` (relu(A * B + C)).

Each returns ``(schedule, args)`` (inputs first, output last) with the fastest schedule
found for this CPU. The templates (``softmax``, ``log_softmax``, ``layer_norm``,
``rms_norm``, ``batch_norm``) are the compute definitions of :mod:`tensorlang.ops.compute`
(one definition per operator) scheduled by ``schedule_rows`` / ``schedule_batch_norm``,
which find the operator's output stage by its tag. Each takes ``epilogue=``: a function of
the operator's output building element-wise stages over it (``ops.compute``: add, multiply,
cast, activation, ...; see ``common.fuse_epilogue``); its stages are inlined into the
output stage, its new inputs come after the operator's inputs, and the workload key does
not change (tuned records apply). The schedules:

* **rows in parallel, each row computed whole**: every per-row intermediate (the max, the
  exponentials, the sums, the reciprocal standard deviation) is computed at the row of the
  output (``compute_at(s[Y], i)``), in a small buffer that stays in L1 while the row is hot,
  and the row loop is split between the cores. The last axis of every full-width stage is
  vectorized one register (16 float32) wide.
* **reductions in registers**: a row reduction is split into ``lanes`` and ``ACC``
  independent vector accumulators by two rfactors: ``k = (k // (ACC * lanes), acc, lane)``
  accumulates ACC x lanes partial results (4 zmm registers, the k loop outside the
  unrolled accumulators), which are then combined into one vector and finally into the
  scalar. One accumulator would chain every vector add on the previous one (latency-bound);
  four keep the adders busy.
* **softmax** divides by the row sum through its reciprocal, computed once per row.
* **layer_norm** takes two passes over the row (still in L1): the sum, then the sum of
  squared deviations from the mean (numerically safer than the sum of squares); the
  reciprocal standard deviation is a per-row scalar.
* **fused_elementwise** is one vectorized loop over all elements, its vector iterations
  split between the cores: a single pass over memory, bandwidth-bound. Unrolling it, or
  cutting it into 2 or many parallel chunks, measured no different (the parallel loop is
  statically divided into one chunk per thread anyway).

Shapes need not be multiples of the vector width: tails are guarded and loop partitioning
moves the guards out of the main loops.
"""

from __future__ import annotations


from ..dispatch import get_config, template
from .. import dtype as dt
from .. import te
from . import compute
from .common import (check_dims, epilogue_of, find_anchor, fuse_epilogue, input_stages, knob,
                     vector_lanes)
from .compute.nn import check_epsilon
from .injective import PARALLEL_MIN
from ..schedule import create_schedule

ACC = 4           # independent vector accumulators of a row reduction


# --------------------------------------------------------------------------- row schedules

def _row_axis_vectorize(s, stage, lanes) -> None:
    s[stage].vectorize(s[stage].split(stage.op.axis[-1], factor=lanes)[1])


def vector_partials(s, red, k, lanes: int, acc_n: int = ACC) -> list:
    """Accumulate ``red`` over its one reduction loop ``k`` in ``acc_n`` vectors of ``lanes``
    (two rfactors); returns the two partial stages, for the caller to place."""
    _, lane = s[red].split(k, factor=lanes)
    rf = s.rfactor(red, lane)                    # rf[lane, i]: over k // lanes
    _, acc = s[rf].split(s[rf].op.reduce_axis[0], factor=acc_n)
    rf2 = s.rfactor(rf, acc)                     # rf2[acc, lane, i]: over k // (ACC * lanes)
    acc2, lane2, *rows = rf2.op.axis
    s[rf2].reorder(*rows, s[rf2].op.reduce_axis[0], acc2, lane2)
    s[rf2].unroll(acc2)
    s[rf2].vectorize(lane2)
    lane1, *rows = rf.op.axis
    s[rf].reorder(*rows, s[rf].op.reduce_axis[0], lane1)
    s[rf].vectorize(lane1)
    return [rf2, rf]


def _vector_reduce(s, red, at_stage, at_axis, lanes: int, acc_n: int = ACC) -> None:
    """Accumulate the one-axis reduction ``red`` in ACC vectors of ``lanes`` (two rfactors),
    with its partial results computed at ``at_stage``'s ``at_axis``."""
    k, = s[red].op.reduce_axis
    partials = vector_partials(s, red, k, lanes, acc_n)
    for stage in partials if at_stage is s[red] else partials + [red]:
        s[stage].compute_at(at_stage, at_axis)


def _rows_parallel(s, Y, stages, reductions, lanes, acc_n=ACC):
    """Y's rows in parallel, ``stages`` and ``reductions`` computed at each row (the stages
    as wide as Y vectorized)."""
    i = Y.op.axis[0]
    s[Y].parallel(i)
    _row_axis_vectorize(s, Y, lanes)
    for red in reductions:
        _vector_reduce(s, red, s[Y], i, lanes, acc_n)
    for stage in stages:
        s[stage].compute_at(s[Y], i)
        if tuple(stage.shape) == tuple(Y.shape):
            _row_axis_vectorize(s, stage, lanes)


def schedule_rows(cfg, s, outs, tag):
    """Schedule a row-wise operator over the last axis of a matrix (softmax, log_softmax,
    layer_norm, rms_norm): its output stage is found by ``tag`` (see ``find_anchor``); the
    rows of ``outs[0]`` run in parallel, every per-row reduction is accumulated in ``acc``
    vectors (knob, default ACC) and every intermediate stage computed at the row. Returns
    ``s``."""
    out, = outs
    anchor = find_anchor(s, out, tag)
    stages, reds = input_stages(anchor)
    _rows_parallel(s, out, stages, reds, vector_lanes(anchor.dtype),
                   knob(cfg, "acc", [1, 2, 4, 8], ACC))
    return s


def _row_template(op: str, tag: str, fn, inputs, epilogue):
    T = fn(*inputs)
    out, extra, _ = fuse_epilogue(op, T, epilogue, inputs)
    s = create_schedule(out.op)
    schedule_rows(get_config(), s, [out], tag)
    return s, [*inputs, *extra, out]


def _rows_args(op: str, rows, cols, dtype, epilogue):
    check_dims(op, rows=rows, cols=cols)
    return dt.check(dtype), epilogue_of(op, epilogue, 1)


# --------------------------------------------------------------------------- operators

def softmax(rows: int, cols: int, dtype: str = "float32", epilogue=None):
    """Y[i, j] = exp(X[i, j] - max_j X[i, :]) / sum_j(...) (``compute.softmax``, axis -1).
    Returns ``(schedule, [X, (epilogue inputs...,) Y])`` (template ``"ops/softmax"``: the
    accumulators are its knob)."""
    dtype, epilogue = _rows_args("softmax", rows, cols, dtype, epilogue)
    return _softmax_template(rows, cols, dtype, epilogue=epilogue)


@template("ops/softmax", warn_fallback=False)
def _softmax_template(rows, cols, dtype, *, epilogue=None):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    return _row_template("softmax", "softmax_output", compute.softmax, [X], epilogue)


def layer_norm(rows: int, cols: int, epsilon: float = 1e-5, dtype: str = "float32",
               epilogue=None):
    """Y = (X - mean) * rsqrt(var + epsilon) * gamma + beta over the last axis, var the
    biased variance (``compute.layer_norm``). Returns ``(schedule, [X, gamma, beta,
    (epilogue inputs...,) Y])`` (template ``"ops/layer_norm"``)."""
    eps = check_epsilon("layer_norm", epsilon)
    dtype, epilogue = _rows_args("layer_norm", rows, cols, dtype, epilogue)
    return _layer_norm_template(rows, cols, eps, dtype, epilogue=epilogue)


@template("ops/layer_norm", warn_fallback=False)
def _layer_norm_template(rows, cols, epsilon, dtype, *, epilogue=None):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    gamma = te.placeholder((cols,), name="gamma", dtype=dtype)
    beta = te.placeholder((cols,), name="beta", dtype=dtype)
    return _row_template("layer_norm", "layer_norm",
                         lambda x, g, b: compute.layer_norm(x, g, b, epsilon=epsilon),
                         [X, gamma, beta], epilogue)


def log_softmax(rows: int, cols: int, dtype: str = "float32", epilogue=None):
    """Y[i, j] = X[i, j] - (max_j X[i, :] + log(sum_j exp(X[i, j] - max))) (``compute.
    log_softmax``: the per-row offset is computed once per row). Returns ``(schedule, [X,
    (epilogue inputs...,) Y])`` (template ``"ops/log_softmax"``, knob ``acc``)."""
    dtype, epilogue = _rows_args("log_softmax", rows, cols, dtype, epilogue)
    return _log_softmax_template(rows, cols, dtype, epilogue=epilogue)


@template("ops/log_softmax", warn_fallback=False)
def _log_softmax_template(rows, cols, dtype, *, epilogue=None):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    return _row_template("log_softmax", "log_softmax_output", compute.log_softmax, [X],
                         epilogue)


def rms_norm(rows: int, cols: int, epsilon: float = 1e-6, dtype: str = "float32",
             epilogue=None):
    """Y = X * rsqrt(mean_j(X[i, j]^2) + epsilon) * gamma over the last axis
    (``compute.rms_norm``, same default epsilon). Returns ``(schedule, [X, gamma,
    (epilogue inputs...,) Y])`` (template ``"ops/rms_norm"``, knob ``acc``): one pass for the
    sum of squares, one for Y, the row still in L1."""
    eps = check_epsilon("rms_norm", epsilon)
    dtype, epilogue = _rows_args("rms_norm", rows, cols, dtype, epilogue)
    return _rms_norm_template(rows, cols, eps, dtype, epilogue=epilogue)


@template("ops/rms_norm", warn_fallback=False)
def _rms_norm_template(rows, cols, epsilon, dtype, *, epilogue=None):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    gamma = te.placeholder((cols,), name="gamma", dtype=dtype)
    return _row_template("rms_norm", "rms_norm",
                         lambda x, g: compute.rms_norm(x, g, epsilon=epsilon), [X, gamma],
                         epilogue)


def batch_norm(N: int, C: int, H: int, W: int, epsilon: float = 1e-5, dtype: str = "float32",
               epilogue=None):
    """Inference batch norm over NCHW: Y = X * scale[c] + shift[c] with scale = gamma *
    rsqrt(var + epsilon) and shift = beta - mean * scale (``compute.batch_norm``, same
    default epsilon). Returns ``(schedule, [X, gamma, beta, mean, var, (epilogue
    inputs...,) Y])`` (template ``"ops/batch_norm"``, see ``schedule_batch_norm``)."""
    check_dims("batch_norm", N=N, C=C, H=H, W=W)
    eps = check_epsilon("batch_norm", epsilon)
    return _batch_norm_template(N, C, H, W, eps, dt.check(dtype),
                                epilogue=epilogue_of("batch_norm", epilogue, 1))


@template("ops/batch_norm", warn_fallback=False)
def _batch_norm_template(N, C, H, W, epsilon, dtype, *, epilogue=None):
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    params = [te.placeholder((C,), name=n, dtype=dtype) for n in ("gamma", "beta", "mean", "var")]
    T = compute.batch_norm(X, *params, axis=1, epsilon=epsilon)
    out, extra, _ = fuse_epilogue("batch_norm", T, epilogue, [X, *params])
    s = create_schedule(out.op)
    schedule_batch_norm(get_config(), s, [out])
    return s, [X, *params, *extra, out]


def schedule_batch_norm(cfg, s, outs):
    """The per-channel scale and shift (stages of C elements) are computed once,
    vectorized; the output (anchor tag ``"batch_norm"``, NCHW) is one pass over memory, the
    (n, c) planes in parallel (knob ``parallel``, default: from PARALLEL_MIN elements) and
    each plane's H * W elements (fused) vectorized, ``vec`` vectors per iteration (knob,
    default 1). Returns ``s``."""
    out, = outs
    anchor = find_anchor(s, out, "batch_norm")
    stages, _ = input_stages(anchor)
    lanes = vector_lanes(anchor.dtype)
    size = 1
    for d in out.shape:
        size *= int(getattr(d, "value", d))
    vec = knob(cfg, "vec", [1, 2, 4], 1)
    parallel = knob(cfg, "parallel", [0, 1], int(size >= PARALLEL_MIN))
    for st in stages:
        s[st].vectorize(s[st].split(st.op.axis[0], factor=lanes)[1])
    n, c, h, w = out.op.axis
    plane = s[out].fuse(n, c)
    hw = s[out].fuse(h, w)
    o, i = s[out].split(hw, factor=lanes * vec)
    if vec > 1:
        u, i = s[out].split(i, factor=lanes)
        s[out].unroll(u)
    s[out].vectorize(i)
    if parallel:
        s[out].parallel(plane)
    return s


# --------------------------------------------------------------------------- demos
# row_sum, row_max and fused_elementwise are small fixed kernels (not templates, no
# epilogue): their computes are one line each; ``reduce`` and ``injective`` are the general
# operators.

def row_sum(rows: int, cols: int, dtype: str = "float32"):
    """S[i] = sum_j X[i, j]. Returns ``(schedule, [X, S])``."""
    check_dims("row_sum", rows=rows, cols=cols)
    return _row_reduce(te.sum, rows, cols, dtype)


def row_max(rows: int, cols: int, dtype: str = "float32"):
    """S[i] = max_j X[i, j]. Returns ``(schedule, [X, S])``."""
    check_dims("row_max", rows=rows, cols=cols)
    return _row_reduce(te.max, rows, cols, dtype)


def _row_reduce(reducer, rows, cols, dtype):
    dtype = dt.check(dtype)
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    k = te.reduce_axis((0, cols), name="k")
    S = te.compute((rows,), lambda i: reducer(X[i, k], axis=k), name="S")
    s = create_schedule(S.op)
    i, = S.op.axis
    _vector_reduce(s, S, s[S], i, vector_lanes(dtype))
    s[S].parallel(i)
    return s, [X, S]


def fused_elementwise(n: int, dtype: str = "float32"):
    """D = relu(A * B + C), element-wise over 1-D arrays of ``n``. Returns
    ``(schedule, [A, B, C, D])``."""
    check_dims("fused_elementwise", n=n)
    dtype = dt.check(dtype)
    A, B, C = (te.placeholder((n,), name=name, dtype=dtype) for name in "ABC")
    D = te.compute((n,), lambda i: te.max(A[i] * B[i] + C[i], te.const(0, dtype)), name="D")
    s = create_schedule(D.op)
    vo, vi = s[D].split(D.op.axis[0], factor=vector_lanes(dtype))
    s[D].vectorize(vi)
    s[D].parallel(vo)
    return s, [A, B, C, D]
