"""2-D convolutions, NCHW layout: ``conv2d_nchw`` (dense) and ``depthwise_conv2d_nchw``
(one filter per channel, PyTorch's ``groups=C`` with weights of shape ``(C, 1, KH, KW)``).

Each returns ``(schedule, [A, W, *epilogue inputs, O])``: the tuned record for the current
target if a log has one, else a default whose tile sizes derive from the target
(``tl.target.Target.current().info``: vector lanes, 16 float32 with AVX-512 and 8 with
AVX2, and how many register accumulators the vector registers hold, ``register_rows``).
A template is a compute and a schedule: the stages come from ``ops.compute``
(``conv2d_pad``, ``conv2d_pack_weights``, ``conv2d_nchw_packed``,
``depthwise_conv2d_nchw(phase_split=True)``), and ``schedule_conv2d_nchw`` /
``schedule_depthwise_conv2d_nchw`` find the convolution from the outputs by its tag, as
TOPI's schedules do.

``epilogue=``: a function of the convolution's output building element-wise / broadcast
stages over it (``common.fuse_epilogue``: bias, folded batch norm, activation, residual,
cast, ...), or the classic ``bias`` / ``residual`` / ``activation`` keywords; it is inlined
into the output stage, so it runs as each output tile is written. ``weights=`` (dense
convolution): ``"inline"`` packs the weights inside the kernel, ``"prepacked"`` takes them
packed (``Wpacked``, args ``[A, Wpacked, *epilogue inputs, O]``), ``"pack"`` returns the
packing kernel ``(schedule, [W, Wpacked])`` of the same config, to run once at load time.
Neither changes the workload key, so a record tuned for the plain convolution applies.

The dense schedule:

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
  (unrolled) and the channels (vectorized), so the XB x FB/lanes accumulators stay in
  vector registers and each reduction step is FB/lanes vector loads of weights, XB
  broadcasts of inputs and XB x FB/lanes FMAs, the shape of the GEMM micro-kernel. Rows
  that are a multiple of the two-vector tile's width and at least 4 tiles wide take that
  tile (AVX-512: 8 columns x 32 channels; AVX2: 6 x 16); other rows (56, 28, 14) one
  channel vector and a divisor of the width up to 14 columns. Each tile is then copied to
  NCHW (through the fused epilogue, if any). On planes whose whole FB-channel accumulator
  fits in a quarter of L1 (ResNet's 7x7) the tile runs over the flattened pixels
  ``y * OW + x`` instead, so a 7-wide row does not leave half a tile empty. 1x1 kernels
  on rows narrower than a vector take this schedule too;
* **1x1 kernels on rows of a vector or more: vectorized over output columns.** A write
  cache of O at a tile of FB channels x XB columns, the reduction over input channels
  outside the channels (unrolled) and the columns (vectorized): rows at least two vectors
  wide take two vectors of columns x as many channels as the registers hold, up to 8
  (AVX-512: 32 x 8; AVX2: 16 x 6; 12 channels spilled registers once an epilogue was
  fused: 2.4 vs 0.8 ms for res2's 1x1 + bias + residual + relu on znver4), with the weights repacked into
  ``Wpack[f // FB, c, 0, 0, f % FB]`` (a step's FB weights share a cache line), narrower
  rows one vector of columns x up to a vector of channels;
* the output rows (fused with the batch and, for 3x3, the channel tiles) are split between
  the cores.

Dilation reads the padded input at ``y * S + ry * D``; grouped convolutions take the 1x1
schedule (vectorized over columns, each channel's group read as a scalar offset).

The depthwise schedule pads the same way, then splits (batch x channel) planes between the
cores; within a plane a write cache of 4 rows x one vector of columns is accumulated in
registers over the (unrolled) filter window.

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.
"""

from __future__ import annotations


from ..dispatch import get_config, template
from .. import te
from .. import dtype as dt
from ..errors import TensorlangValueError
from . import compute
from .common import (accumulator, check_dims, check_weights, cpu, epilogue_of, find_stage,
                     fused_output, input_tagged, knob, register_rows, vector_lanes,
                     view_output)
from ..schedule import create_schedule
from ..te.expr import get_const_tuple

MAX_PIXELS = 14     # columns or pixels of a one-vector register tile


# --------------------------------------------------------------------------- shared helpers

def check_conv2d(op: str, dims: dict, stride, padding, H: int, W: int, KH: int, KW: int,
                 dilation: int = 1):
    """Validate a convolution's int arguments (the window check is
    ``compute.conv2d_output_size``'s); returns (OH, OW)."""
    check_dims(op, **dims, stride=stride, dilation=dilation)
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise TensorlangValueError(f"{op}: padding must be a non-negative int, got {padding!r}")
    return compute.conv2d_output_size(H, W, KH, KW, stride, padding, dilation, op=op)


def check_activation(op: str, activation) -> None:
    """Raise naming ``op`` unless ``activation`` is None or the name of an activation."""
    from .compute.linalg import apply_activation
    apply_activation(te.const(0.0, "float32"), activation, op)          # validates the name


def largest_divisor(n: int, lo: int, hi: int) -> int:
    """The largest divisor of ``n`` in [lo, hi], else ``hi`` (the last tile is partial)."""
    return next((d for d in range(hi, lo - 1, -1) if n % d == 0), hi)


def vectorize_cols(stage, xi, xb):
    """Vectorize a loop of ``xb`` iterations one vector of the target at a time (vectors
    unrolled)."""
    lanes = vector_lanes(stage.op.output(0).dtype)
    if xb > lanes:
        xo, xi = stage.split(xi, factor=lanes)
        stage.unroll(xo)
    stage.vectorize(xi)


def schedule_conv2d_pack_weights(s, WP) -> None:
    """The packing stage: vectorized over a panel's channels, panels in parallel."""
    s[WP].vectorize(s[WP].op.axis[-1])
    s[WP].parallel(s[WP].op.axis[0])


def schedule_conv2d_pad(s, P, outer: int = 2) -> None:
    """A padding stage at the root: ``outer`` outer axes in parallel, the last vectorized."""
    s[P].parallel(s[P].fuse(*s[P].op.axis[:outer]))
    s[P].vectorize(s[P].op.axis[-1])


# --------------------------------------------------------------------------- conv2d_nchw

def conv2d_nchw(N, CI, H, W, CO, KH, KW, stride=1, padding=0, dilation=1, groups=1,
                dtype="float32", bias=False, residual=False, activation=None, *,
                epilogue=None, weights="inline"):
    """O[n, f, y, x] = epi(sum_{c, ry, rx} Apad[n, g*CI/groups + c, y*stride + ry*dilation,
    x*stride + rx*dilation] * W[f, c, ry, rx]), zero padding, g = f // (CO / groups).
    A: (N, CI, H, W), W: (CO, CI // groups, KH, KW), O: (N, CO, OH, OW). Returns
    ``(schedule, [A, W, *epilogue inputs, O])``: the tuned record of an applied (or shipped)
    log if there is one, else the default schedule.

    The epilogue: ``epilogue`` (a function of the output tensor, see the module docstring)
    or the keywords ``bias`` (a (CO,) input), ``residual`` (an input of O's shape, added
    before the activation, as in a ResNet block), ``activation`` (a name of
    ``ACTIVATIONS``); its inputs follow W. ``weights``: ``"inline"``, ``"prepacked"`` (W is
    then ``Wpacked[f // FB, c, ry, rx, f % FB]``, the ``"pack"`` kernel's output) or
    ``"pack"`` (module docstring). Neither is part of the tuning workload, which is
    ``(N, CI, H, W, CO, KH, KW, stride, padding, dtype, dilation, groups)``."""
    op = "conv2d_nchw"
    check_conv2d(op, dict(N=N, CI=CI, H=H, W=W, CO=CO, KH=KH, KW=KW, groups=groups),
                 stride, padding, H, W, KH, KW, dilation)
    if CI % groups or CO % groups:
        raise TensorlangValueError(f"{op}: groups={groups} must divide CI={CI} and CO={CO}")
    check_activation(op, activation)
    return _conv2d_template(N, CI, H, W, CO, KH, KW, stride, padding, dt.check(dtype),
                            dilation, groups,
                            epilogue=epilogue_of(op, epilogue, 1, bias, residual, activation),
                            weights=check_weights(op, weights))


def _pixel_flat(KH, KW, stride, padding, dilation, groups) -> bool:
    """A 1x1 convolution without stride or padding: its output pixels ``y * OW + x`` read
    the input's pixels in the same order, so tiles may run across rows (module docstring)."""
    return KH == KW == stride == 1 and padding == 0 and groups == 1


def _channel_vectorized(KH, KW, OW, groups, lanes, pixel_flat=False) -> bool:
    """Whether the convolution takes the channel-vectorized schedule (module docstring)."""
    return groups == 1 and (KH * KW > 1 or (OW < lanes and not pixel_flat))


def conv2d_nchw_knobs(cfg, CI, CO, KH, KW, OH, OW, groups, dtype, pixel_flat=False) -> dict:
    """The knobs of ``"ops/conv2d_nchw"``, their defaults derived from the target (module
    docstring): ``fb`` (channels of a tile), ``xb`` (columns or pixels of a tile), ``flat``
    (whole planes, or pixels across rows) and whether the weights are packed."""
    lanes = vector_lanes(dtype)
    if _channel_vectorized(KH, KW, OW, groups, lanes, pixel_flat):
        cols = register_rows(2)          # a tile of cols x two channel vectors
        if OW >= 4 * cols and OW % cols == 0:
            fb, xb = 2 * lanes, cols
        else:                                      # one channel vector, a divisor of the row
            fb, xb = lanes, largest_divisor(OW, 7, register_rows(1, MAX_PIXELS))
        # a whole plane's accumulator (OH * OW x FB) small enough for a quarter of L1
        flat = OH * OW * fb * dt.bits(dtype) // 8 <= cpu().l1d_bytes // 4
        return dict(fb=knob(cfg, "fb", [lanes, 2 * lanes], fb),
                    xb=knob(cfg, "xb", [4, 6, 7, 8, 14, 16], xb),
                    flat=bool(knob(cfg, "flat", [0, 1], int(flat))), pack=True)
    wide = (OH * OW if pixel_flat else OW) >= 2 * lanes
    if wide:                                       # channels x two column vectors
        fb, xb = register_rows(2), 2 * lanes
    else:
        fb, xb = register_rows(1, lanes), lanes
    k = dict(fb=knob(cfg, "fb", [4, 6, 8, 12, 14, 16], min(fb, CO // groups)),
             xb=knob(cfg, "xb", [lanes, 2 * lanes], xb), flat=False,
             pack=OW >= 2 * lanes and groups == 1)
    if pixel_flat:            # pack the weights only when they are the smaller operand
        k["flat"] = bool(knob(cfg, "flat", [0, 1], 1))
        k["pack"] = bool(knob(cfg, "pack_w", [0, 1], int(CO * CI <= CI * OH * OW)))
    return k


@template("ops/conv2d_nchw", warn_fallback=False)
def _conv2d_template(N, CI, H, W, CO, KH, KW, stride, padding, dtype, dilation, groups, *,
                     bias=False, residual=False, activation=None, epilogue=None,
                     weights="inline"):
    """compute (``compute.conv2d_nchw_packed``) + ``schedule_conv2d_nchw``, the tile sizes
    knobs (``conv2d_nchw_knobs``)."""
    op = "conv2d_nchw"
    OH, OW = compute.conv2d_output_size(H, W, KH, KW, stride, padding, dilation, op=op)
    epi = epilogue_of(op, epilogue, 1, bias, residual, activation)
    cfg = get_config()
    flat_ok = _pixel_flat(KH, KW, stride, padding, dilation, groups)
    k = conv2d_nchw_knobs(cfg, CI, CO, KH, KW, OH, OW, groups, dtype, flat_ok)
    A = te.placeholder((N, CI, H, W), name="A", dtype=dtype)
    Wt = te.placeholder((CO, CI // groups, KH, KW), name="W", dtype=dtype)
    WP = compute.conv2d_pack_weights(Wt, k["fb"])
    if weights == "pack":
        s = create_schedule(WP.op)
        schedule_conv2d_pack_weights(s, WP)
        return s, [Wt, WP]
    if weights == "prepacked":               # (packed whatever the config: nothing to save)
        Wt = WP = te.placeholder(get_const_tuple(WP.shape), name="Wpacked", dtype=dtype)
    elif not k["pack"]:
        WP = Wt

    def conv(layout, name):
        return compute.conv2d_nchw_packed(A, WP, stride, padding, dilation, groups,
                                          out_channels=CO, layout=layout, name=name)
    if _channel_vectorized(KH, KW, OW, groups, vector_lanes(dtype), flat_ok):
        fb = k["fb"]
        if k["flat"]:                        # pixels p = y * OW + x, tiled across rows
            Oc = conv("flat", "Oc")
            at = lambda n, f, y, x: Oc[n, f // fb, y * OW + x, f % fb]        # noqa: E731
        else:
            Oc = conv("blocked", "Oc")
            at = lambda n, f, y, x: Oc[n, f // fb, y, x, f % fb]              # noqa: E731
        s, O, extra = view_output(op, (N, CO, OH, OW), at, epi, known=[A, Wt])
    elif k["flat"]:                          # pixels p = y * OW + x, tiled across rows
        Op = conv("NCP", "Op")
        s, O, extra = view_output(op, (N, CO, OH, OW), lambda n, f, y, x: Op[n, f, y * OW + x],
                                  epi, known=[A, Wt])
    else:
        s, O, _, extra = fused_output(op, lambda name: conv("NCHW", name), epi, known=[A, Wt])
    schedule_conv2d_nchw(cfg, s, [O])
    return s, [A, Wt, *extra, O]


def schedule_conv2d_nchw(cfg, s, outs) -> None:
    """The schedule of a convolution tagged ``"conv2d_nchw"`` (``compute.conv2d_nchw_packed``)
    computed into ``outs[0]`` (through an inlined epilogue or a view of a blocked
    accumulator), with its padding and weight-packing stages, found by their tags; tile
    sizes from ``cfg`` (``conv2d_nchw_knobs``). A blocked accumulator takes the
    channel-vectorized schedule, an NCHW one the column-vectorized schedule."""
    O = outs[0]
    conv = find_stage(outs, "conv2d_nchw")
    P = input_tagged(conv, "conv2d_pad")
    WP = input_tagged(conv, "conv2d_pack_weights")
    fb, xb = cfg["fb"].val, cfg["xb"].val
    blocked = get_const_tuple(conv.output(0).shape)
    if len(blocked) == 3:                     # NCP: 1x1 pixels across rows
        _schedule_pixels(s, O, conv.output(0), fb, xb)
    elif len(blocked) == 5 or blocked != get_const_tuple(O.shape):
        _schedule_channels(s, O, conv.output(0), fb, xb, flat=len(blocked) == 4)
        if P is not None:
            schedule_conv2d_pad(s, P)
    else:
        O, OL, _ = accumulator(s, outs, "conv2d_nchw")
        ny = _schedule_columns(s, O, OL, fb, xb)
        if P is not None:
            A = P.op.input_tensors[0]
            if get_const_tuple(P.shape)[2] == get_const_tuple(A.shape)[2]:
                s[P].compute_at(s[O], ny)     # no row padding: the rows (and phase) of the row
                s[P].vectorize(s[P].op.axis[-1])
            else:
                schedule_conv2d_pad(s, P)
    if WP is not None:
        schedule_conv2d_pack_weights(s, WP)


def _schedule_channels(s, O, Oc, fb, xb, flat):
    """Kernels larger than 1x1, and 1x1 kernels on rows narrower than a vector: vectorized
    over output channels.

    The output is accumulated in ``Oc[n, f // FB, y, x, f % FB]`` (channels innermost,
    weights packed ``Wpack[f // FB, c, ry, rx, f % FB]``), computed at a tile of XB output
    columns x FB channels; each reduction step is FB/lanes vector loads of weights, XB
    broadcasts of inputs and XB x FB/lanes FMAs on register accumulators. The tile is then
    copied to O's NCHW layout (through the epilogue, if any). The (channel tile, row) pairs
    are split between the cores, channel tiles outermost: the rows of one channel tile reuse
    its weights from L2 (all of res4's 3x3 weights, 2.3 MB, do not fit).

    ``flat`` (small planes, e.g. ResNet's 7x7): ``Oc[n, f // FB, p, f % FB]`` holds a whole
    plane of FB channels, its pixels ``p = y * OW + x`` tiled XB at a time across rows, so a
    7-wide row does not leave most of a tile empty; the channel tiles run in parallel."""
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
    vectorize_cols(s[Oc], fc, fb)


def _schedule_pixels(s, O, Op, fb, xb):
    """1x1 convolutions without stride or padding: the column schedule over the flattened
    pixels ``p = y * OW + x`` (``Op``, the ``"NCP"`` accumulator), so a tile of XB pixels
    runs across rows and a 7-wide plane (ResNet's res5) does not leave half a vector empty:
    FB channels x XB pixels computed at each tile of O, the reduction outside the channels
    (unrolled) and the pixels (vectorized; the input is read in place, one contiguous row of
    pixels per input channel). Whichever operand is larger stays in cache across the other's
    tiles: with more pixels than channels (res2) the pixel tiles are the outer, parallel
    loop, each reading its input tile from L1 for every channel tile; otherwise (res4, res5)
    the channel tiles, each reading its weights once."""
    n, f, y, x = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    po, pi = s[O].split(s[O].fuse(y, x), factor=xb)
    _, CO, OH, OW = get_const_tuple(O.shape)
    if OH * OW > CO:
        s[O].reorder(n, po, fo, fi, pi)
        s[O].parallel(s[O].fuse(n, po))
        at = fo
    else:
        s[O].reorder(n, fo, po, fi, pi)
        s[O].parallel(s[O].fuse(n, fo))
        at = po
    vectorize_cols(s[O], pi, xb)
    s[Op].compute_at(s[O], at)
    _, fc, pc = s[Op].op.axis
    s[Op].reorder(*s[Op].op.reduce_axis, fc, pc)
    s[Op].unroll(fc)
    vectorize_cols(s[Op], pc, xb)


def _schedule_columns(s, O, OL, fb, xb):
    """The 1x1 schedule (also grouped convolutions): a write cache ``OL`` of O at a tile of
    FB channels x XB columns, the reduction outside the channels (unrolled) and the columns
    (vectorized); the (batch, row) pairs in parallel."""
    n, f, y, x = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    xo, xi = s[O].split(x, factor=xb)
    s[O].reorder(n, y, fo, xo, fi, xi)
    vectorize_cols(s[O], xi, xb)
    ny = s[O].fuse(n, y)
    s[O].parallel(ny)
    s[OL].compute_at(s[O], xo)
    _, fc, _, xc = s[OL].op.axis
    s[OL].reorder(*s[OL].op.reduce_axis, fc, xc)
    s[OL].unroll(fc)
    vectorize_cols(s[OL], xc, xb)
    return ny


# --------------------------------------------------------------------------- depthwise

def depthwise_conv2d_nchw(N, C, H, W, KH, KW, stride=1, padding=0, dtype="float32",
                          bias=False, residual=False, activation=None, *, epilogue=None):
    """O[n, c, y, x] = epi(sum_{ry, rx} Apad[n, c, y*stride + ry, x*stride + rx] *
    W[c, 0, ry, rx]), zero padding. A: (N, C, H, W), W: (C, 1, KH, KW), O: (N, C, OH, OW).
    Returns ``(schedule, [A, W, *epilogue inputs, O])``; the epilogue (``epilogue`` or the
    keywords, channel axis 1) is fused as in ``conv2d_nchw`` and not part of the tuning
    workload."""
    op = "depthwise_conv2d_nchw"
    check_conv2d(op, dict(N=N, C=C, H=H, W=W, KH=KH, KW=KW), stride, padding, H, W, KH, KW)
    check_activation(op, activation)
    return _depthwise_template(N, C, H, W, KH, KW, stride, padding, dt.check(dtype),
                               epilogue=epilogue_of(op, epilogue, 1, bias, residual,
                                                    activation))


@template("ops/depthwise_conv2d_nchw", warn_fallback=False)
def _depthwise_template(N, C, H, W, KH, KW, stride, padding, dtype, *, bias=False,
                        residual=False, activation=None, epilogue=None):
    """compute (``compute.depthwise_conv2d_nchw(phase_split=True)``) +
    ``schedule_depthwise_conv2d_nchw``."""
    op = "depthwise_conv2d_nchw"
    cfg = get_config()
    knob(cfg, "yb", [1, 2, 4, 8], 4)
    lanes = vector_lanes(dtype)
    knob(cfg, "xb", [lanes // 2, lanes, 2 * lanes], lanes)
    A = te.placeholder((N, C, H, W), name="A", dtype=dtype)
    Wt = te.placeholder((C, 1, KH, KW), name="W", dtype=dtype)
    s, O, _, extra = fused_output(
        op, lambda name: compute.depthwise_conv2d_nchw(A, Wt, stride, padding,
                                                       phase_split=True, name=name),
        epilogue_of(op, epilogue, 1, bias, residual, activation), known=[A, Wt])
    schedule_depthwise_conv2d_nchw(cfg, s, [O])
    return s, [A, Wt, *extra, O]


def schedule_depthwise_conv2d_nchw(cfg, s, outs) -> None:
    """(batch x channel) planes in parallel; within a plane a write cache of YB rows x XB
    columns accumulated in registers over the (unrolled) filter window."""
    O, OL, conv = accumulator(s, outs, "depthwise_conv2d_nchw")
    P = input_tagged(conv, "conv2d_pad")
    yb, xb = cfg["yb"].val, cfg["xb"].val
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
        schedule_conv2d_pad(s, P)
