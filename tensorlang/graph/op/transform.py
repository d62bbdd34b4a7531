"""Injective ops (each output element is one input element): reshape, transpose,
concatenate, strided_slice, pad, take (gather, embedding lookup), broadcast_to, expand_dims,
squeeze, layout_transform between NCHW and the channel-blocked NCHW{c}c, and
kernel_layout_transform (convolution weights OIHW -> OIHW{ic}i{oc}o)."""

from __future__ import annotations

import re

import numpy as np

from ...ops import compute as C
from .common import infer_by_compute, same_dtype
from .registry import (OpDef, Pattern, a_float, a_int, a_ints, a_opt_ints, a_str, register)


def _op(name, compute, ref, attrs=None, arity=1, pattern=Pattern.INJECTIVE, doc=""):
    register(OpDef(name, pattern, infer_by_compute(compute), compute, ref, attrs or {}, arity,
                   doc=doc))


def _pads(v):
    """One (before, after) pair of ints per axis."""
    if not isinstance(v, (tuple, list)) or not all(
            isinstance(p, (tuple, list)) and len(p) == 2 for p in v):
        raise TypeError("expected one (before, after) pair per axis")
    return tuple((int(b), int(e)) for b, e in v)


_op("reshape", lambda x, a: C.reshape(x[0], a["newshape"]),
    lambda x, a: x[0].reshape(a["newshape"]), {"newshape": ((), a_ints)})
_op("transpose", lambda x, a: C.transpose(x[0], a["axes"]),
    lambda x, a: np.ascontiguousarray(np.transpose(x[0], a["axes"])), {"axes": (None, a_opt_ints)})
_op("strided_slice", lambda x, a: C.strided_slice(x[0], a["begin"], a["end"], a["strides"]),
    lambda x, a: np.ascontiguousarray(x[0][tuple(slice(b, e, s) for b, e, s in zip(
        a["begin"], a["end"], a["strides"] or (1,) * x[0].ndim))]),
    {"begin": ((), a_ints), "end": ((), a_ints), "strides": (None, a_opt_ints)})
_op("pad", lambda x, a: C.pad(x[0], a["pad_width"], a["value"]),
    lambda x, a: np.pad(x[0], a["pad_width"], constant_values=a["value"]),
    {"pad_width": ((), _pads), "value": (0.0, a_float)})
_op("take", lambda x, a: C.take(x[0], x[1], a["axis"]),
    lambda x, a: np.take(x[0], np.clip(x[1], 0, x[0].shape[a["axis"]] - 1), axis=a["axis"]),
    {"axis": (0, a_int())}, arity=2,
    doc="Gather along axis (an embedding lookup is take(table, ids, axis=0)); indices are "
        "clamped into range.")
_op("broadcast_to", lambda x, a: C.broadcast_to(x[0], a["shape"]),
    lambda x, a: np.ascontiguousarray(np.broadcast_to(x[0], a["shape"])),
    {"shape": ((), a_ints)}, pattern=Pattern.BROADCAST)
_op("expand_dims", lambda x, a: C.expand_dims(x[0], a["axis"]),
    lambda x, a: np.expand_dims(x[0], a["axis"]), {"axis": (0, a_int())})
_op("squeeze", lambda x, a: C.squeeze(x[0], a["axis"]),
    lambda x, a: np.squeeze(x[0], a["axis"]), {"axis": (None, a_opt_ints)})


def _concat_infer(types, attrs):
    same_dtype("concatenate", types)
    return infer_by_compute(lambda x, a: C.concatenate(x, a["axis"]))(types, attrs)


register(OpDef("concatenate", Pattern.INJECTIVE, _concat_infer,
               lambda x, a: C.concatenate(list(x), a["axis"]),
               lambda x, a: np.concatenate(x, axis=a["axis"]), {"axis": (0, a_int())},
               arity=None))


# --------------------------------------------------------------------------- layouts

_BLOCKED = re.compile(r"^NCHW(\d+)c$")


def block_of(layout: str) -> int:
    """The channel block of ``"NCHW16c"`` (16), 0 for ``"NCHW"``; anything else is an error."""
    if layout == "NCHW":
        return 0
    m = _BLOCKED.match(layout)
    if not m or int(m.group(1)) < 1:
        raise ValueError(f"expected 'NCHW' or 'NCHW<c>c' (e.g. 'NCHW16c'), got {layout!r}")
    return int(m.group(1))


def _layout(v):
    block_of(a_str(v))
    return v


def _layout_compute(x, a):
    src, dst = block_of(a["src_layout"]), block_of(a["dst_layout"])
    X = x[0]
    if src:
        X = C.nchwc_to_nchw(X)
    return C.nchw_to_nchwc(X, dst) if dst else X


def _layout_ref(x, a):
    src, dst = block_of(a["src_layout"]), block_of(a["dst_layout"])
    X = x[0]
    if src:
        n, co, h, w, c = X.shape
        X = X.transpose(0, 1, 4, 2, 3).reshape(n, co * c, h, w)
    if dst:
        n, ch, h, w = X.shape
        X = X.reshape(n, ch // dst, dst, h, w).transpose(0, 1, 3, 4, 2)
    return np.ascontiguousarray(X)


_op("layout_transform", _layout_compute, _layout_ref,
    {"src_layout": ("NCHW", _layout), "dst_layout": ("NCHW", _layout)},
    doc="Activations between NCHW and NCHW{c}c: (N, C, H, W) <-> (N, C // c, H, W, c).")


def _kernel_layout_ref(x, a):
    ic, oc = a["ic"], a["oc"]
    co, ci, kh, kw = x[0].shape
    if ci % ic or co % oc:
        raise ValueError(f"kernel_layout_transform: {x[0].shape} is not divisible by ic={ic}, "
                         f"oc={oc}")
    return np.ascontiguousarray(
        x[0].reshape(co // oc, oc, ci // ic, ic, kh, kw).transpose(0, 2, 4, 5, 3, 1))


_op("kernel_layout_transform", lambda x, a: C.kernel_to_oihw_ic_oc(x[0], a["ic"], a["oc"]),
    _kernel_layout_ref, {"ic": (1, a_int(1)), "oc": (1, a_int(1))},
    doc="Convolution weights OIHW (CO, CI, KH, KW) -> OIHW{ic}i{oc}o (CO // oc, CI // ic, KH, "
        "KW, ic, oc), the weight layout of conv2d_NCHWc; on a constant, FoldConstant packs it.")
