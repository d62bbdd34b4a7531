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
* Pooling reads its windows from an ``"Xpad"`` stage (tag ``"pool_pad"``, only when
  something is padded or the columns are phase-split: see ``pool_pad``). The pooling,
  normalization and softmax outputs are tagged (``"pool_max"``, ``"pool_avg"``,
  ``"global_pool_avg"``, ``"softmax_output"``, ``"log_softmax_output"``, ``"layer_norm"``,
  ``"rms_norm"``, ``"batch_norm"``): the schedules of ``tensorlang.ops`` find them by tag.
  These definitions are the ones the ``tensorlang.ops`` templates schedule (one definition
  per operator): e.g. softmax multiplies by the reciprocal of the row sum.
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
    "avg_pool2d", "batch_norm", "conv2d_NCHWc", "conv2d_nchw", "conv2d_nchw_packed",
    "conv2d_nhwc", "conv2d_nhwc_packed", "conv2d_output_size", "conv2d_pack_weights",
    "conv2d_pad", "bias_add_nchwc",
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
    if OH <= 0 or OW <= 0:          # (only when the window is larger than the padded input)
        dilated = f" (dilated to {ekh}x{ekw})" if (ekh, ekw) != tuple(K) else ""
        padding = pad[0] if pad[0] == pad[1] else f"{pad[0]}x{pad[1]}"
        raise TensorlangValueError(
            f"{op}: output size {OH}x{OW} must be positive: the {K[0]}x{K[1]} {what}{dilated} "
            f"is larger than the padded {H + 2 * pad[0]}x{W + 2 * pad[1]} input (H={H}, W={W}, "
            f"padding={padding})")
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


def check_epsilon(op: str, epsilon) -> float:
    """``epsilon`` as a float; raises unless it is a finite number >= 0 (the one check of
    every normalization's epsilon)."""
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
    return te.compute((N, CO, OH, OW), f, name="conv2d_nchw", tag=op)


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
        axis=[ry, rx, rc]), name="conv2d_nhwc", tag=op)


def depthwise_conv2d_nchw(X, W, stride=1, padding=0, dilation=1, *, phase_split=False,
                          name="depthwise_conv2d_nchw"):
    """O[n, c*M + m, y, x] = sum_{ry, rx} Xpad[n, c, y*sh + ry*dh, x*sw + rx*dw] * W[c, m, ry, rx].
    X: (N, C, H, W), W: (C, M, KH, KW); returns O: (N, C * M, OH, OW) (tag
    ``"depthwise_conv2d_nchw"``). ``phase_split``: the input padded by ``conv2d_pad`` (stage
    ``Apad``, columns split by phase for a stride > 1), as the CPU schedule reads it."""
    op = "depthwise_conv2d_nchw"
    N, C, H, Wd = _tensor(op, "X", X, 4, "(N, C, H, W)")
    CW, M, KH, KW = _tensor(op, "W", W, 4, "(C, multiplier, KH, KW)")
    dtype = _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    if CW != C:
        raise TensorlangValueError(f"{op}: W has {CW} channels, X has {C} channels")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    if phase_split:
        read = _nchw_reader(conv2d_pad(X, P, S, "NCHW"), S[1])
        at = lambda n, c, y, x, ry, rx: read(n, c, y * S[0] + _mul(ry, D[0]),   # noqa: E731
                                             _mul(rx, D[1]), x)
    else:
        Xp = _pad(X, {2: P[0], 3: P[1]}, te.const(0, dtype))
        at = lambda n, c, y, x, ry, rx: Xp[n, c, y * S[0] + ry * D[0],           # noqa: E731
                                           x * S[1] + rx * D[1]]
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")

    def f(n, co, y, x):
        c, m = (co, 0) if M == 1 else (co // M, co % M)
        return te.sum(at(n, c, y, x, ry, rx) * W[c, m, ry, rx], axis=[ry, rx])
    return te.compute((N, C * M, OH, OW), f, name=name, tag=op)

# --------------------------------------------------------------------------- conv layout variants
# The stages the CPU schedules of ``tensorlang.ops`` build a convolution from: the same
# semantics as the plain definitions above (tests check them equal), with the padded input
# and the weights in the layouts the micro-kernels read, and the accumulator blocked by
# output channels. Every stage is tagged, so that a schedule finds it from the outputs.

def _mul(v, k: int):
    """``v * k``, or ``v`` itself when k is 1."""
    return v if k == 1 else v * k


def conv2d_output_size(H, W, KH, KW, stride=1, padding=0, dilation=1, op: str = "conv2d"):
    """(OH, OW) of a KHxKW convolution of an HxW input; raises naming ``op`` unless both are
    positive (the one window check of every convolution, compute and operator)."""
    S, P, D = _conv_args(op, stride, padding, dilation)
    return _out_size(op, H, W, (KH, KW), S, P, D)


_PAD_AXES = {"NCHW": (2, 3), "NHWC": (1, 2), "NCHWc": (2, 3)}


def conv2d_pad(X, padding, stride=1, layout: str = "NCHW", name: str = "Apad"):
    """The zero-padded input of a convolution (tag ``"conv2d_pad"``), X itself when there is
    nothing to build. ``layout`` names X's layout (``"NCHW"``, ``"NHWC"``, ``"NCHWc"``).

    For NCHW with a column stride S > 1 the columns are stored split by phase,
    ``P[n, c, y, p, q] = Xpad[n, c, y, q * S + p]`` (shape ``(N, C, Hp, S, ceil(Wp / S))``,
    zero past the row), so that the input columns a vector of output columns reads
    (``x * S + rx``) are contiguous: ``P[n, c, y, rx % S, x + rx // S]``."""
    op = "conv2d_pad"
    if layout not in _PAD_AXES:
        raise TensorlangValueError(f"{op}: layout must be one of {list(_PAD_AXES)}, got {layout!r}")
    shape = _tensor(op, "X", X, 5 if layout == "NCHWc" else 4)
    ph, pw = _pair(op, "padding", padding, 0)
    _, sw = _pair(op, "stride", stride, 1)
    ha, wa = _PAD_AXES[layout]
    dtype = X.dtype
    if layout != "NCHW" or sw == 1:
        P = _pad(X, {ha: ph, wa: pw}, te.const(0, dtype), name=name)
        if P is not X:
            P.op.tag = "conv2d_pad"
        return P
    N, C, H, W = shape
    Wp = W + 2 * pw

    def val(n, c, y, x):
        conds = ([y >= ph, y < H + ph] if ph else []) + ([x >= pw, x < W + pw] if pw else [])
        if not pw and Wp % sw:                    # the last phase column lies past the row
            conds.append(x < W)
        if not conds:
            return X[n, c, y, x]
        return te.if_then_else(conds[0] if len(conds) == 1 else te.all(*conds),
                               X[n, c, y - ph if ph else y, x - pw if pw else x],
                               te.const(0, dtype))
    return te.compute((N, C, H + 2 * ph, sw, -(-Wp // sw)),
                      lambda n, c, y, p, q: val(n, c, y, q * sw + p), name=name, tag="conv2d_pad")


def conv2d_pack_weights(W, fb, layout: str = "OIHW", name: str = "Wpack"):
    """Convolution weights repacked into panels of ``fb`` output channels (tag
    ``"conv2d_pack_weights"``), zero past the last channel: OIHW ``(CO, C, KH, KW)`` gives
    ``Wpack[f // fb, c, ry, rx, f % fb]`` of shape ``(ceil(CO / fb), C, KH, KW, fb)``; HWIO
    ``(KH, KW, C, CO)`` gives ``Wpack[f // fb, ry, rx, c, f % fb]``. The weight layout of
    ``conv2d_nchw_packed`` / ``conv2d_nhwc_packed``."""
    op = "conv2d_pack_weights"
    if layout not in ("OIHW", "HWIO"):
        raise TensorlangValueError(f"{op}: layout must be 'OIHW' or 'HWIO', got {layout!r}")
    shape = _tensor(op, "W", W, 4)
    fb = _int(op, "fb", fb, 1)
    zero = te.const(0, W.dtype)
    if layout == "OIHW":
        CO, C, KH, KW = shape
        return te.compute((-(-CO // fb), C, KH, KW, fb), lambda fo, c, i, j, fi: te.if_then_else(
            fo * fb + fi < CO, W[fo * fb + fi, c, i, j], zero), name=name,
            tag="conv2d_pack_weights")
    KH, KW, C, CO = shape
    return te.compute((-(-CO // fb), KH, KW, C, fb), lambda fo, i, j, c, fi: te.if_then_else(
        fo * fb + fi < CO, W[i, j, c, fo * fb + fi], zero), name=name, tag="conv2d_pack_weights")


def _packed_weights(op, W, ndim_plain, out_channels, layout_name):
    """(CO, fb or None, shape) of plain (``ndim_plain``-D) or packed (one more dim) weights."""
    shape = _tensor(op, "W", W)
    if len(shape) == ndim_plain:
        return None, shape
    if len(shape) != ndim_plain + 1:
        raise TensorlangValueError(f"{op}: W must be {ndim_plain}-D {layout_name} or "
                                   f"{ndim_plain + 1}-D packed, got shape {shape}")
    fb = shape[-1]
    co = shape[0] * fb if out_channels is None else _int(op, "out_channels", out_channels, 1)
    if not (shape[0] - 1) * fb < co <= shape[0] * fb:
        raise TensorlangValueError(f"{op}: out_channels={co} does not fit the packed weights' "
                                   f"{shape[0]} panels of {fb}")
    return (co, fb), shape


def conv2d_nchw_packed(X, W, stride=1, padding=0, dilation=1, groups=1, *, out_channels=None,
                       layout: str = "NCHW", name: str = "conv2d_nchw"):
    """``conv2d_nchw`` as the CPU schedules compute it (tag ``"conv2d_nchw"``): the input
    padded by ``conv2d_pad`` (phase split for a column stride > 1), the weights OIHW or
    packed by ``conv2d_pack_weights`` (``(ceil(CO / fb), C // groups, KH, KW, fb)``; then
    ``out_channels`` is CO, default all the panels' channels), and the output in ``layout``:
    ``"NCHW"`` (N, CO, OH, OW); ``"NCP"`` (N, CO, OH * OW), pixel ``p = y * OW + x``;
    ``"blocked"`` (N, ceil(CO / fb), OH, OW, fb), channel ``fo * fb + fi``; ``"flat"``
    (N, ceil(CO / fb), OH * OW, fb). The blocked layouts need packed weights and hold zeros
    past CO."""
    op = "conv2d_nchw"
    N, C, H, Wd = _tensor(op, "X", X, 4, "(N, C, H, W)")
    packed, wshape = _packed_weights(op, W, 4, out_channels, "(CO, C // groups, KH, KW)")
    CO, fb = packed if packed else (wshape[0], None)
    _, CIg, KH, KW = wshape[:4]
    _same_dtype(op, X, W=W)
    (Sh, Sw), P, (Dh, Dw) = _conv_args(op, stride, padding, dilation)
    groups = _int(op, "groups", groups, 1)
    if C % groups or CO % groups or CIg != C // groups:
        raise TensorlangValueError(f"{op}: groups={groups} must divide X's {C} channels and "
                                   f"{CO} output channels, and W have C // groups = "
                                   f"{C // groups} input channels per group (it has {CIg})")
    if layout not in ("NCHW", "NCP", "blocked", "flat"):
        raise TensorlangValueError(f"{op}: layout must be 'NCHW', 'NCP', 'blocked' or 'flat', "
                                   f"got {layout!r}")
    if layout in ("blocked", "flat") and fb is None:
        raise TensorlangValueError(f"{op}: the {layout} layout needs packed weights")
    OH, OW = _out_size(op, H, Wd, (KH, KW), (Sh, Sw), P, (Dh, Dw))
    read = _nchw_reader(conv2d_pad(X, P, (Sh, Sw), "NCHW"), Sw)
    rc = te.reduce_axis((0, CIg), name="rc")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    red = [rc, ry, rx]
    if layout == "flat":
        return te.compute((N, -(-CO // fb), OH * OW, fb), lambda n, fo, p, fi: te.sum(
            read(n, rc, p // OW * Sh + ry * Dh, rx * Dw, p % OW) * W[fo, rc, ry, rx, fi],
            axis=red), name=name, tag=op)
    if layout == "blocked":
        return te.compute((N, -(-CO // fb), OH, OW, fb), lambda n, fo, y, x, fi: te.sum(
            read(n, rc, y * Sh + ry * Dh, rx * Dw, x) * W[fo, rc, ry, rx, fi], axis=red),
            name=name, tag=op)
    if fb is None:
        weight = lambda f, c, i, j: W[f, c, i, j]                          # noqa: E731
    else:
        weight = lambda f, c, i, j: W[f // fb, c, i, j, f % fb]            # noqa: E731
    cog = CO // groups
    ch = (lambda f: rc) if groups == 1 else (lambda f: f // cog * CIg + rc)
    if layout == "NCP":
        return te.compute((N, CO, OH * OW), lambda n, f, p: te.sum(
            read(n, ch(f), p // OW * Sh + ry * Dh, rx * Dw, p % OW) * weight(f, rc, ry, rx),
            axis=red), name=name, tag=op)
    return te.compute((N, CO, OH, OW), lambda n, f, y, x: te.sum(
        read(n, ch(f), y * Sh + ry * Dh, rx * Dw, x) * weight(f, rc, ry, rx), axis=red),
        name=name, tag=op)


def conv2d_nhwc_packed(X, W, stride=1, padding=0, dilation=1, *, out_channels=None,
                       name: str = "conv2d_nhwc"):
    """``conv2d_nhwc`` as the CPU schedule computes it (tag ``"conv2d_nhwc"``): the input
    padded by ``conv2d_pad`` (stage ``Apad``), the weights HWIO or packed by
    ``conv2d_pack_weights(W, fb, "HWIO")`` (``(ceil(CO / fb), KH, KW, C, fb)``; then
    ``out_channels`` is CO). Returns O: (N, OH, OW, CO)."""
    op = "conv2d_nhwc"
    N, H, Wd, C = _tensor(op, "X", X, 4, "(N, H, W, C)")
    packed, wshape = _packed_weights(op, W, 4, out_channels, "(KH, KW, C, CO)")
    if packed:
        (CO, fb), (_, KH, KW, CI, _) = packed, wshape
        weight = lambda i, j, c, f: W[f // fb, i, j, c, f % fb]            # noqa: E731
    else:
        KH, KW, CI, CO = wshape
        weight = lambda i, j, c, f: W[i, j, c, f]                          # noqa: E731
    _same_dtype(op, X, W=W)
    (Sh, Sw), P, (Dh, Dw) = _conv_args(op, stride, padding, dilation)
    if CI != C:
        raise TensorlangValueError(f"{op}: W has {CI} input channels, X has {C} channels")
    OH, OW = _out_size(op, H, Wd, (KH, KW), (Sh, Sw), P, (Dh, Dw))
    Xp = conv2d_pad(X, P, 1, "NHWC")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rc = te.reduce_axis((0, C), name="rc")
    return te.compute((N, OH, OW, CO), lambda n, y, x, f: te.sum(
        Xp[n, y * Sh + _mul(ry, Dh), x * Sw + _mul(rx, Dw), rc] * weight(ry, rx, rc, f),
        axis=[ry, rx, rc]), name=name, tag=op)


def _nchw_reader(Xp, sw: int):
    """``read(n, c, iy, rx, x)``: the padded NCHW input (``conv2d_pad``'s stage, or X) at row
    ``iy``, column ``x * sw + rx``."""
    if sw == 1:
        return lambda n, c, iy, rx, x: Xp[n, c, iy, x + rx]
    return lambda n, c, iy, rx, x: Xp[n, c, iy, rx % sw, x + rx // sw]


# --------------------------------------------------------------------------- NCHWc layout

def bias_add(X, b, axis=1):
    """X + b broadcast along ``axis`` (TVM's ``nn.bias_add``): b has X's size on that axis."""
    shape = _shape(X)
    ax = _axis("bias_add", axis, len(shape))
    _vector("bias_add", "b", b, shape[ax], X.dtype, f"X's size on axis {ax}")
    return te.compute(shape, lambda *i: X[i] + b[i[ax]], name="T_bias_add", tag="broadcast")


def nchw_to_nchwc(X, c):
    """Y[n, C_o, h, w, c_i] = X[n, C_o * c + c_i, h, w]: (N, C, H, W) -> (N, C // c, H, W, c)."""
    op = "nchw_to_nchwc"
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    c = _int(op, "c", c, 1)
    if C % c:
        raise TensorlangValueError(f"{op}: X's {C} channels are not divisible by c={c}")
    return te.compute((N, C // c, H, W, c),
                      lambda n, co, h, w, ci: X[n, co * c + ci, h, w], name="nchwc",
                      tag="layout_transform")


def nchwc_to_nchw(X):
    """Y[n, ch, h, w] = X[n, ch // c, h, w, ch % c]: (N, C // c, H, W, c) -> (N, C, H, W)."""
    op = "nchwc_to_nchw"
    N, CO, H, W, c = _tensor(op, "X", X, 5, "(N, C // c, H, W, c)")
    return te.compute((N, CO * c, H, W),
                      lambda n, ch, h, w: X[n, ch // c, h, w, ch % c], name="nchw",
                      tag="layout_transform")


def bias_add_nchwc(X, b):
    """X + b on a channel-blocked tensor: X (N, C // c, H, W, c), b (C,) read at channel
    ``co * c + ci`` (the bias of ``conv2d_NCHWc``'s output)."""
    op = "bias_add_nchwc"
    N, CO, H, W, c = _tensor(op, "X", X, 5, "(N, C // c, H, W, c)")
    _vector(op, "b", b, CO * c, X.dtype, "X's channels")
    return te.compute((N, CO, H, W, c), lambda n, co, h, w, ci: X[n, co, h, w, ci]
                      + b[co * c + ci], name="T_bias_add", tag="broadcast")


def kernel_to_oihw_ic_oc(W, ic, oc, name="kernel_oihw_ic_oc"):
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
                      name=name, tag="conv2d_pack_weights")


def conv2d_NCHWc(X, W, stride=1, padding=0, dilation=1, *, name="conv2d_NCHWc"):
    """Blocked-layout convolution. X: (N, CI // ic, H, W, ic), W: (CO // oc, CI // ic, KH, KW,
    ic, oc); returns O: (N, CO // oc, OH, OW, oc) with
    O[n, fo, y, x, fi] = sum_{co, ry, rx, ci} Xpad[n, co, y*sh + ry*dh, x*sw + rx*dw, ci]
    * W[fo, co, ry, rx, ci, fi]."""
    op = "conv2d_NCHWc"
    N, CIo, H, Wd, ic = _tensor(op, "X", X, 5, "(N, CI // ic, H, W, ic)")
    COo, WCIo, KH, KW, Wic, oc = _tensor(op, "W", W, 6, "(CO // oc, CI // ic, KH, KW, ic, oc)")
    _same_dtype(op, X, W=W)
    S, P, D = _conv_args(op, stride, padding, dilation)
    if (WCIo, Wic) != (CIo, ic):
        raise TensorlangValueError(
            f"{op}: W has {WCIo}x{Wic} input channel blocks, X has {CIo}x{ic} "
            f"(W.shape[1] must equal X.shape[1] and W.shape[4] X.shape[4])")
    OH, OW = _out_size(op, H, Wd, (KH, KW), S, P, D)
    Xp = conv2d_pad(X, P, S, "NCHWc")
    rco = te.reduce_axis((0, CIo), name="rco")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rci = te.reduce_axis((0, ic), name="rci")
    return te.compute((N, COo, OH, OW, oc), lambda n, fo, y, x, fi: te.sum(
        Xp[n, rco, y * S[0] + _mul(ry, D[0]), x * S[1] + _mul(rx, D[1]), rci]
        * W[fo, rco, ry, rx, rci, fi], axis=[rco, ry, rx, rci]), name=name, tag=op)


# --------------------------------------------------------------------------- pooling

def pool_args(op, X, kernel, stride, padding):
    """Checks a pooling call: ``((N, C, H, W), K, S, P, (OH, OW))``, the pairs as tuples."""
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    K = _pair(op, "kernel", kernel, 1)
    S = K if stride is None else _pair(op, "stride", stride, 1)
    P = _pair(op, "padding", padding, 0)
    if P[0] > K[0] // 2 or P[1] > K[1] // 2:
        raise TensorlangValueError(
            f"{op}: padding {P[0]}x{P[1]} must be at most half the {K[0]}x{K[1]} kernel")
    OH, OW = _out_size(op, H, W, K, S, P, (1, 1))
    return (N, C, H, W), K, S, P, (OH, OW)


def _pool_phase(op: str, phase, S) -> bool:
    if phase is None:
        return S[1] > 1
    if not isinstance(phase, bool):
        raise TensorlangValueError(f"{op}: phase must be a bool or None, got {phase!r}")
    return phase and S[1] > 1


def pool_pad(X, P, S: int, fill, phase: bool):
    """The padded input of a pooling window, ``(Xpad, read)``: ``read(n, c, iy, rx, x)`` is
    the padded X at row ``iy``, column ``x * S + rx`` (``S`` the column stride). ``Xpad`` is
    None when nothing is padded and the columns are not split (``read`` reads X). With
    ``phase`` the columns are **split by phase**: ``Xpad[n, c, y, p, q] = padded[n, c, y,
    q * S + p]``, so that window column ``rx`` of consecutive outputs x is
    ``Xpad[.., rx % S, x + rx // S]``, contiguous in x (a vector load, not a strided gather)."""
    N, C, H, W = _shape(X)
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
                        lambda n, c, y, p, q: val(n, c, y, q * S + p), name="Xpad",
                        tag="pool_pad")
        return Pd, lambda n, c, iy, rx, x: Pd[n, c, iy, rx % S, x + rx // S]
    if not (P[0] or P[1]):
        return None, lambda n, c, iy, rx, x: X[n, c, iy, x * S + rx]
    Pd = te.compute((N, C, Hp, Wp), val, name="Xpad", tag="pool_pad")
    return Pd, lambda n, c, iy, rx, x: Pd[n, c, iy, x * S + rx]


def _window(X, K, S, P, OH, OW, fill, phase, reducer, name, tag):
    N, C = _shape(X)[:2]
    _, read = pool_pad(X, P, S[1], fill, phase)
    ry = te.reduce_axis((0, K[0]), name="ry")
    rx = te.reduce_axis((0, K[1]), name="rx")
    return te.compute((N, C, OH, OW), lambda n, c, y, x: reducer(
        read(n, c, y * S[0] + ry, rx, x), axis=[ry, rx]), name=name, tag=tag)


def max_pool2d(X, kernel, stride=None, padding=0, phase=None):
    """O[n, c, y, x] = max over the kernel window of Xpad (padded with -inf). X: NCHW;
    ``stride`` defaults to ``kernel``. ``phase`` (None: when the column stride is > 1) reads
    the window from a phase-split padded stage (see ``pool_pad``); False reads with a
    stride. The output stage is tagged ``"pool_max"``."""
    op = "max_pool2d"
    _, K, S, P, (OH, OW) = pool_args(op, X, kernel, stride, padding)
    low = te.const(-math.inf, X.dtype) if dt.is_float(X.dtype) else te.min_value(X.dtype)
    return _window(X, K, S, P, OH, OW, low, _pool_phase(op, phase, S), te.max, "max_pool2d",
                   "pool_max")


def avg_pool2d(X, kernel, stride=None, padding=0, count_include_pad=True, phase=None):
    """The mean over the kernel window of the zero-padded X (NCHW). With
    ``count_include_pad=False`` the divisor is the number of in-bounds elements of the
    window. ``stride`` defaults to ``kernel``; ``phase`` as for ``max_pool2d``. Two stages:
    the window sum (``"pool_sum"``) and the output (``"pool_avg"``)."""
    op = "avg_pool2d"
    (N, C, H, W), K, S, P, (OH, OW) = pool_args(op, X, kernel, stride, padding)
    dtype = _float(op, X)
    if not isinstance(count_include_pad, bool):
        raise TensorlangValueError(
            f"{op}: count_include_pad must be a bool, got {count_include_pad!r}")
    total = _window(X, K, S, P, OH, OW, te.const(0, dtype), _pool_phase(op, phase, S), te.sum,
                    "avg_pool2d_sum", "pool_sum")
    if count_include_pad or (P[0] == 0 and P[1] == 0):
        inv = te.const(1.0 / (K[0] * K[1]), dtype)
        return te.compute((N, C, OH, OW), lambda n, c, y, x: total[n, c, y, x] * inv,
                          name="avg_pool2d", tag="pool_avg")

    def count(i, k, s, p, n):       # in-bounds elements of the window starting at i*s - p
        lo = i * s - p
        return te.min(lo + k, te.const(n, "int32")) - te.max(lo, te.const(0, "int32"))
    return te.compute((N, C, OH, OW), lambda n, c, y, x: total[n, c, y, x] / (
        count(y, K[0], S[0], P[0], H) * count(x, K[1], S[1], P[1], W)).astype(dtype),
        name="avg_pool2d", tag="pool_avg")


def global_avg_pool2d(X):
    """O[n, c, 0, 0] = mean of X[n, c, :, :]. X: NCHW; returns (N, C, 1, 1): the plane sums
    (``"global_avg_pool2d_sum"``, tag ``"comm_reduce"``) times 1 / (H * W) (tag
    ``"global_pool_avg"``)."""
    op = "global_avg_pool2d"
    N, C, H, W = _tensor(op, "X", X, 4, "(N, C, H, W)")
    dtype = _float(op, X)
    ry = te.reduce_axis((0, H), name="ry")
    rx = te.reduce_axis((0, W), name="rx")
    total = te.compute((N, C, 1, 1), lambda n, c, y, x: te.sum(X[n, c, ry, rx], axis=[ry, rx]),
                       name="global_avg_pool2d_sum", tag="comm_reduce")
    inv = te.const(1.0 / (H * W), dtype)
    return te.compute((N, C, 1, 1), lambda n, c, y, x: total[n, c, y, x] * inv,
                      name="global_avg_pool2d", tag="global_pool_avg")


# --------------------------------------------------------------------------- normalization
#
# Each operator's output stage (tagged with the operator's name, ``"softmax_output"`` and
# ``"log_softmax_output"`` for the softmaxes) is element-wise over per-row (keep-dims)
# reductions and per-row scalars; the formulas are those the fast schedules evaluate: a
# division by the row sum is a multiplication by its reciprocal (computed once per row),
# log_softmax subtracts one per-row offset, batch_norm is one multiply-add per element.

def softmax(X, axis=-1):
    """exp(X - max) * (1 / sum(exp(X - max))) along ``axis``."""
    op = "softmax"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    mx = _reduce_axis_keep(lambda i: X[i], shape, a, te.max, "softmax_max")
    ex = te.compute(shape, lambda *i: te.exp(X[i] - mx[_at(i, a)]), name="softmax_exp")
    sm = _reduce_axis_keep(lambda i: ex[i], shape, a, te.sum, "softmax_sum")
    rcp = te.compute(sm.shape, lambda *i: te.const(1, dtype) / sm[i], name="softmax_rcp")
    return te.compute(shape, lambda *i: ex[i] * rcp[_at(i, a)], name="softmax",
                      tag="softmax_output")


def log_softmax(X, axis=-1):
    """X - (max + log(sum(exp(X - max)))) along ``axis`` (the offset once per row)."""
    op = "log_softmax"
    shape = _tensor(op, "X", X)
    _float(op, X)
    a = _axis(op, axis, len(shape))
    mx = _reduce_axis_keep(lambda i: X[i], shape, a, te.max, "log_softmax_max")
    sm = _reduce_axis_keep(lambda i: te.exp(X[i] - mx[_at(i, a)]), shape, a, te.sum,
                           "log_softmax_sum")
    off = te.compute(sm.shape, lambda *i: mx[i] + te.log(sm[i]), name="log_softmax_offset")
    return te.compute(shape, lambda *i: X[i] - off[_at(i, a)], name="log_softmax",
                      tag="log_softmax_output")


def layer_norm(X, gamma, beta, axis=-1, epsilon=1e-5):
    """(X - mean) * rsqrt(var + epsilon) * gamma + beta, mean and (biased) var over ``axis``
    (var from the squared deviations, a second pass); gamma and beta have shape
    (X.shape[axis],)."""
    op = "layer_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = check_epsilon(op, epsilon)
    n = shape[a]
    _vector(op, "gamma", gamma, n, dtype, f"X.shape[{axis}]")
    _vector(op, "beta", beta, n, dtype, f"X.shape[{axis}]")
    inv_n = te.const(1.0 / n, dtype)
    total = _reduce_axis_keep(lambda i: X[i], shape, a, te.sum, "layer_norm_sum")

    def dev(i):
        return X[i] - total[_at(i, a)] * inv_n
    sq = _reduce_axis_keep(lambda i: dev(i) * dev(i), shape, a, te.sum, "layer_norm_sqsum")
    rstd = te.compute(sq.shape, lambda *i: te.rsqrt(sq[i] * inv_n + te.const(eps, dtype)),
                      name="layer_norm_rstd")
    return te.compute(shape, lambda *i: dev(i) * rstd[_at(i, a)] * gamma[i[a]] + beta[i[a]],
                      name="layer_norm", tag="layer_norm")


def rms_norm(X, gamma, axis=-1, epsilon=1e-6):
    """X * rsqrt(mean(X^2) + epsilon) * gamma, the mean over ``axis``; gamma has shape
    (X.shape[axis],)."""
    op = "rms_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = check_epsilon(op, epsilon)
    n = shape[a]
    _vector(op, "gamma", gamma, n, dtype, f"X.shape[{axis}]")
    sq = _reduce_axis_keep(lambda i: X[i] * X[i], shape, a, te.sum, "rms_norm_sqsum")
    rrms = te.compute(sq.shape, lambda *i: te.rsqrt(
        sq[i] * te.const(1.0 / n, dtype) + te.const(eps, dtype)), name="rms_norm_rrms")
    return te.compute(shape, lambda *i: X[i] * rrms[_at(i, a)] * gamma[i[a]], name="rms_norm",
                      tag="rms_norm")


def batch_norm(X, gamma, beta, mean, var, axis=1, epsilon=1e-5):
    """Inference batch norm, (X - mean) / sqrt(var + epsilon) * gamma + beta, as
    X * scale + shift with the per-channel scale = gamma * rsqrt(var + epsilon) and
    shift = beta - mean * scale (vectors of shape (X.shape[axis],))."""
    op = "batch_norm"
    shape = _tensor(op, "X", X)
    dtype = _float(op, X)
    a = _axis(op, axis, len(shape))
    eps = check_epsilon(op, epsilon)
    n = shape[a]
    for name, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var)):
        _vector(op, name, v, n, dtype, f"X.shape[{axis}]")
    scale = te.compute((n,), lambda c: gamma[c] * te.rsqrt(var[c] + te.const(eps, dtype)),
                       name="batch_norm_scale")
    shift = te.compute((n,), lambda c: beta[c] - mean[c] * scale[c], name="batch_norm_shift")
    return te.compute(shape, lambda *i: X[i] * scale[i[a]] + shift[i[a]],
                      name="batch_norm", tag="batch_norm")
