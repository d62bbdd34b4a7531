"""2-D convolutions in the channels-innermost layouts: ``conv2d_nhwc`` (data NHWC, weights
HWIO) and ``conv2d_NCHWc`` (data, weights and output blocked by channels, TOPI's
``NCHW{ic}c`` / ``OIHW{ic}i{oc}o`` / ``NCHW{oc}c``), each with an optional fused epilogue
``O = act(conv + bias[channel] + residual)``.

In both layouts the output channels are innermost, so the GEMM micro-kernel applies
directly, with no layout change of the output:

* **register tile**: the sum is an accumulator stage computed at a tile of XB output
  columns x FB output channels of the output (epilogue) stage. The reduction loops are
  outside the columns (unrolled) and the channels (vectorized, FB / 16 vectors), so the
  XB x FB/16 accumulators stay in vector registers; each reduction step is FB/16 vector
  loads of weights, XB broadcasts of inputs and XB x FB/16 FMAs. The default tile is 14
  columns (or another divisor of the width in [7, 14]) x 32 channels: 28 of the 32 zmm
  registers, and 2 FMAs per broadcast (measured on the ResNet-50 layers: 5-15% faster
  than 8 x 32 or 14 x 16, e.g. 0.49 vs 0.55 ms for res2's 3x3). The epilogue (bias,
  residual, activation) is applied as the tile is written, not in a second pass over
  memory. Inputs are broadcast, so a stride > 1 needs no phase split of the input;
* **padding**: the zero-padded input is a separate stage computed once, at the root, in
  parallel over (batch, row) pairs (NHWC) or (batch, channel block, row) triples (NCHWc);
* **NHWC**: the HWIO weights are repacked per call into FB-wide panels
  ``Wpack[f // FB, ry, rx, c, f % FB]`` (zero-padded past CO), so that the micro-kernel
  reads its weights as one contiguous stream rather than FB floats every CO floats (12%
  faster on res4's 3x3, whose 2.3 MB of weights do not stay in L2; about even elsewhere). The
  reduction runs (ry, rx, c). The (channel tile, batch, row) triples are split between the
  cores, channel tiles outermost: the rows of one tile reuse its weight panel from L2;
* **NCHWc**: the weights already come in panels of oc_block channels
  (``W[fo, c // ic, ry, rx, c % ic, :]``), and the reduction runs (input channel block,
  ry, rx, channel within the block), so that one step's data is contiguous. With 16-channel
  blocks a tile spans 2 blocks (knob ``ob``: blocks per tile), FB = ob x oc_block = 32.
  The (batch, tile of channel blocks, row) triples are split between the cores.

The sizes are knobs of the templates ``"ops/conv2d_nhwc"`` (``fb``, ``xb``, ``pack_w``,
``outer``: channel tiles or rows outermost in the parallel loop) and ``"ops/conv2d_NCHWc"``
(``xb``, ``ob``), keyed by the convolution's arguments only: the epilogue is a keyword
argument, so a record tuned for the plain convolution applies to the fused one.

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.
"""

from __future__ import annotations

import autotune

from .. import te
from .. import dtype as dt
from ..errors import TensorlangValueError
from ..schedule import create_schedule
from .common import epilogue, knob
from .conv2d import LANES, _check, _check_epilogue, _divisor, _out_size, _vectorize_cols


def _validate(op, dims, stride, padding, H, W, KH, KW, activation):
    OH, OW = _check(op, dims, stride, padding, H, W, KH, KW)
    _check_epilogue(op, activation)
    return OH, OW


def _zero_pad(A, shape, hw_axes, pad, dtype):
    """A padded with zeros by ``pad`` on both sides of the two ``hw_axes``; None when pad is 0."""
    if pad == 0:
        return None
    (ha, wa), (H, W) = hw_axes, (shape[hw_axes[0]], shape[hw_axes[1]])
    out = list(shape)
    out[ha], out[wa] = H + 2 * pad, W + 2 * pad

    def val(*i):
        y, x = i[ha], i[wa]
        src = list(i)
        src[ha], src[wa] = y - pad, x - pad
        return te.if_then_else(te.all(y >= pad, y < H + pad, x >= pad, x < W + pad),
                               A[tuple(src)], te.const(0, dtype))
    return te.compute(tuple(out), val, name="Apad")


def _vectorize_channels(stage, extent):
    """Vectorize the innermost (channel) axis of a copy stage, 16 lanes at a time."""
    c = stage.op.axis[-1]
    if extent > LANES:
        _, c = stage.split(c, factor=LANES)
    stage.vectorize(c)


def _micro_kernel(s, out, acc, xb, fb, xo):
    """Compute ``acc`` at ``out``'s tile loop ``xo``: reduction outside, XB columns unrolled,
    FB channels vectorized."""
    s[acc].compute_at(s[out], xo)
    *_, xc, fc = s[acc].op.axis
    s[acc].reorder(*s[acc].op.reduce_axis, xc, fc)
    s[acc].unroll(xc)
    _vectorize_cols(s[acc], fc, fb)


# --------------------------------------------------------------------------- NHWC

def conv2d_nhwc(N, H, W, CI, CO, KH, KW, stride=1, padding=0, dtype="float32", *,
                bias=False, residual=False, activation=None):
    """O[n, y, x, f] = act(sum_{ry, rx, c} Apad[n, y*stride + ry, x*stride + rx, c] *
    W[ry, rx, c, f] + bias[f] + residual[n, y, x, f]), zero padding. A: (N, H, W, CI),
    W: (KH, KW, CI, CO) (HWIO), bias: (CO,), residual and O: (N, OH, OW, CO). Returns
    ``(schedule, [A, W, (bias,) (residual,) O])``: the tuned record of the plain
    convolution's workload if there is one, else the default schedule."""
    op = "conv2d_nhwc"
    _validate(op, dict(N=N, H=H, W=W, CI=CI, CO=CO, KH=KH, KW=KW), stride, padding,
              H, W, KH, KW, activation)
    return _nhwc_template(N, H, W, CI, CO, KH, KW, stride, padding, dt.check(dtype),
                          bias=bool(bias), residual=bool(residual), activation=activation)


@autotune.template("ops/conv2d_nhwc", warn_fallback=False)
def _nhwc_template(N, H, W, CI, CO, KH, KW, stride, padding, dtype, *, bias=False,
                   residual=False, activation=None):
    """The NHWC schedule (module docstring) with its tile sizes and weight packing as knobs."""
    S, pad = stride, padding
    OH, OW = _out_size(H, W, KH, KW, S, pad)
    cfg = autotune.get_config()
    fb = knob(cfg, "fb", [LANES, 2 * LANES, 4 * LANES], LANES if CO <= LANES else 2 * LANES)
    xb = knob(cfg, "xb", [4, 6, 7, 8, 12, 14, 16, 28], _divisor(OW, 7, 14))
    pack = knob(cfg, "pack_w", [0, 1], 1)
    outer = knob(cfg, "outer", ["channel", "row"], "channel")

    A = te.placeholder((N, H, W, CI), name="A", dtype=dtype)
    Wt = te.placeholder((KH, KW, CI, CO), name="W", dtype=dtype)
    P = _zero_pad(A, (N, H, W, CI), (1, 2), pad, dtype)
    src = A if P is None else P
    nfo = -(-CO // fb)
    if pack:
        WP = te.compute((nfo, KH, KW, CI, fb), lambda fo, i, j, c, fi: te.if_then_else(
            fo * fb + fi < CO, Wt[i, j, c, fo * fb + fi], te.const(0, dtype)), name="Wpack")
        weight = lambda i, j, c, f: WP[f // fb, i, j, c, f % fb]        # noqa: E731
    else:
        WP = None
        weight = lambda i, j, c, f: Wt[i, j, c, f]                      # noqa: E731
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rc = te.reduce_axis((0, CI), name="rc")
    Oc = te.compute((N, OH, OW, CO), lambda n, y, x, f: te.sum(
        src[n, y * S + ry, x * S + rx, rc] * weight(ry, rx, rc, f), axis=[ry, rx, rc]),
        name="Oc")
    O, extra = epilogue("conv2d_nhwc", lambda *i: Oc[i], (N, OH, OW, CO), lambda *i: i[3],
                        CO, dtype, bias=bias, residual=residual, activation=activation)

    s = create_schedule(O.op)
    n, y, x, f = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    xo, xi = s[O].split(x, factor=xb)
    if outer == "channel":
        s[O].reorder(fo, n, y, xo, xi, fi)
        s[O].parallel(s[O].fuse(fo, n, y))
    else:
        s[O].reorder(n, y, fo, xo, xi, fi)
        s[O].parallel(s[O].fuse(n, y))
    _vectorize_cols(s[O], fi, fb)
    _micro_kernel(s, O, Oc, xb, fb, xo)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:2]))
        _vectorize_channels(s[P], CI)
    if WP is not None:
        s[WP].vectorize(s[WP].op.axis[-1])
        s[WP].parallel(s[WP].op.axis[0])
    return s, [A, Wt, *extra, O]


# --------------------------------------------------------------------------- NCHWc

def conv2d_NCHWc(N, CI, H, W, CO, KH, KW, stride=1, padding=0, ic_block=16, oc_block=16,
                 dtype="float32", *, bias=False, residual=False, activation=None):
    """O[n, fo, y, x, fi] = act(sum_{co, ry, rx, ci} Apad[n, co, y*stride + ry,
    x*stride + rx, ci] * W[fo, co, ry, rx, ci, fi] + bias[fo * oc_block + fi] +
    residual[n, fo, y, x, fi]), zero padding. A: (N, CI // ic_block, H, W, ic_block),
    W: (CO // oc_block, CI // ic_block, KH, KW, ic_block, oc_block), bias: (CO,), residual
    and O: (N, CO // oc_block, OH, OW, oc_block). Returns ``(schedule, [A, W, (bias,)
    (residual,) O])``: the tuned record of the plain convolution's workload if there is
    one, else the default schedule."""
    op = "conv2d_NCHWc"
    _validate(op, dict(N=N, CI=CI, H=H, W=W, CO=CO, KH=KH, KW=KW, ic_block=ic_block,
                       oc_block=oc_block), stride, padding, H, W, KH, KW, activation)
    if CI % ic_block:
        raise TensorlangValueError(
            f"{op}: CI={CI} input channels are not divisible by ic_block={ic_block}")
    if CO % oc_block:
        raise TensorlangValueError(
            f"{op}: CO={CO} output channels are not divisible by oc_block={oc_block}")
    return _nchwc_template(N, CI, H, W, CO, KH, KW, stride, padding, ic_block, oc_block,
                           dt.check(dtype), bias=bool(bias), residual=bool(residual),
                           activation=activation)


@autotune.template("ops/conv2d_NCHWc", warn_fallback=False)
def _nchwc_template(N, CI, H, W, CO, KH, KW, stride, padding, ic_block, oc_block, dtype, *,
                    bias=False, residual=False, activation=None):
    """The NCHWc schedule (module docstring) with its tile size as a knob."""
    S, pad, ic, oc = stride, padding, ic_block, oc_block
    OH, OW = _out_size(H, W, KH, KW, S, pad)
    cfg = autotune.get_config()
    xb = knob(cfg, "xb", [4, 7, 8, 14, 16, 28], _divisor(OW, 7, 14))
    ob = knob(cfg, "ob", [1, 2, 4], max(1, min(2 * LANES // oc, 4, CO // oc)))

    A = te.placeholder((N, CI // ic, H, W, ic), name="A", dtype=dtype)
    Wt = te.placeholder((CO // oc, CI // ic, KH, KW, ic, oc), name="W", dtype=dtype)
    P = _zero_pad(A, (N, CI // ic, H, W, ic), (2, 3), pad, dtype)
    src = A if P is None else P
    rco = te.reduce_axis((0, CI // ic), name="rco")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    rci = te.reduce_axis((0, ic), name="rci")
    shape = (N, CO // oc, OH, OW, oc)
    Oc = te.compute(shape, lambda n, fo, y, x, fi: te.sum(
        src[n, rco, y * S + ry, x * S + rx, rci] * Wt[fo, rco, ry, rx, rci, fi],
        axis=[rco, ry, rx, rci]), name="Oc")
    O, extra = epilogue("conv2d_NCHWc", lambda *i: Oc[i], shape,
                        lambda n, fo, y, x, fi: fo * oc + fi, CO, dtype, bias=bias,
                        residual=residual, activation=activation)

    s = create_schedule(O.op)
    n, fo, y, x, fi = O.op.axis
    foo, foi = s[O].split(fo, factor=ob)
    xo, xi = s[O].split(x, factor=xb)
    s[O].reorder(n, foo, y, xo, foi, xi, fi)
    s[O].parallel(s[O].fuse(n, foo, y))
    _vectorize_cols(s[O], fi, oc)
    s[Oc].compute_at(s[O], xo)
    *_, fc, _, xc, fic = s[Oc].op.axis
    s[Oc].reorder(*s[Oc].op.reduce_axis, xc, fc, fic)
    s[Oc].unroll(fc)
    s[Oc].unroll(xc)
    _vectorize_cols(s[Oc], fic, oc)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:3]))
        _vectorize_channels(s[P], ic)
    return s, [A, Wt, *extra, O]
