"""Neural-network ops: convolutions, dense/matmul, normalisation, softmax, pools, reductions.

The ops with a tuned template of ``tensorlang.ops`` say how to instantiate it
(``KernelSpec``): the template's workload comes from the call's input shapes and
attributes, and the graph's element-wise epilogue is passed as ``epilogue=``, so a fused
group is one call of the tuned kernel. ``KernelSpec.rows``: the template works on a
(rows, cols) matrix (dense over an N-D input, softmax/layer_norm over the last axis), so the
group's tensors are viewed as matrices. ``KernelSpec.weight``: the input that a build may
pack once at load time (``weights="prepacked"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import ops
from ...ops import compute as C
from ...te.expr import get_const_tuple
from ..ir import GraphError, TensorType
from .common import infer_by_compute, same_dtype
from .registry import (OpDef, Pattern, a_bool, a_float, a_int, a_opt_int, a_opt_ints, a_pair,
                       register)


@dataclass(frozen=True)
class KernelSpec:
    build: object           # (in_types, attrs, epilogue, weights) -> (schedule, args)
    rows: bool = False      # the template sees the output as (prod(shape[:-1]), shape[-1])
    weight: int | None = None   # the input that can be pre-packed, when it is a constant


def _prod(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --------------------------------------------------------------------------- convolution

CONV_ATTRS = {"stride": (1, a_pair(1)), "padding": (0, a_pair(0)), "dilation": (1, a_pair(1)),
              "groups": (1, a_int(1))}


def conv2d_ref(x, w, stride, padding, dilation, groups):
    """NCHW x OIHW in float64, one einsum per kernel tap (all groups at once)."""
    N, CI, H, W = x.shape
    CO, CIg, KH, KW = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, padding, dilation
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    OH = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1
    OW = (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    G, og = groups, CO // groups
    wg = w.astype(np.float64).reshape(G, og, CIg, KH, KW)
    out = np.zeros((N, G, og, OH, OW))
    for ky in range(KH):
        for kx in range(KW):
            patch = xp[:, :, ky * dh: ky * dh + sh * (OH - 1) + 1: sh,
                       kx * dw: kx * dw + sw * (OW - 1) + 1: sw].reshape(N, G, CIg, OH, OW)
            out += np.einsum("ngchw,goc->ngohw", patch, wg[:, :, :, ky, kx])
    return out.reshape(N, CO, OH, OW).astype(x.dtype)


def _conv_compute(x, a):
    return C.conv2d_nchw(x[0], x[1], a["stride"], a["padding"], a["dilation"], a["groups"])


def square(a) -> bool:
    """Whether stride, padding and dilation are the same along H and W (the templates take
    one int each)."""
    return all(a[k][0] == a[k][1] for k in ("stride", "padding", "dilation") if k in a)


def _conv_kernel(types, a, epilogue, weights):
    (N, CI, H, W), (CO, _, KH, KW) = types[0].shape, types[1].shape
    dtype = types[0].dtype
    if not square(a):
        return None
    (s, _), (p, _), (d, _) = a["stride"], a["padding"], a["dilation"]
    if a["groups"] == CI == CO and a["groups"] > 1 and d == 1:
        if weights != "inline":
            return None             # the depthwise template reads its weights as they are
        return ops.depthwise_conv2d_nchw(N, CI, H, W, KH, KW, s, p, dtype, epilogue=epilogue)
    return ops.conv2d_nchw(N, CI, H, W, CO, KH, KW, s, p, d, a["groups"], dtype,
                           epilogue=epilogue, weights=weights)


register(OpDef(
    "conv2d", Pattern.OUT_FUSABLE, infer_by_compute(_conv_compute), _conv_compute,
    lambda x, a: conv2d_ref(x[0], x[1], a["stride"], a["padding"], a["dilation"], a["groups"]),
    CONV_ATTRS, arity=2, kernel=KernelSpec(_conv_kernel, weight=1),
    doc="2-D convolution, NCHW data and OIHW weights; symmetric zero padding."))


def _nchwc_compute(x, a):
    return C.conv2d_NCHWc(x[0], x[1], a["stride"], a["padding"], a["dilation"])


def _nchwc_ref(x, a):
    X, Wb = x
    n, cio, h, w, ic = X.shape
    coo, _, kh, kw, _, oc = Wb.shape
    xs = X.transpose(0, 1, 4, 2, 3).reshape(n, cio * ic, h, w)
    ws = Wb.transpose(0, 5, 1, 4, 2, 3).reshape(coo * oc, cio * ic, kh, kw)
    y = conv2d_ref(xs, ws, a["stride"], a["padding"], a["dilation"], 1)
    return np.ascontiguousarray(y.reshape(n, coo, oc, *y.shape[2:]).transpose(0, 1, 3, 4, 2))


def _nchwc_kernel(types, a, epilogue, weights):
    (sh, sw), (ph, pw) = a["stride"], a["padding"]
    if weights != "inline" or a["dilation"] != (1, 1) or sh != sw or ph != pw:
        return None             # the template takes one stride and one padding (ints)
    N, CIo, H, W, ic = types[0].shape
    COo, _, KH, KW, _, oc = types[1].shape
    return ops.conv2d_NCHWc(N, CIo * ic, H, W, COo * oc, KH, KW, sh, ph,
                            ic_block=ic, oc_block=oc, dtype=types[0].dtype, epilogue=epilogue,
                            weights="prepacked")


register(OpDef(
    "conv2d_NCHWc", Pattern.OUT_FUSABLE, infer_by_compute(_nchwc_compute), _nchwc_compute,
    _nchwc_ref, {k: v for k, v in CONV_ATTRS.items() if k != "groups"}, arity=2,
    kernel=KernelSpec(_nchwc_kernel),
    doc="Convolution in the blocked layout: data (N, CI/ic, H, W, ic), weights "
        "(CO/oc, CI/ic, KH, KW, ic, oc) (OIHW{ic}i{oc}o); output (N, CO/oc, OH, OW, oc)."))


# --------------------------------------------------------------------------- products

def _dense_compute(x, a):
    X, W = x
    shape = get_const_tuple(X.shape)
    if len(shape) == 2:
        return C.dense(X, W)
    Y = C.dense(C.reshape(X, (_prod(shape[:-1]), shape[-1])), W)
    return C.reshape(Y, (*shape[:-1], get_const_tuple(W.shape)[0]))


def _dense_kernel(types, a, epilogue, weights):
    x, w = types
    return ops.dense(_prod(x.shape[:-1]), w.shape[0], w.shape[1], dtype=x.dtype,
                     epilogue=epilogue, weights=weights)


register(OpDef(
    "dense", Pattern.OUT_FUSABLE, infer_by_compute(_dense_compute), _dense_compute,
    lambda x, a: np.matmul(x[0], x[1].T).astype(x[0].dtype), arity=2,
    kernel=KernelSpec(_dense_kernel, rows=True, weight=1),
    doc="x (..., K) times w (N, K) transposed: (..., N), as torch's linear without bias."))


def _matmul_infer(types, attrs):
    a, b = types
    same_dtype("matmul", types)
    if len(a.shape) < 2 or len(b.shape) < 2:
        raise GraphError(f"both inputs need at least 2 dimensions, got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise GraphError(f"a's {a.shape[-1]} columns do not match b's {b.shape[-2]} rows "
                         f"(a {a.shape}, b {b.shape})")
    if len(b.shape) > 2 and a.shape[:-2] != b.shape[:-2]:
        raise GraphError(f"the batch dimensions {a.shape[:-2]} and {b.shape[:-2]} differ; "
                         "broadcast b first (G.op.broadcast_to)")
    return TensorType((*a.shape[:-1], b.shape[-1]), a.dtype)


def _matmul_compute(x, a):
    A, B = x
    sa, sb = get_const_tuple(A.shape), get_const_tuple(B.shape)
    if len(sb) == 2:
        A2 = C.reshape(A, (_prod(sa[:-1]), sa[-1])) if len(sa) > 2 else A
        return C.reshape(C.matmul(A2, B), (*sa[:-1], sb[-1])) if len(sa) > 2 else C.matmul(A2, B)
    batch = _prod(sa[:-2])
    Y = C.batch_matmul(C.reshape(A, (batch, *sa[-2:])), C.reshape(B, (batch, *sb[-2:])))
    return C.reshape(Y, (*sa[:-1], sb[-1]))


def _matmul_kernel(types, a, epilogue, weights):
    x, w = types
    M, K, N = x.shape[-2], x.shape[-1], w.shape[-1]
    if len(w.shape) == 2:
        return ops.matmul(_prod(x.shape[:-1]), N, K, x.dtype, epilogue=epilogue, weights=weights)
    if weights != "inline":
        return None
    return ops.batch_matmul(_prod(x.shape[:-2]), M, N, K, x.dtype, epilogue=epilogue)


register(OpDef(
    "matmul", Pattern.OUT_FUSABLE, _matmul_infer, _matmul_compute,
    lambda x, a: np.matmul(x[0], x[1]).astype(x[0].dtype), arity=2,
    kernel=KernelSpec(_matmul_kernel, rows=True, weight=1),
    doc="numpy's matmul: a (..., M, K) times b (K, N) or (..., K, N) with a's batch."))


def _bmm_compute(x, a):
    return C.batch_matmul(x[0], x[1], a["transpose_b"])


def _bmm_kernel(types, a, epilogue, weights):
    x, w = types
    if a["transpose_b"] or weights != "inline":
        return None
    B, M, K = x.shape
    return ops.batch_matmul(B, M, w.shape[2], K, x.dtype, epilogue=epilogue)


register(OpDef(
    "batch_matmul", Pattern.OUT_FUSABLE, infer_by_compute(_bmm_compute), _bmm_compute,
    lambda x, a: np.matmul(x[0], np.swapaxes(x[1], 1, 2) if a["transpose_b"] else x[1]
                           ).astype(x[0].dtype),
    {"transpose_b": (False, a_bool)}, arity=2, kernel=KernelSpec(_bmm_kernel),
    doc="a (B, M, K) times b (B, K, N), or b (B, N, K) transposed with transpose_b."))


# --------------------------------------------------------------------------- rows

def _last(types, a) -> bool:
    return a["axis"] in (-1, len(types[0].shape) - 1)


def _rows_kernel(template, with_eps=False):
    def build(types, a, epilogue, weights):
        x = types[0]
        if weights != "inline" or not _last(types, a):
            return None
        rows, cols = _prod(x.shape[:-1]), x.shape[-1]
        if with_eps:
            return template(rows, cols, a["epsilon"], x.dtype, epilogue=epilogue)
        return template(rows, cols, x.dtype, epilogue=epilogue)
    return build


def _softmax_ref(x, a):
    v = x[0].astype(np.float64)
    e = np.exp(v - v.max(axis=a["axis"], keepdims=True))
    return (e / e.sum(axis=a["axis"], keepdims=True)).astype(x[0].dtype)


def _log_softmax_ref(x, a):
    v = x[0].astype(np.float64)
    m = v - v.max(axis=a["axis"], keepdims=True)
    return (m - np.log(np.exp(m).sum(axis=a["axis"], keepdims=True))).astype(x[0].dtype)


def _layer_norm_ref(x, a):
    v, g, b = (t.astype(np.float64) for t in x)
    ax = a["axis"]
    m = v.mean(axis=ax, keepdims=True)
    var = ((v - m) ** 2).mean(axis=ax, keepdims=True)
    shape = [1] * v.ndim
    shape[ax] = -1
    return ((v - m) / np.sqrt(var + a["epsilon"]) * g.reshape(shape)
            + b.reshape(shape)).astype(x[0].dtype)


_AXIS = {"axis": (-1, a_int())}
for _name, _c, _r, _t in (("softmax", C.softmax, _softmax_ref, ops.softmax),
                          ("log_softmax", C.log_softmax, _log_softmax_ref, ops.log_softmax)):
    _compute = (lambda x, a, c=_c: c(x[0], a["axis"]))
    register(OpDef(_name, Pattern.REDUCTION, infer_by_compute(_compute), _compute, _r, _AXIS,
                   kernel=KernelSpec(_rows_kernel(_t), rows=True)))


def _ln_compute(x, a):
    return C.layer_norm(x[0], x[1], x[2], a["axis"], a["epsilon"])


register(OpDef(
    "layer_norm", Pattern.REDUCTION, infer_by_compute(_ln_compute), _ln_compute, _layer_norm_ref,
    {"axis": (-1, a_int()), "epsilon": (1e-5, a_float)}, arity=3,
    kernel=KernelSpec(_rows_kernel(ops.layer_norm, with_eps=True), rows=True),
    doc="(x - mean) / sqrt(var + epsilon) * gamma + beta over axis (biased variance)."))


# --------------------------------------------------------------------------- pools

def _windows(x, K, S, P, fill):
    """(N, C, OH, OW, KH, KW) windows of the padded x (floor mode)."""
    xp = np.pad(x, ((0, 0), (0, 0), (P[0], P[0]), (P[1], P[1])), constant_values=fill)
    w = np.lib.stride_tricks.sliding_window_view(xp, K, axis=(2, 3))
    return w[:, :, ::S[0], ::S[1]]


def _pool_attrs(x, a):
    return a["kernel"], a["stride"] or a["kernel"], a["padding"]


def _max_pool_ref(x, a):
    K, S, P = _pool_attrs(x, a)
    return _windows(x[0], K, S, P, -np.inf).max(axis=(4, 5)).astype(x[0].dtype)


def _avg_pool_ref(x, a):
    K, S, P = _pool_attrs(x, a)
    total = _windows(x[0].astype(np.float64), K, S, P, 0).sum(axis=(4, 5))
    if a["count_include_pad"]:
        return (total / (K[0] * K[1])).astype(x[0].dtype)
    ones = _windows(np.ones((1, 1, *x[0].shape[2:])), K, S, P, 0).sum(axis=(4, 5))
    return (total / ones).astype(x[0].dtype)


def _pool_kernel(kind):
    def build(types, a, epilogue, weights):
        if weights != "inline":
            return None
        N, Cc, H, W = types[0].shape
        K, S, P = a["kernel"], a["stride"] or a["kernel"], a["padding"]
        if kind == "max":
            return ops.max_pool2d(N, Cc, H, W, K, S, P, types[0].dtype, epilogue=epilogue)
        return ops.avg_pool2d(N, Cc, H, W, K, S, P, a["count_include_pad"], types[0].dtype,
                              epilogue=epilogue)
    return build


def _opt_pair(v):
    return None if v is None else a_pair(1)(v)


_POOL = {"kernel": ((1, 1), a_pair(1)), "stride": (None, _opt_pair), "padding": (0, a_pair(0))}


def _max_pool_compute(x, a):
    return C.max_pool2d(x[0], *_pool_attrs(x, a))


def _avg_pool_compute(x, a):
    return C.avg_pool2d(x[0], *_pool_attrs(x, a), count_include_pad=a["count_include_pad"])


register(OpDef("max_pool2d", Pattern.REDUCTION, infer_by_compute(_max_pool_compute),
               _max_pool_compute, _max_pool_ref, _POOL, kernel=KernelSpec(_pool_kernel("max")),
               doc="Max over kernel windows (stride defaults to the kernel), -inf padding."))
register(OpDef("avg_pool2d", Pattern.REDUCTION, infer_by_compute(_avg_pool_compute),
               _avg_pool_compute, _avg_pool_ref,
               {**_POOL, "count_include_pad": (True, a_bool)},
               kernel=KernelSpec(_pool_kernel("avg"))))


def _gap_kernel(types, a, epilogue, weights):
    if weights != "inline":
        return None
    return ops.global_avg_pool2d(*types[0].shape, dtype=types[0].dtype, epilogue=epilogue)


register(OpDef("global_avg_pool2d", Pattern.REDUCTION,
               infer_by_compute(lambda x, a: C.global_avg_pool2d(x[0])),
               lambda x, a: C.global_avg_pool2d(x[0]),
               lambda x, a: x[0].mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(x[0].dtype),
               kernel=KernelSpec(_gap_kernel),
               doc="The mean of each (n, c) plane: (N, C, H, W) -> (N, C, 1, 1)."))


# --------------------------------------------------------------------------- reductions

_REDUCE = {"sum": (C.sum, np.sum), "mean": (C.mean, np.mean), "max": (C.max, np.max),
           "min": (C.min, np.min)}


def _reduce_kernel(name):
    def build(types, a, epilogue, weights):
        if weights != "inline":
            return None
        x = types[0]
        return ops.reduce(name, x.shape, a["axis"], a["keepdims"], x.dtype, epilogue=epilogue)
    return build


for _name, (_c, _r) in _REDUCE.items():
    _compute = (lambda x, a, c=_c: c(x[0], a["axis"], a["keepdims"]))
    register(OpDef(
        _name, Pattern.REDUCTION, infer_by_compute(_compute), _compute,
        lambda x, a, r=_r: np.asarray(r(x[0].astype(np.float64) if x[0].dtype.kind == "f" else x[0],
                                        axis=a["axis"], keepdims=a["keepdims"])),
        {"axis": (None, a_opt_ints), "keepdims": (False, a_bool)},
        kernel=KernelSpec(_reduce_kernel(_name))))

for _name, _c, _r in (("argmax", C.argmax, np.argmax), ("argmin", C.argmin, np.argmin)):
    _compute = (lambda x, a, c=_c: c(x[0], a["axis"], a["keepdims"]))
    register(OpDef(
        _name, Pattern.REDUCTION, infer_by_compute(_compute), _compute,
        lambda x, a, r=_r: np.asarray(r(x[0], axis=a["axis"], keepdims=a["keepdims"]),
                                      dtype=np.int64),
        {"axis": (None, a_opt_int), "keepdims": (False, a_bool)},
        doc="int64 index of the first extreme along axis (of the flattened input if None)."))
