"""2-D convolutions, NCHW layout: ``conv2d_nchw`` (dense) and ``depthwise_conv2d_nchw``
(one filter per channel, PyTorch's ``groups=C`` with weights of shape ``(C, 1, KH, KW)``).

Each returns ``(schedule, [A, W, O])`` with the fastest schedule found for this CPU
(AVX-512, 16 float32 lanes). The dense schedule:

* **padding**: the zero-padded input is a separate stage computed once, at the root, in
  parallel over (batch, channel) planes. For a stride S > 1 its columns are stored split by
  phase, ``P[n, c, y, p, q] = Apad[n, c, y, q * S + p]``, so that the input columns a vector
  of output columns reads (``x * S + rx``) are contiguous: ``P[.., rx % S, x + rx // S]``;
  without it every input vector would be a gather. Without padding (e.g. the 1x1 stride-2
  downsample) the stage is computed at the output row instead, building only the rows and
  phases that row reads;
* **kernels larger than 1x1 (3x3): vectorized over output channels.** The weights are
  repacked per call into ``Wpack[f // FB, c, ry, rx, f % FB]`` and the output accumulates in
  ``Oc[n, f // FB, y, x, f % FB]``, computed at a tile of XB output columns x FB channels:
  the reduction loops (input channel, filter row, filter column) are outside the columns
  (unrolled) and the channels (vectorized), so the XB x FB/16 accumulators stay in vector
  registers and each reduction step is FB/16 vector loads of weights, XB broadcasts of
  inputs and XB x FB/16 FMAs, the shape of the GEMM micro-kernel. Rows 32 wide or more
  (multiples of 8) take 8 columns x 32 channels; narrower rows (28, 14) 14 columns (or
  another divisor of the width) x 16 channels. Each tile is then copied to NCHW (through
  the fused epilogue, if any). On planes of at most 64 pixels (ResNet's 7x7) the tile runs
  over the flattened pixels ``y * OW + x`` instead, so a 7-wide row does not leave half a
  tile empty. 1x1 kernels on rows narrower than 16 take this schedule too;
* **1x1 kernels on rows of 16 or more: vectorized over output columns.** A write cache of O at a tile of FB
  channels x XB columns, the reduction over input channels outside the channels (unrolled)
  and the columns (vectorized): rows at least 32 wide take 32 columns x 12 channels with the
  weights repacked into ``Wpack[f // FB, c, 0, 0, f % FB]`` (a step's FB weights share a
  cache line), narrower rows 16 columns x 16 channels;
* the output rows (fused with the batch and, for 3x3, the channel tiles) are split between
  the cores.

Dilation reads the padded input at ``y * S + ry * D``; grouped convolutions take the 1x1
schedule (vectorized over columns, each channel's group read as a scalar offset).

The depthwise schedule pads the same way, then splits (batch x channel) planes between the
cores; within a plane a write cache of 4 rows x 16 columns is accumulated in registers over
the (unrolled) filter window.

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.
"""

from __future__ import annotations

import autotune

from .. import te
from .. import dtype as dt
from ..errors import TensorlangValueError
from .common import check_dims, epilogue, knob, output_stages
from ..schedule import create_schedule

LANES = 16          # float32 lanes of a 512-bit vector


def _check(op: str, dims: dict, stride, padding, H: int, W: int, KH: int, KW: int,
           dilation: int = 1):
    """Validate the arguments; returns (OH, OW)."""
    check_dims(op, **dims, stride=stride, dilation=dilation)
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise TensorlangValueError(f"{op}: padding must be a non-negative int, got {padding!r}")
    EKH, EKW = dilation * (KH - 1) + 1, dilation * (KW - 1) + 1
    OH, OW = _out_size(H, W, KH, KW, stride, padding, dilation)
    if H + 2 * padding < EKH or W + 2 * padding < EKW:
        dil = f" (dilated to {EKH}x{EKW})" if dilation > 1 else ""
        raise TensorlangValueError(
            f"{op}: the {KH}x{KW} kernel{dil} is larger than the padded {H + 2 * padding}x"
            f"{W + 2 * padding} input (H={H}, W={W}, padding={padding}): output size "
            f"{OH}x{OW} must be positive")
    return OH, OW


def _out_size(H, W, KH, KW, S, pad, D=1):
    return ((H + 2 * pad - D * (KH - 1) - 1) // S + 1, (W + 2 * pad - D * (KW - 1) - 1) // S + 1)


def _check_epilogue(op: str, activation) -> None:
    from .compute.linalg import apply_activation
    apply_activation(te.const(0.0, "float32"), activation, op)          # validates the name


def _padded(A, N, C, H, W, S, pad, dtype):
    """The zero-padded input as a stage (see the module docstring for the phase split when
    S > 1), and a function ``read(n, c, iy, rx, x)`` = padded input at (iy, x * S + rx)."""
    Hp, Wp = H + 2 * pad, W + 2 * pad

    def val(n, c, y, x):
        if pad == 0 and Wp % S == 0:
            return A[n, c, y, x]
        if pad == 0:                          # the last phase column lies past the row
            return te.if_then_else(x < W, A[n, c, y, x], te.const(0, dtype))
        return te.if_then_else(te.all(y >= pad, y < H + pad, x >= pad, x < W + pad),
                               A[n, c, y - pad, x - pad], te.const(0, dtype))
    if S == 1:
        if pad == 0:
            return None, lambda n, c, iy, rx, x: A[n, c, iy, x + rx]
        P = te.compute((N, C, Hp, Wp), val, name="Apad")
        return P, lambda n, c, iy, rx, x: P[n, c, iy, x + rx]
    P = te.compute((N, C, Hp, S, -(-Wp // S)),
                   lambda n, c, y, p, q: val(n, c, y, q * S + p), name="Apad")
    return P, lambda n, c, iy, rx, x: P[n, c, iy, rx % S, x + rx // S]


def _vectorize_cols(stage, xi, xb):
    """Vectorize a column loop of ``xb`` iterations 16 lanes at a time (vectors unrolled)."""
    if xb > LANES:
        xo, xi = stage.split(xi, factor=LANES)
        stage.unroll(xo)
    stage.vectorize(xi)


def conv2d_nchw(N, CI, H, W, CO, KH, KW, stride=1, padding=0, dilation=1, groups=1,
                dtype="float32", bias=False, residual=False, activation=None):
    """O[n, f, y, x] = act(sum_{c, ry, rx} Apad[n, g*CI/groups + c, y*stride + ry*dilation,
    x*stride + rx*dilation] * W[f, c, ry, rx] + bias[f] + R[n, f, y, x]), zero padding,
    g = f // (CO / groups). A: (N, CI, H, W), W: (CO, CI // groups, KH, KW), O: (N, CO, OH,
    OW). Returns ``(schedule, [A, W, (bias,) (residual,) O])``: the tuned record of an
    applied (or shipped) log if there is one, else the default schedule.

    The epilogue (``bias``: a (CO,) input; ``residual``: an input of O's shape, added before
    the activation, as in a ResNet block; ``activation``: a name of ``ACTIVATIONS``) is
    applied as each output tile is written and is not part of the tuning workload, which is
    ``(N, CI, H, W, CO, KH, KW, stride, padding, dtype)`` (plus ``dilation, groups`` when
    either is not 1)."""
    _check("conv2d_nchw", dict(N=N, CI=CI, H=H, W=W, CO=CO, KH=KH, KW=KW, groups=groups),
           stride, padding, H, W, KH, KW, dilation)
    if CI % groups or CO % groups:
        raise TensorlangValueError(f"conv2d_nchw: groups={groups} must divide CI={CI} and "
                                   f"CO={CO}")
    _check_epilogue("conv2d_nchw", activation)
    extra = [dilation, groups] if (dilation, groups) != (1, 1) else []
    return _conv2d_template(N, CI, H, W, CO, KH, KW, stride, padding, dt.check(dtype), *extra,
                            bias=bool(bias), residual=bool(residual), activation=activation)


@autotune.template("ops/conv2d_nchw", warn_fallback=False)
def _conv2d_template(N, CI, H, W, CO, KH, KW, stride, padding, dtype, dilation=1, groups=1, *,
                     bias=False, residual=False, activation=None):
    """The schedules below with their tile sizes as knobs (defaults: the sizes the module
    docstring gives)."""
    OH, OW = _out_size(H, W, KH, KW, stride, padding, dilation)
    epi = dict(bias=bias, residual=residual, activation=activation)
    cfg = autotune.get_config()
    if groups == 1 and (KH * KW > 1 or OW < LANES):    # vectorized over output channels
        fb, xb = (2 * LANES, 8) if OW >= 32 and OW % 8 == 0 else (LANES, _divisor(OW, 7, 14))
        fb = knob(cfg, "fb", [LANES, 2 * LANES], fb)
        xb = knob(cfg, "xb", [4, 7, 8, 14, 16], xb)
        flat = knob(cfg, "flat", [0, 1], int(OH * OW <= 64))
        return _conv2d_channels(N, CI, H, W, CO, KH, KW, stride, padding, dilation, dtype,
                                OH, OW, fb, xb, epi, bool(flat))
    if OW >= 2 * LANES:                       # wide rows: 2 vectors of columns
        fb, xb, pack_w = 12, 2 * LANES, True
    else:
        fb, xb, pack_w = LANES, LANES, False
    fb = knob(cfg, "fb", [4, 8, 12, 16], min(fb, CO // groups))
    xb = knob(cfg, "xb", [LANES, 2 * LANES], xb)
    pad_at = "row" if padding == 0 else "root"
    return _conv2d(N, CI, H, W, CO, KH, KW, stride, padding, dilation, groups, dtype, OH, OW,
                   fb, xb, pack_w and groups == 1, pad_at, epi)


def _divisor(n: int, lo: int, hi: int) -> int:
    """The largest divisor of ``n`` in [lo, hi], else ``hi`` (the last tile is partial)."""
    return next((d for d in range(hi, lo - 1, -1) if n % d == 0), hi)


def _conv2d_channels(N, CI, H, W, CO, KH, KW, S, pad, D, dtype, OH, OW, fb, xb, epi,
                     flat=False):
    """The schedule for kernels larger than 1x1, and for 1x1 kernels on rows narrower than a
    vector: vectorized over output channels.

    The weights are repacked per call into ``Wpack[f // FB, c, ry, rx, f % FB]`` and the
    output is accumulated in ``Oc[n, f // FB, y, x, f % FB]`` (channels innermost), computed
    at a tile of XB output columns x FB channels; each reduction step is FB/16 vector loads
    of weights, XB broadcasts of inputs and XB x FB/16 FMAs on register accumulators. The
    tile is then copied to O's NCHW layout (through the epilogue, if any). The (channel
    tile, row) pairs are split between the cores, channel tiles outermost: the rows of one
    channel tile reuse its weights from L2 (all of res4's 3x3 weights, 2.3 MB, do not fit).

    ``flat`` (small planes, e.g. ResNet's 7x7): ``Oc[n, f // FB, p, f % FB]`` holds a whole
    plane of FB channels, its pixels ``p = y * OW + x`` tiled XB at a time across rows, so a
    7-wide row does not leave most of a tile empty; the channel tiles run in parallel."""
    A = te.placeholder((N, CI, H, W), name="A", dtype=dtype)
    Wt = te.placeholder((CO, CI, KH, KW), name="W", dtype=dtype)
    P, read = _padded(A, N, CI, H, W, S, pad, dtype)
    nfo = -(-CO // fb)
    WP = te.compute((nfo, CI, KH, KW, fb), lambda fo, c, i, j, fi: te.if_then_else(
        fo * fb + fi < CO, Wt[fo * fb + fi, c, i, j], te.const(0, dtype)), name="Wpack")
    rc = te.reduce_axis((0, CI), name="rc")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    if flat:                                  # pixels p = y * OW + x, tiled across rows
        Oc = te.compute((N, nfo, OH * OW, fb), lambda n, fo, p, fi: te.sum(
            read(n, rc, p // OW * S + ry * D, rx * D, p % OW) * WP[fo, rc, ry, rx, fi],
            axis=[rc, ry, rx]), name="Oc")
        at = lambda n, f, y, x: Oc[n, f // fb, y * OW + x, f % fb]        # noqa: E731
    else:
        Oc = te.compute((N, nfo, OH, OW, fb), lambda n, fo, y, x, fi: te.sum(
            read(n, rc, y * S + ry * D, rx * D, x) * WP[fo, rc, ry, rx, fi], axis=[rc, ry, rx]),
            name="Oc")
        at = lambda n, f, y, x: Oc[n, f // fb, y, x, f % fb]              # noqa: E731
    O, extra = epilogue("conv2d_nchw", at, (N, CO, OH, OW), lambda n, f, y, x: f, CO, dtype,
                        **epi)

    s = create_schedule(O.op)
    n, f, y, x = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    if flat:                                  # Oc holds a whole plane of FB channels
        s[O].reorder(n, fo, fi, y, x)
        nfo_ = s[O].fuse(n, fo)
        s[O].parallel(nfo_)
        s[Oc].compute_at(s[O], nfo_)
        *_, pc, fc = s[Oc].op.axis
        po, pc = s[Oc].split(pc, factor=xb)
        s[Oc].reorder(po, *s[Oc].op.reduce_axis, pc, fc)
    else:
        xo, xi = s[O].split(x, factor=xb)
        s[O].reorder(n, fo, y, xo, fi, xi)
        s[O].parallel(s[O].fuse(n, fo, y))
        s[Oc].compute_at(s[O], xo)
        *_, pc, fc = s[Oc].op.axis
        s[Oc].reorder(*s[Oc].op.reduce_axis, pc, fc)
    s[Oc].unroll(pc)
    _vectorize_cols(s[Oc], fc, fb)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:2]))
        s[P].vectorize(s[P].op.axis[-1])
    s[WP].vectorize(s[WP].op.axis[-1])
    s[WP].parallel(s[WP].op.axis[0])
    return s, [A, Wt, *extra, O]


def _conv2d(N, CI, H, W, CO, KH, KW, S, pad, D, groups, dtype, OH, OW, fb, xb, pack_w, pad_at,
            epi):
    """The 1x1 schedule (also grouped convolutions) for a given tile (FB channels x XB
    columns), weight packing and place of the padding stage (``"row"``: at the output row;
    ``"root"``). Output channel f of group g reads input channels g * CI/groups + c."""
    A = te.placeholder((N, CI, H, W), name="A", dtype=dtype)
    cig, cog = CI // groups, CO // groups
    Wt = te.placeholder((CO, cig, KH, KW), name="W", dtype=dtype)
    P, read = _padded(A, N, CI, H, W, S, pad, dtype)
    if pack_w:
        WP = te.compute((-(-CO // fb), CI, KH, KW, fb), lambda fo, c, i, j, fi: te.if_then_else(
            fo * fb + fi < CO, Wt[fo * fb + fi, c, i, j], te.const(0, dtype)), name="Wpack")
        weight = lambda f, c, i, j: WP[f // fb, c, i, j, f % fb]       # noqa: E731
    else:
        WP = None
        weight = lambda f, c, i, j: Wt[f, c, i, j]                     # noqa: E731
    rc = te.reduce_axis((0, cig), name="rc")
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    ch = (lambda f: rc) if groups == 1 else (lambda f: f // cog * cig + rc)
    s, O, OL, extra = output_stages(
        "conv2d_nchw", lambda name: te.compute((N, CO, OH, OW), lambda n, f, y, x: te.sum(
            read(n, ch(f), y * S + ry * D, rx * D, x) * weight(f, rc, ry, rx),
            axis=[rc, ry, rx]), name=name),
        (N, CO, OH, OW), lambda n, f, y, x: f, CO, dtype, **epi)
    n, f, y, x = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    xo, xi = s[O].split(x, factor=xb)
    s[O].reorder(n, y, fo, xo, fi, xi)
    _vectorize_cols(s[O], xi, xb)
    ny = s[O].fuse(n, y)
    s[O].parallel(ny)
    s[OL].compute_at(s[O], xo)
    _, fc, _, xc = s[OL].op.axis
    s[OL].reorder(*s[OL].op.reduce_axis, fc, xc)
    s[OL].unroll(fc)
    _vectorize_cols(s[OL], xc, xb)
    if P is not None:
        if pad_at == "row":               # only the rows (and phase) the output row needs
            s[P].compute_at(s[O], ny)
        else:
            s[P].parallel(s[P].fuse(*s[P].op.axis[:2]))
        s[P].vectorize(s[P].op.axis[-1])
    if WP is not None:
        s[WP].vectorize(s[WP].op.axis[-1])
        s[WP].parallel(s[WP].op.axis[0])
    return s, [A, Wt, *extra, O]


def depthwise_conv2d_nchw(N, C, H, W, KH, KW, stride=1, padding=0, dtype="float32",
                          bias=False, residual=False, activation=None):
    """O[n, c, y, x] = act(sum_{ry, rx} Apad[n, c, y*stride + ry, x*stride + rx] *
    W[c, 0, ry, rx] + bias[c] + R[n, c, y, x]), zero padding. A: (N, C, H, W), W: (C, 1, KH,
    KW), O: (N, C, OH, OW). Returns ``(schedule, [A, W, (bias,) (residual,) O])``; the
    epilogue is fused as in ``conv2d_nchw`` and not part of the tuning workload."""
    _check("depthwise_conv2d_nchw", dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW), stride, padding,
           H, W, KH, KW)
    _check_epilogue("depthwise_conv2d_nchw", activation)
    return _depthwise_template(N, C, H, W, KH, KW, stride, padding, dt.check(dtype),
                               bias=bool(bias), residual=bool(residual), activation=activation)


@autotune.template("ops/depthwise_conv2d_nchw", warn_fallback=False)
def _depthwise_template(N, C, H, W, KH, KW, stride, padding, dtype, *, bias=False,
                        residual=False, activation=None):
    OH, OW = _out_size(H, W, KH, KW, stride, padding)
    S, pad = stride, padding
    cfg = autotune.get_config()
    yb = knob(cfg, "yb", [1, 2, 4, 8], 4)
    xb = knob(cfg, "xb", [LANES // 2, LANES, 2 * LANES], LANES)

    A = te.placeholder((N, C, H, W), name="A", dtype=dtype)
    Wt = te.placeholder((C, 1, KH, KW), name="W", dtype=dtype)
    P, read = _padded(A, N, C, H, W, S, pad, dtype)
    ry = te.reduce_axis((0, KH), name="ry")
    rx = te.reduce_axis((0, KW), name="rx")
    s, O, OL, extra = output_stages(
        "depthwise_conv2d_nchw", lambda name: te.compute((N, C, OH, OW), lambda n, c, y, x:
            te.sum(read(n, c, y * S + ry, rx, x) * Wt[c, 0, ry, rx], axis=[ry, rx]), name=name),
        (N, C, OH, OW), lambda n, c, y, x: c, C, dtype, bias=bias, residual=residual,
        activation=activation)
    n, c, y, x = O.op.axis
    yo, yi = s[O].split(y, factor=yb)
    xo, xi = s[O].split(x, factor=xb)
    s[O].reorder(n, c, yo, xo, yi, xi)
    s[O].vectorize(xi)
    nc = s[O].fuse(n, c)
    s[O].parallel(nc)
    s[OL].compute_at(s[O], xo)
    _, _, yc, xc = s[OL].op.axis
    ryc, rxc = s[OL].op.reduce_axis
    s[OL].reorder(ryc, rxc, yc, xc)
    s[OL].unroll(ryc)
    s[OL].unroll(rxc)
    s[OL].unroll(yc)
    s[OL].vectorize(xc)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:2]))
        s[P].vectorize(s[P].op.axis[-1])
    return s, [A, Wt, *extra, O]
