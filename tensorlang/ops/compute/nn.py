"""Compute-only neural-network operators in TVM TOPI's conventions.

Each function takes tensors (``tl.placeholder`` or the output of another compute) and
returns the output tensor: no schedules, so the operators compose into larger pipelines.
Every one is correct under the default schedule ``tl.create_schedule(out.op)``.

Conventions:

* ``stride``, ``padding``, ``dilation`` (and the pooling ``kernel``) are an int or an
  ``(h, w)`` pair; padding is symmetric (the same before and after along an axis).
* Zero padding is a separate ``"pad"`` stage (an ``if_then_else``), created only when some
  padding is > 0. Max pooling pads with -inf (the lowest value for integer dtypes), so a
  padded position is never selected; pooling padding must be at most half the kernel
  (PyTorch's rule), so no window lies entirely in the padding.
* Output sizes are ``(H + 2 * pad - dilation * (K - 1) - 1) // stride + 1`` (floor mode).
* Reductions over one axis (softmax, norms) keep that axis with extent 1 in their
  intermediate stages, so they work for any rank and any axis (negative allowed).
* ``conv2d_nchw`` weights are OIHW ``(CO, C // groups, KH, KW)``; ``conv2d_nhwc`` weights are
  HWIO ``(KH, KW, C, CO)``; ``depthwise_conv2d_nchw`` weights are ``(C, multiplier, KH, KW)``
  and output channel ``c * multiplier + m`` reads input channel ``c``.
* ``conv2d_NCHWc``: data ``(N, CI // ic, H, W, ic)``, weights
  ``(CO // oc, CI // ic, KH, KW, ic, oc)`` (TOPI's ``OIHW{ic}i{oc}o``), output
  ``(N, CO // oc, OH, OW, oc)``; ``kernel_to_oihw_ic_oc`` blocks OIHW weights that way.

Every argument problem raises :class:`TensorlangValueError` (:class:`TensorlangTypeError`
for dtypes and non-tensors) whose message starts with the operator name and names the
argument.
"""

from __future__ import annotations

import math

from ... import dtype as dt
from ... import te
from ...errors import TensorlangTypeError, TensorlangValueError

__all__ = [
    "avg_pool2d", "batch_norm", "conv2d_NCHWc", "conv2d_nchw", "conv2d_nhwc",
    "depthwise_conv2d_nchw", "global_avg_pool2d", "kernel_to_oihw_ic_oc", "layer_norm",
    "log_softmax", "max_pool2d", "nchw_to_nchwc", "nchwc_to_nchw", "rms_norm", "softmax",
]


# --------------------------------------------------------------------------- helpers

def _shape(T) -> tuple:
    """The shape of tensor ``T`` as Python ints."""
    out = []
    for d in T.shape:
        v = getattr(d, "value", d)
        try:
            out.append(int(v))
        except (TypeError, ValueError):
            raise TensorlangValueError(
                f"tensor {T.name!r}: shape {tuple(map(str, T.shape))} must be constant") from None
    return tuple(out)


def _tensor(op: str, name: str, T, ndim: int | None = None, layout: str = "") -> tuple:
    """Check that ``T`` is a tensor of ``ndim`` dimensions; returns its int shape."""
    if not isinstance(T, te.Tensor):
        raise TensorlangTypeError(f"{op}: {name} must be a tensor, got {type(T).__name__}")
    shape = _shape(T)
    if ndim is not None and len(shape) != ndim:
        what = f" {layout}" if layout else ""
        raise TensorlangValueError(
            f"{op}: {name} must be {ndim}-D{what}, got shape {shape}")
    return shape


def _same_dtype(op: str, X, **others) -> str:
    for name, T in others.items():
        if T.dtype != X.dtype:
            raise TensorlangTypeError(
                f"{op}: {name} has dtype {T.dtype} but X has dtype {X.dtype}; they must match")
    return X.dtype


def _float(op: str, X) -> str:
    if not dt.is_float(X.dtype):
        raise TensorlangTypeError(f"{op}: X must have a float dtype, got {X.dtype}")
    return X.dtype


def _int(op: str, name: str, v, lo: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TensorlangValueError(f"{op}: {name} must be an int, got {v!r}")
    if v < lo:
        raise TensorlangValueError(f"{op}: {name} must be >= {lo}, got {v}")
    return v


def _pair(op: str, name: str, v, lo: int) -> tuple:
    """An int or an (h, w) pair of ints, each >= ``lo``."""
    if isinstance(v, (tuple, list)):
        if len(v) != 2 or any(isinstance(x, bool) or not isinstance(x, int) for x in v):
            raise TensorlangValueError(
                f"{op}: {name} must be an int or a pair of ints, got {v!r}")
        if min(v) < lo:
            raise TensorlangValueError(f"{op}: {name} must be >= {lo}, got {tuple(v)!r}")
        return int(v[0]), int(v[1])
    if isinstance(v, bool) or not isinstance(v, int):
        raise TensorlangValueError(f"{op}: {name} must be an int or a pair of ints, got {v!r}")
    v = _int(op, name, v, lo)
    return v, v


def _out_size(op: str, H, W, K, stride, pad, dil, what: str = "kernel") -> tuple:
    """(OH, OW) of a sliding window; raises unless both are positive."""
    ekh = dil[0] * (K[0] - 1) + 1
    ekw = dil[1] * (K[1] - 1) + 1
    OH = (H + 2 * pad[0] - ekh) // stride[0] + 1
    OW = (W + 2 * pad[1] - ekw) // stride[1] + 1
    if OH <= 0 or OW <= 0:
        raise TensorlangValueError(
            f"{op}: output size {OH}x{OW} must be positive (input {H}x{W}, padding "
            f"{pad[0]}x{pad[1]}, {what} {K[0]}x{K[1]}, dilation {dil[0]}x{dil[1]}, effective "
            f"{what} {ekh}x{ekw} is larger than the padded {H + 2 * pad[0]}x{W + 2 * pad[1]} input)"
            if ekh > H + 2 * pad[0] or ekw > W + 2 * pad[1] else
            f"{op}: output size {OH}x{OW} must be positive")
    return OH, OW


def _pad(X, pads: dict, value, name: str = "pad"):
    """X padded with ``value`` by ``pads = {axis: p}`` before and after each axis; X itself
    when no padding is > 0."""
    pads = {a: p for a, p in pads.items() if p > 0}
    if not pads:
        return X
    shape = list(_shape(X))
    out_shape = [s + 2 * pads.get(a, 0) for a, s in enumerate(shape)]

    def f(*idx):
        conds = []
        src = []
        for a, i in enumerate(idx):
            p = pads.get(a, 0)
            if p:
                conds += [i >= p, i < shape[a] + p]
                src.append(i - p)
            else:
                src.append(i)
        return te.if_then_else(te.all(*conds), X[tuple(src)], value)
    return te.compute(tuple(out_shape), f, name=name)


def _axis(op: str, axis, ndim: int) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TensorlangValueError(f"{op}: axis must be an int, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise TensorlangValueError(
            f"{op}: axis {axis} is out of range for a {ndim}-D X (must be in [{-ndim}, {ndim}))")
    return axis % ndim


def _epsilon(op: str, epsilon) -> float:
    if isinstance(epsilon, bool) or not isinstance(epsilon, (int, float)) or not epsilon >= 0 \
            or math.isinf(epsilon):
        raise TensorlangValueError(f"{op}: epsilon must be a finite number >= 0, got {epsilon!r}")
    return float(epsilon)


def _vector(op: str, name: str, T, n: int, dtype: str, what: str):
    shape = _tensor(op, name, T)
    if shape != (n,):
        raise TensorlangValueError(f"{op}: {name} must have shape ({n},) ({what}), got {shape}")
    if T.dtype != dtype:
        raise TensorlangTypeError(
            f"{op}: {name} has dtype {T.dtype} but X has dtype {dtype}; they must match")


def _reduce_axis_keep(X_at, shape: tuple, axis: int, reducer, name: str):
    """``reducer`` of ``X_at(full_index)`` over ``axis``, keeping it with extent 1."""
    out_shape = tuple(1 if a == axis else s for a, s in enumerate(shape))
    k = te.reduce_axis((0, shape[axis]), name="k")

    def f(*idx):
        full = tuple(k if a == axis else i for a, i in enumerate(idx))
        return reducer(X_at(full), axis=k)
    return te.compute(out_shape, f, name=name)


def _at(idx: tuple, axis: int) -> tuple:
    """``idx`` with the ``axis`` index replaced by 0 (reads a keep-dims reduction)."""
    return tuple(0 if a == axis else i for a, i in enumerate(idx))


# --------------------------------------------------------------------------- convolutions

def _conv_args(op, stride, padding, dilation):
    return (_pair(op, "stride", stride, 1), _pair(op, "padding", padding, 0),
            _pair(op, "dilation", dilation, 1))


def conv2d_nchw(X, W, stride=1, padding=0, dilation=1, groups=1):
    """O[n, f, y, x] = sum_{c, ry, rx} Xpad[n, g * C/groups + c, y*sh + ry*dh, x*sw + rx*dw]
    * W[f, c, ry, rx], g = f // (CO/groups). X: (N, C, H, W), W: (CO, C // groups, KH, KW);
    returns O: (N, CO, OH, OW)."""
    op = "conv2d_nchw"
    N, C, H, Wd = _tensor(op, "X", X, 4, "(N, C, H, W)")
    CO, CIg, KH, KW = _tensor(op, "W", W, 4, "(CO, C // groups, KH, KW)")
    dtype = _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    groups = _int(op, "groups", groups, 1)
    if C % groups:
        raise TensorlangValueError(f"{op}: groups={groups} must divide X's {C} channels")
    if CO % groups:
        raise TensorlangValueError(f"{op}: groups={groups} must divide W's {CO} output channels")
    if CIg != C // groups:
        raise TensorlangValueError(
            f"{op}: W has {CIg} input channels per group, X has {C} channels (groups={groups})")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    Xp = _pad(X, {2: P[0], 3: P[1]}, te.const(0, dtype))
    rc = te.reduce_axis((0, CIg), name="rc")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    og = CO // groups

    def f(n, co, y, x):
        c = rc if groups == 1 else (co // og) * CIg + rc
        return te.sum(Xp[n, c, y * S[0] + ry * D[0], x * S[1] + rx * D[1]] * W[co, rc, ry, rx],
                      axis=[rc, ry, rx])
    return te.compute((N, CO, OH, OW), f, name="conv2d_nchw")


def conv2d_nhwc(X, W, stride=1, padding=0, dilation=1):
    """O[n, y, x, f] = sum_{ry, rx, c} Xpad[n, y*sh + ry*dh, x*sw + rx*dw, c] * W[ry, rx, c, f].
    X: (N, H, W, C), W: (KH, KW, C, CO) (HWIO); returns O: (N, OH, OW, CO)."""
    op = "conv2d_nhwc"
    N, H, Wd, C = _tensor(op, "X", X, 4, "(N, H, W, C)")
    KH, KW, CI, CO = _tensor(op, "W", W, 4, "(KH, KW, C, CO)")
    dtype = _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    if CI != C:
        raise TensorlangValueError(f"{op}: W has {CI} input channels, X has {C} channels")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    Xp = _pad(X, {1: P[0], 2: P[1]}, te.const(0, dtype))
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rc = te.reduce_axis((0, C), name="rc")
    return te.compute((N, OH, OW, CO), lambda n, y, x, co: te.sum(
        Xp[n, y * S[0] + ry * D[0], x * S[1] + rx * D[1], rc] * W[ry, rx, rc, co],
        axis=[ry, rx, rc]), name="conv2d_nhwc")


def depthwise_conv2d_nchw(X, W, stride=1, padding=0, dilation=1):
    """O[n, c*M + m, y, x] = sum_{ry, rx} Xpad[n, c, y*sh + ry*dh, x*sw + rx*dw] * W[c, m, ry, rx].
    X: (N, C, H, W), W: (C, M, KH, KW); returns O: (N, C * M, OH, OW)."""
    op = "depthwise_conv2d_nchw"
    N, C, H, Wd = _tensor(op, "X", X, 4, "(N, C, H, W)")
    CW, M, KH, KW = _tensor(op, "W", W, 4, "(C, multiplier, KH, KW)")
    dtype = _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    if CW != C:
        raise TensorlangValueError(f"{op}: W has {CW} channels, X has {C} channels")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    Xp = _pad(X, {2: P[0], 3: P[1]}, te.const(0, dtype))
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")

    def f(n, co, y, x):
        c, m = (co, 0) if M == 1 else (co // M, co % M)
        return te.sum(Xp[n, c, y * S[0] + ry * D[0], x * S[1] + rx * D[1]] * W[c, m, ry, rx],
                      axis=[ry, rx])
    return te.compute((N, C * M, OH, OW), f, name="depthwise_conv2d_nchw")


# --------------------------------------------------------------------------- NCHWc layout

def nchw_to_nchwc(X, c):
    """Y[n, C_o, h, w, c_i] = X[n, C_o * c + c_i, h, w]: (N, C, H, W) -> (N, C // c, H, W, c)."""
    op = "nchw_to_nchwc"
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    c = _int(op, "c", c, 1)
    if C % c:
        raise TensorlangValueError(f"{op}: X's {C} channels are not divisible by c={c}")
    return te.compute((N, C // c, H, W, c),
                      lambda n, co, h, w, ci: X[n, co * c + ci, h, w], name="nchwc")


def nchwc_to_nchw(X):
    """Y[n, ch, h, w] = X[n, ch // c, h, w, ch % c]: (N, C // c, H, W, c) -> (N, C, H, W)."""
    op = "nchwc_to_nchw"
    N, CO, H, W, c = _tensor(op, "X", X, 5, "(N, C // c, H, W, c)")
    return te.compute((N, CO * c, H, W),
                      lambda n, ch, h, w: X[n, ch // c, h, w, ch % c], name="nchw")


def kernel_to_oihw_ic_oc(W, ic, oc):
    """Blocks OIHW weights (CO, CI, KH, KW) into (CO // oc, CI // ic, KH, KW, ic, oc):
    Wb[fo, co, ry, rx, ci, fi] = W[fo * oc + fi, co * ic + ci, ry, rx] (TOPI's
    ``OIHW{ic}i{oc}o``), the weight layout of :func:`conv2d_NCHWc`."""
    op = "kernel_to_oihw_ic_oc"
    CO, CI, KH, KW = _tensor(op, "W", W, 4, "(CO, CI, KH, KW)")
    ic = _int(op, "ic", ic, 1)
    oc = _int(op, "oc", oc, 1)
    if CI % ic:
        raise TensorlangValueError(f"{op}: W's {CI} input channels are not divisible by ic={ic}")
    if CO % oc:
        raise TensorlangValueError(f"{op}: W's {CO} output channels are not divisible by oc={oc}")
    return te.compute((CO // oc, CI // ic, KH, KW, ic, oc),
                      lambda fo, co, ry, rx, ci, fi: W[fo * oc + fi, co * ic + ci, ry, rx],
                      name="kernel_oihw_ic_oc")


def conv2d_NCHWc(X, W, stride=1, padding=0, dilation=1):
    """Blocked-layout convolution. X: (N, CI // ic, H, W, ic), W: (CO // oc, CI // ic, KH, KW,
    ic, oc); returns O: (N, CO // oc, OH, OW, oc) with
    O[n, fo, y, x, fi] = sum_{co, ry, rx, ci} Xpad[n, co, y*sh + ry*dh, x*sw + rx*dw, ci]
    * W[fo, co, ry, rx, ci, fi]."""
    op = "conv2d_NCHWc"
    N, CIo, H, Wd, ic = _tensor(op, "X", X, 5, "(N, CI // ic, H, W, ic)")
    COo, WCIo, KH, KW, Wic, oc = _tensor(op, "W", W, 6, "(CO // oc, CI // ic, KH, KW, ic, oc)")
    dtype = _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    if (WCIo, Wic) != (CIo, ic):
        raise TensorlangValueError(
            f"{op}: W has {WCIo}x{Wic} input channel blocks, X has {CIo}x{ic} "
            f"(W.shape[1] must equal X.shape[1] and W.shape[4] X.shape[4])")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    Xp = _pad(X, {2: P[0], 3: P[1]}, te.const(0, dtype))
    rco = te.reduce_axis((0, CIo), name="rco")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rci = te.reduce_axis((0, ic), name="rci")
    return te.compute((N, COo, OH, OW, oc), lambda n, fo, y, x, fi: te.sum(
        Xp[n, rco, y * S[0] + ry * D[0], x * S[1] + rx * D[1], rci] * W[fo, rco, ry, rx, rci, fi],
        axis=[rco, ry, rx, rci]), name="conv2d_NCHWc")


# --------------------------------------------------------------------------- pooling

def _pool_args(op, X, kernel, stride, padding):
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    K = _pair(op, "kernel", kernel, 1)
    S = K if stride is None else _pair(op, "stride", stride, 1)
    P = _pair(op, "padding", padding, 0)
    if P[0] > K[0] // 2 or P[1] > K[1] // 2:
        raise TensorlangValueError(
            f"{op}: padding {P[0]}x{P[1]} must be at most half the {K[0]}x{K[1]} kernel")
    OH, OW = _out_size(op, H, W, K, S, P, (1, 1))
    return (N, C, H, W), K, S, P, (OH, OW)


def max_pool2d(X, kernel, stride=None, padding=0):
    """O[n, c, y, x] = max over the kernel window of Xpad (padded with -inf). X: NCHW;
    ``stride`` defaults to ``kernel``."""
    op = "max_pool2d"
    (N, C, _, _), K, S, P, (OH, OW) = _pool_args(op, X, kernel, stride, padding)
    low = te.const(-math.inf, X.dtype) if dt.is_float(X.dtype) else te.min_value(X.dtype)
    Xp = _pad(X, {2: P[0], 3: P[1]}, low)
    ry = te.reduce_axis((0, K[0]), name="ry")
    rx = te.reduce_axis((0, K[1]), name="rx")
    return te.compute((N, C, OH, OW), lambda n, c, y, x: te.max(
        Xp[n, c, y * S[0] + ry, x * S[1] + rx], axis=[ry, rx]), name="max_pool2d")


def avg_pool2d(X, kernel, stride=None, padding=0, count_include_pad=True):
    """The mean over the kernel window of the zero-padded X (NCHW). With
    ``count_include_pad=False`` the divisor is the number of in-bounds elements of the
    window. ``stride`` defaults to ``kernel``."""
    op = "avg_pool2d"
    (N, C, H, W), K, S, P, (OH, OW) = _pool_args(op, X, kernel, stride, padding)
    dtype = _float(op, X)
    if not isinstance(count_include_pad, bool):
        raise TensorlangValueError(
            f"{op}: count_include_pad must be a bool, got {count_include_pad!r}")
    Xp = _pad(X, {2: P[0], 3: P[1]}, te.const(0, dtype))
    ry = te.reduce_axis((0, K[0]), name="ry")
    rx = te.reduce_axis((0, K[1]), name="rx")
    total = te.compute((N, C, OH, OW), lambda n, c, y, x: te.sum(
        Xp[n, c, y * S[0] + ry, x * S[1] + rx], axis=[ry, rx]), name="avg_pool2d_sum")
    if count_include_pad or (P[0] == 0 and P[1] == 0):
        inv = te.const(1.0 / (K[0] * K[1]), dtype)
        return te.compute((N, C, OH, OW), lambda n, c, y, x: total[n, c, y, x] * inv,
                          name="avg_pool2d")

    def count(i, k, s, p, n):       # in-bounds elements of the window starting at i*s - p
        lo = i * s - p
        return te.min(lo + k, te.const(n, "int32")) - te.max(lo, te.const(0, "int32"))
    return te.compute((N, C, OH, OW), lambda n, c, y, x: total[n, c, y, x] / (
        count(y, K[0], S[0], P[0], H) * count(x, K[1], S[1], P[1], W)).astype(dtype),
        name="avg_pool2d")


def global_avg_pool2d(X):
    """O[n, c, 0, 0] = mean of X[n, c, :, :]. X: NCHW; returns (N, C, 1, 1)."""
    op = "global_avg_pool2d"
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    dtype = _float(op, X)
    ry = te.reduce_axis((0, H), name="ry")
    rx = te.reduce_axis((0, W), name="rx")
    total = te.compute((N, C, 1, 1), lambda n, c, y, x: te.sum(X[n, c, ry, rx], axis=[ry, rx]),
                       name="global_avg_pool2d_sum")
    inv = te.const(1.0 / (H * W), dtype)
    return te.compute((N, C, 1, 1), lambda n, c, y, x: total[n, c, y, x] * inv,
                      name="global_avg_pool2d")


# --------------------------------------------------------------------------- normalization

def softmax(X, axis=-1):
    """exp(X - max) / sum(exp(X - max)) along ``axis``."""
    op = "softmax"
    shape = _tensor(op, "X", X)
    _float(op, X)
    a = _axis(op, axis, len(shape))
    mx = _reduce_axis_keep(lambda i: X[i], shape, a, te.max, "softmax_max")
    ex = te.compute(shape, lambda *i: te.exp(X[i] - mx[_at(i, a)]), name="softmax_exp")
    sm = _reduce_axis_keep(lambda i: ex[i], shape, a, te.sum, "softmax_sum")
    return te.compute(shape, lambda *i: ex[i] / sm[_at(i, a)], name="softmax")


def log_softmax(X, axis=-1):
    """X - max - log(sum(exp(X - max))) along ``axis``."""
    op = "log_softmax"
    shape = _tensor(op, "X", X)
    _float(op, X)
    a = _axis(op, axis, len(shape))
    mx = _reduce_axis_keep(lambda i: X[i], shape, a, te.max, "log_softmax_max")
    sm = _reduce_axis_keep(lambda i: te.exp(X[i] - mx[_at(i, a)]), shape, a, te.sum,
                           "log_softmax_sum")
    return te.compute(shape, lambda *i: X[i] - mx[_at(i, a)] - te.log(sm[_at(i, a)]),
                      name="log_softmax")


def layer_norm(X, gamma, beta, axis=-1, epsilon=1e-5):
    """(X - mean) / sqrt(var + epsilon) * gamma + beta, mean and (biased) var over ``axis``;
    gamma and beta have shape (X.shape[axis],)."""
    op = "layer_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = _epsilon(op, epsilon)
    n = shape[a]
    _vector(op, "gamma", gamma, n, dtype, f"X.shape[{axis}]")
    _vector(op, "beta", beta, n, dtype, f"X.shape[{axis}]")
    inv_n = te.const(1.0 / n, dtype)
    total = _reduce_axis_keep(lambda i: X[i], shape, a, te.sum, "layer_norm_sum")
    mean = te.compute(total.shape, lambda *i: total[i] * inv_n, name="layer_norm_mean")

    def dev(i):
        return X[i] - mean[_at(i, a)]
    sq = _reduce_axis_keep(lambda i: dev(i) * dev(i), shape, a, te.sum, "layer_norm_sqsum")
    rstd = te.compute(sq.shape, lambda *i: te.rsqrt(sq[i] * inv_n + te.const(eps, dtype)),
                      name="layer_norm_rstd")
    return te.compute(shape, lambda *i: dev(i) * rstd[_at(i, a)] * gamma[i[a]] + beta[i[a]],
                      name="layer_norm")


def rms_norm(X, gamma, axis=-1, epsilon=1e-6):
    """X / sqrt(mean(X^2) + epsilon) * gamma, the mean over ``axis``; gamma has shape
    (X.shape[axis],)."""
    op = "rms_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = _epsilon(op, epsilon)
    n = shape[a]
    _vector(op, "gamma", gamma, n, dtype, f"X.shape[{axis}]")
    sq = _reduce_axis_keep(lambda i: X[i] * X[i], shape, a, te.sum, "rms_norm_sqsum")
    rrms = te.compute(sq.shape, lambda *i: te.rsqrt(
        sq[i] * te.const(1.0 / n, dtype) + te.const(eps, dtype)), name="rms_norm_rrms")
    return te.compute(shape, lambda *i: X[i] * rrms[_at(i, a)] * gamma[i[a]], name="rms_norm")


def batch_norm(X, gamma, beta, mean, var, axis=1, epsilon=1e-5):
    """Inference batch norm: (X - mean) / sqrt(var + epsilon) * gamma + beta, with per-channel
    vectors of shape (X.shape[axis],)."""
    op = "batch_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = _epsilon(op, epsilon)
    n = shape[a]
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        _vector(op, name, v, n, dtype, f"X.shape[{axis}]")
    scale = te.compute((n,), lambda c: gamma[c] * te.rsqrt(var[c] + te.const(eps, dtype)),
                       name="batch_norm_scale")
    return te.compute(shape, lambda *i: (X[i] - mean[i[a]]) * scale[i[a]] + beta[i[a]],
                      name="batch_norm")
