"""Row-wise and element-wise operators: ``softmax``, ``layer_norm``, ``row_sum``, ``row_max``
(over the last axis of a rows x cols matrix) and ``fused_elementwise`` (relu(A * B + C)).

Each returns ``(schedule, args)`` (inputs first, output last) with the fastest schedule
found for this CPU. The schedules:

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

import autotune

from .. import dtype as dt
from .. import te
from ..errors import TensorlangValueError
from .common import check_dims, knob, vector_lanes
from .compute.nn import _epsilon as _check_epsilon
from .injective import PARALLEL_MIN
from ..schedule import create_schedule

ACC = 4           # independent vector accumulators of a row reduction




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
    """Y's rows in parallel, ``stages`` and ``reductions`` computed at each row."""
    i = Y.op.axis[0]
    s[Y].parallel(i)
    _row_axis_vectorize(s, Y, lanes)
    for red in reductions:
        _vector_reduce(s, red, s[Y], i, lanes, acc_n)
    for stage in stages:
        s[stage].compute_at(s[Y], i)
        if len(stage.shape) > 1:
            _row_axis_vectorize(s, stage, lanes)


def _acc_knob() -> int:
    """The number of vector accumulators, a tuning knob (default ACC)."""
    return knob(autotune.get_config(), "acc", [1, 2, 4, 8], ACC)


def softmax(rows: int, cols: int, dtype: str = "float32"):
    """Y[i, j] = exp(X[i, j] - max_j X[i, :]) / sum_j(...). Returns ``(schedule, [X, Y])``
    (an autotune template, ``"ops/softmax"``: the accumulators are its knob)."""
    check_dims("softmax", rows=rows, cols=cols)
    return _softmax_template(rows, cols, dt.check(dtype))


@autotune.template("ops/softmax", warn_fallback=False)
def _softmax_template(rows, cols, dtype):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    k1 = te.reduce_axis((0, cols), name="k1")
    k2 = te.reduce_axis((0, cols), name="k2")
    mx = te.compute((rows,), lambda i: te.max(X[i, k1], axis=k1), name="rowmax")
    ex = te.compute((rows, cols), lambda i, j: te.exp(X[i, j] - mx[i]), name="exp")
    sm = te.compute((rows,), lambda i: te.sum(ex[i, k2], axis=k2), name="rowsum")
    rcp = te.compute((rows,), lambda i: te.const(1, dtype) / sm[i], name="rcp")
    Y = te.compute((rows, cols), lambda i, j: ex[i, j] * rcp[i], name="Y")
    s = create_schedule(Y.op)
    _rows_parallel(s, Y, [ex, rcp], [mx, sm], vector_lanes(dtype), _acc_knob())
    return s, [X, Y]


def layer_norm(rows: int, cols: int, epsilon: float = 1e-5, dtype: str = "float32"):
    """Y = (X - mean) * rsqrt(var + epsilon) * gamma + beta over the last axis, var the
    biased variance. Returns ``(schedule, [X, gamma, beta, Y])`` (template ``"ops/layer_norm"``)."""
    check_dims("layer_norm", rows=rows, cols=cols)
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0:
        raise TensorlangValueError(f"layer_norm: epsilon must be a number >= 0, got {epsilon!r}")
    return _layer_norm_template(rows, cols, float(epsilon), dt.check(dtype))


@autotune.template("ops/layer_norm", warn_fallback=False)
def _layer_norm_template(rows, cols, epsilon, dtype):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    gamma = te.placeholder((cols,), name="gamma", dtype=dtype)
    beta = te.placeholder((cols,), name="beta", dtype=dtype)
    inv_n = te.const(1.0 / cols, dtype)
    k1 = te.reduce_axis((0, cols), name="k1")
    k2 = te.reduce_axis((0, cols), name="k2")
    total = te.compute((rows,), lambda i: te.sum(X[i, k1], axis=k1), name="rowsum")

    def dev(i, j):
        return X[i, j] - total[i] * inv_n

    sq = te.compute((rows,), lambda i: te.sum(dev(i, k2) * dev(i, k2), axis=k2), name="sqsum")
    rstd = te.compute((rows,), lambda i: te.rsqrt(sq[i] * inv_n + te.const(epsilon, dtype)),
                      name="rstd")
    Y = te.compute((rows, cols), lambda i, j: dev(i, j) * rstd[i] * gamma[j] + beta[j], name="Y")
    s = create_schedule(Y.op)
    _rows_parallel(s, Y, [rstd], [total, sq], vector_lanes(dtype), _acc_knob())
    return s, [X, gamma, beta, Y]


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


def log_softmax(rows: int, cols: int, dtype: str = "float32"):
    """Y[i, j] = X[i, j] - max_j X[i, :] - log(sum_j exp(X[i, j] - max)) (the formula of
    ``compute.log_softmax``; the per-row offset max + log(sum) is computed once per row).
    Returns ``(schedule, [X, Y])`` (template ``"ops/log_softmax"``, knob ``acc``)."""
    check_dims("log_softmax", rows=rows, cols=cols)
    return _log_softmax_template(rows, cols, dt.check(dtype))


@autotune.template("ops/log_softmax", warn_fallback=False)
def _log_softmax_template(rows, cols, dtype):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    k1 = te.reduce_axis((0, cols), name="k1")
    k2 = te.reduce_axis((0, cols), name="k2")
    mx = te.compute((rows,), lambda i: te.max(X[i, k1], axis=k1), name="rowmax")
    sm = te.compute((rows,), lambda i: te.sum(te.exp(X[i, k2] - mx[i]), axis=k2), name="rowsum")
    off = te.compute((rows,), lambda i: mx[i] + te.log(sm[i]), name="offset")
    Y = te.compute((rows, cols), lambda i, j: X[i, j] - off[i], name="Y")
    s = create_schedule(Y.op)
    _rows_parallel(s, Y, [off], [mx, sm], vector_lanes(dtype), _acc_knob())
    return s, [X, Y]


def rms_norm(rows: int, cols: int, epsilon: float = 1e-6, dtype: str = "float32"):
    """Y = X * rsqrt(mean_j(X[i, j]^2) + epsilon) * gamma over the last axis (the formula of
    ``compute.rms_norm``, same default epsilon). Returns ``(schedule, [X, gamma, Y])``
    (template ``"ops/rms_norm"``, knob ``acc``): one pass for the sum of squares, one for Y,
    the row still in L1."""
    check_dims("rms_norm", rows=rows, cols=cols)
    return _rms_norm_template(rows, cols, _check_epsilon("rms_norm", epsilon), dt.check(dtype))


@autotune.template("ops/rms_norm", warn_fallback=False)
def _rms_norm_template(rows, cols, epsilon, dtype):
    X = te.placeholder((rows, cols), name="X", dtype=dtype)
    gamma = te.placeholder((cols,), name="gamma", dtype=dtype)
    k = te.reduce_axis((0, cols), name="k")
    sq = te.compute((rows,), lambda i: te.sum(X[i, k] * X[i, k], axis=k), name="sqsum")
    rrms = te.compute((rows,), lambda i: te.rsqrt(sq[i] * te.const(1.0 / cols, dtype)
                                                  + te.const(epsilon, dtype)), name="rrms")
    Y = te.compute((rows, cols), lambda i, j: X[i, j] * rrms[i] * gamma[j], name="Y")
    s = create_schedule(Y.op)
    _rows_parallel(s, Y, [rrms], [sq], vector_lanes(dtype), _acc_knob())
    return s, [X, gamma, Y]


def batch_norm(N: int, C: int, H: int, W: int, epsilon: float = 1e-5, dtype: str = "float32"):
    """Inference batch norm over NCHW: Y = (X - mean[c]) * gamma[c] * rsqrt(var[c] + epsilon)
    + beta[c] (``compute.batch_norm``'s formula, same default epsilon). Returns
    ``(schedule, [X, gamma, beta, mean, var, Y])`` (template ``"ops/batch_norm"``).

    The per-channel scale = gamma * rsqrt(var + eps) and shift = beta - mean * scale are
    computed once, in two small stages of C elements; Y = X * scale + shift is then one
    pass over memory, the (n, c) planes in parallel and each plane's H * W elements (fused)
    vectorized, ``vec`` vectors per iteration (knob, default 1)."""
    check_dims("batch_norm", N=N, C=C, H=H, W=W)
    return _batch_norm_template(N, C, H, W, _check_epsilon("batch_norm", epsilon),
                                dt.check(dtype))


@autotune.template("ops/batch_norm", warn_fallback=False)
def _batch_norm_template(N, C, H, W, epsilon, dtype):
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    gamma, beta, mean, var = (te.placeholder((C,), name=n, dtype=dtype)
                              for n in ("gamma", "beta", "mean", "var"))
    scale = te.compute((C,), lambda c: gamma[c] * te.rsqrt(var[c] + te.const(epsilon, dtype)),
                       name="scale")
    shift = te.compute((C,), lambda c: beta[c] - mean[c] * scale[c], name="shift")
    Y = te.compute((N, C, H, W), lambda n, c, h, w: X[n, c, h, w] * scale[c] + shift[c],
                   name="Y")
    s = create_schedule(Y.op)
    cfg = autotune.get_config()
    lanes = vector_lanes(dtype)
    vec = knob(cfg, "vec", [1, 2, 4], 1)
    parallel = knob(cfg, "parallel", [0, 1], int(N * C * H * W >= PARALLEL_MIN))
    for st in (scale, shift):
        s[st].vectorize(s[st].split(st.op.axis[0], factor=lanes)[1])
    n, c, h, w = Y.op.axis
    plane = s[Y].fuse(n, c)
    hw = s[Y].fuse(h, w)
    o, i = s[Y].split(hw, factor=lanes * vec)
    if vec > 1:
        u, i = s[Y].split(i, factor=lanes)
        s[Y].unroll(u)
    s[Y].vectorize(i)
    if parallel:
        s[Y].parallel(plane)
    return s, [X, gamma, beta, mean, var, Y]
