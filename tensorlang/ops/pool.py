"""2-D pooling over NCHW: ``max_pool2d`` and ``avg_pool2d`` (the semantics of
:func:`tensorlang.ops.compute.nn.max_pool2d` / ``avg_pool2d``: padding with -inf for max
and with zeros for the average, ``count_include_pad``, floor-mode output sizes).

The schedule (template ``"ops/pool2d"``):

* the (n, c) planes run in parallel (when the input has ``PARALLEL_MIN`` elements);
* the padded input is a stage computed once per plane (52 KB for a 112 x 112 plane: it
  stays in L2 while the plane's windows read it, and the window loops carry no
  bounds tests). For a column stride S > 1 its columns are **split by phase**:
  ``Pd[n, c, y, p, q] = padded[n, c, y, q * S + p]`` (conv2d's ``_padded``), so that the
  window column ``rx`` of S consecutive output columns, padded ``x * S + rx``, is
  ``Pd[.., rx % S, x + rx // S]``: contiguous in x, one vector load instead of a gather of
  every S-th element (the gather is paid once per input element when the stage is
  written instead of K times when it is read). Knob ``phase`` (1; 0 reads with a stride);
* output columns are vectorized in tiles of ``nv`` vectors (knob; default 4, fewer for
  rows of at most 2 or 1 vectors: the ResNet-50 stem's 56-wide output row is one tile,
  ~15% faster than 4 tiles of one vector), accumulated in registers (a write cache
  computed at the tile) with the kernel loops outside the vectors;
* the average divides by the window size (a constant) or, with ``count_include_pad=False``,
  by the in-bounds count.
"""

from __future__ import annotations

import math

import autotune

from .. import dtype as dt
from .. import te
from ..errors import TensorlangTypeError, TensorlangValueError
from ..schedule import create_schedule
from .common import check_dims, knob, vector_lanes
from .compute.nn import _pool_args
from .injective import PARALLEL_MIN


def _check(op, N, C, H, W, kernel, stride, padding, dtype):
    check_dims(op, N=N, C=C, H=H, W=W)
    dtype = dt.check(dtype)
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    _, K, S, P, _ = _pool_args(op, X, kernel, stride, padding)
    return [list(K), list(S), list(P)], dtype


def max_pool2d(N: int, C: int, H: int, W: int, kernel, stride=None, padding=0,
               dtype: str = "float32"):
    """O[n, c, y, x] = max of the ``kernel`` window at (y * sh - ph, x * sw - pw) of X
    (NCHW, padded with -inf); ``stride`` defaults to ``kernel``, padding at most half the
    kernel. Returns ``(schedule, [X, O])`` (template ``"ops/pool2d"``)."""
    (K, S, P), dtype = _check("max_pool2d", N, C, H, W, kernel, stride, padding, dtype)
    return _pool_template("max", N, C, H, W, K, S, P, True, dtype)


def avg_pool2d(N: int, C: int, H: int, W: int, kernel, stride=None, padding=0,
               count_include_pad: bool = True, dtype: str = "float32"):
    """The mean of each ``kernel`` window of the zero-padded X (NCHW); with
    ``count_include_pad=False`` the divisor counts only the window's in-bounds elements.
    Returns ``(schedule, [X, O])`` (template ``"ops/pool2d"``)."""
    (K, S, P), dtype = _check("avg_pool2d", N, C, H, W, kernel, stride, padding, dtype)
    if not dt.is_float(dtype):
        raise TensorlangTypeError(f"avg_pool2d: dtype must be a float type, got {dtype}")
    if not isinstance(count_include_pad, bool):
        raise TensorlangValueError(
            f"avg_pool2d: count_include_pad must be a bool, got {count_include_pad!r}")
    return _pool_template("avg", N, C, H, W, K, S, P, count_include_pad, dtype)


def _padded(X, N, C, H, W, P, S, fill, phase):
    """The padded input as a stage (phase-split columns when ``phase``), or None, and
    ``read(n, c, iy, rx, x)`` = padded X at (iy, x * S + rx)."""
    Hp, Wp = H + 2 * P[0], W + 2 * P[1]

    def val(n, c, y, x):
        conds = []
        if P[0]:
            conds += [y >= P[0], y < H + P[0]]
        if P[1]:
            conds += [x >= P[1]]
        if P[1] or phase:                             # phase columns pass the right edge
            conds += [x < W + P[1]]
        inside = X[n, c, y - P[0], x - P[1]]
        return te.if_then_else(te.all(*conds), inside, fill) if conds else inside
    if phase:
        Pd = te.compute((N, C, Hp, S, -(-Wp // S)),
                        lambda n, c, y, p, q: val(n, c, y, q * S + p), name="Xpad")
        return Pd, lambda n, c, iy, rx, x: Pd[n, c, iy, rx % S, x + rx // S]
    if not (P[0] or P[1]):
        return None, lambda n, c, iy, rx, x: X[n, c, iy, x * S + rx]
    Pd = te.compute((N, C, Hp, Wp), val, name="Xpad")
    return Pd, lambda n, c, iy, rx, x: Pd[n, c, iy, x * S + rx]


@autotune.template("ops/pool2d", warn_fallback=False)
def _pool_template(kind, N, C, H, W, K, S, P, count_include_pad, dtype):
    cfg = autotune.get_config()
    lanes = vector_lanes(dtype)
    phase = bool(knob(cfg, "phase", [0, 1], 1)) if S[1] > 1 else False
    OH = (H + 2 * P[0] - K[0]) // S[0] + 1
    OW = (W + 2 * P[1] - K[1]) // S[1] + 1
    nv = knob(cfg, "nv", [1, 2, 4], 4 if OW > 2 * lanes else 2 if OW > lanes else 1)
    parallel = bool(knob(cfg, "parallel", [0, 1], int(N * C * H * W >= PARALLEL_MIN)))
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    if kind == "max":
        fill = te.const(-math.inf, dtype) if dt.is_float(dtype) else te.min_value(dtype)
    else:
        fill = te.const(0, dtype)
    Pd, read = _padded(X, N, C, H, W, P, S[1], fill, phase)
    ry = te.reduce_axis((0, K[0]), name="ry")
    rx = te.reduce_axis((0, K[1]), name="rx")
    reducer = te.max if kind == "max" else te.sum

    def window(n, c, y, x):
        return reducer(read(n, c, y * S[0] + ry, rx, x), axis=[ry, rx])
    if kind == "max":
        O = te.compute((N, C, OH, OW), window, name="max_pool2d")
        s = create_schedule(O.op)
        acc = s.cache_write(O, "global")
    else:
        acc = te.compute((N, C, OH, OW), window, name="avg_pool2d_sum")
        if count_include_pad or not (P[0] or P[1]):
            inv = te.const(1.0 / (K[0] * K[1]), dtype)
            O = te.compute((N, C, OH, OW), lambda n, c, y, x: acc[n, c, y, x] * inv,
                           name="avg_pool2d")
        else:
            def count(i, k, st, p, n):       # in-bounds elements of the window at i*st - p
                lo = i * st - p
                return te.min(lo + k, te.const(n, "int32")) - te.max(lo, te.const(0, "int32"))
            O = te.compute((N, C, OH, OW), lambda n, c, y, x: acc[n, c, y, x] / (
                count(y, K[0], S[0], P[0], H) * count(x, K[1], S[1], P[1], W)).astype(dtype),
                name="avg_pool2d")
        s = create_schedule(O.op)
    n, c, y, x = O.op.axis
    plane = s[O].fuse(n, c)
    xo, xi = s[O].split(x, factor=lanes * nv)
    s[O].vectorize(xi)
    if parallel:
        s[O].parallel(plane)
    s[acc].compute_at(s[O], xo)
    *_, xa = s[acc].op.axis
    s[acc].reorder(*s[acc].op.reduce_axis, xa)
    xu, xv = s[acc].split(xa, factor=lanes)
    s[acc].unroll(xu)
    s[acc].vectorize(xv)
    if Pd is not None:
        s[Pd].compute_at(s[O], plane)
        s[Pd].vectorize(s[Pd].split(s[Pd].op.axis[-1], factor=lanes)[1])
    return s, [X, O]
