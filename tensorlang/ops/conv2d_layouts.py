"""2-D convolutions in the channels-innermost layouts: ``conv2d_nhwc`` (data NHWC, weights
HWIO) and ``conv2d_NCHWc`` (data, weights and output blocked by channels, TOPI's
``NCHW{ic}c`` / ``OIHW{ic}i{oc}o`` / ``NCHW{oc}c``), each with an optional fused epilogue
(``epilogue=``, a function of the output tensor, or the keywords ``O = act(conv +
bias[channel] + residual)``), inlined into the output stage, and the weights packed inside
the kernel or once, ahead (``weights=``, as in ``conv2d_nchw``). A template is a compute
from ``ops.compute`` (``conv2d_pad``, ``conv2d_pack_weights``, ``conv2d_nhwc_packed``,
``kernel_to_oihw_ic_oc``, ``conv2d_NCHWc``) and a schedule (``schedule_conv2d_nhwc``,
``schedule_conv2d_NCHWc``) that finds the convolution from the outputs by its tag.

In both layouts the output channels are innermost, so the GEMM micro-kernel applies
directly, with no layout change of the output:

* **register tile**: the sum is an accumulator stage computed at a tile of XB output
  columns x FB output channels of the output (epilogue) stage. The reduction loops are
  outside the columns (unrolled) and the channels (vectorized, FB / lanes vectors), so the
  XB x FB/lanes accumulators stay in vector registers; each reduction step is FB/lanes
  vector loads of weights, XB broadcasts of inputs and XB x FB/lanes FMAs. The default
  tile is two channel vectors x the columns the registers hold (``register_rows``), up to
  14 (or another divisor of the width from 7): with AVX-512, 14 x 32, 28 of the 32 zmm
  registers and 2 FMAs per broadcast (measured on the ResNet-50 layers on znver5: 5-15%
  faster than 8 x 32 or 14 x 16, e.g. 0.49 vs 0.55 ms for res2's 3x3); with AVX2, 6 x 16. The epilogue (bias,
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
* **NCHWc**: the weights come in panels of oc_block channels
  (``W[fo, c // ic, ry, rx, c % ic, :]``, packed from OIHW inside the kernel or ahead), and the reduction runs (input channel block,
  ry, rx, channel within the block), so that one step's data is contiguous. Blocks default
  to one vector (16 channels with AVX-512, 8 with AVX2), and a tile spans 2 blocks (knob
  ``ob``: blocks per tile), FB = ob x oc_block.
  The (batch, tile of channel blocks, row) triples are split between the cores.

The sizes are knobs of the templates ``"ops/conv2d_nhwc"`` (``fb``, ``xb``, ``pack_w``,
``outer``: channel tiles or rows outermost in the parallel loop) and ``"ops/conv2d_NCHWc"``
(``ic_bn``, ``oc_bn``: the channel blocks of the data and output layouts, ``xb``, ``ob``),
keyed by the convolution's arguments only: the epilogue, the weights mode and explicit
block sizes are keyword arguments, so a record tuned for the plain convolution applies to
the fused one. ``conv2d_NCHWc_layout`` answers which blocks the current dispatch (tuned
record or default) gives, so that a graph compiler can lay out the tensors around the
convolution that way (TVM's alter-op-layout).

Shapes need not divide the tile sizes: tails are guarded and loop partitioning moves the
guards out of the main loops.
"""

from __future__ import annotations


from ..dispatch import get_config, template
from .. import te
from .. import dtype as dt
from ..errors import TensorlangValueError
from ..schedule import create_schedule
from ..te.expr import get_const_tuple
from . import compute
from .common import (check_weights, epilogue_of, find_stage, input_tagged, knob, register_rows,
                     vector_lanes, view_output)
from .conv2d import (MAX_PIXELS, check_activation, check_conv2d, largest_divisor,
                     schedule_conv2d_pack_weights, vectorize_cols)


def _nchwc_epilogue(bias, residual, activation):
    """The keyword epilogue on the blocked output: bias (CO,) at channel ``fo * oc + fi``
    (``compute.bias_add_nchwc``)."""
    from .compute import activation as act, add
    if not (bias or residual or activation is not None):
        return None

    def epilogue(y):
        shape, extra = get_const_tuple(y.shape), []
        if bias:
            b = te.placeholder((shape[1] * shape[4],), name="bias", dtype=y.dtype)
            y, extra = compute.bias_add_nchwc(y, b), [b]
        if residual:
            r = te.placeholder(shape, name="residual", dtype=y.dtype)
            y, extra = add(y, r), extra + [r]
        return (act(y, activation) if activation is not None else y), extra
    return epilogue


def _vectorize_channels(stage, extent):
    """Vectorize the innermost (channel) axis of a copy stage, a vector at a time."""
    c = stage.op.axis[-1]
    lanes = vector_lanes(stage.op.output(0).dtype)
    if extent > lanes:
        _, c = stage.split(c, factor=lanes)
    stage.vectorize(c)


def _micro_kernel(s, out, acc, xb, fb, xo):
    """Compute ``acc`` at ``out``'s tile loop ``xo``: reduction outside, XB columns unrolled,
    FB channels vectorized."""
    s[acc].compute_at(s[out], xo)
    *_, xc, fc = s[acc].op.axis
    s[acc].reorder(*s[acc].op.reduce_axis, xc, fc)
    s[acc].unroll(xc)
    vectorize_cols(s[acc], fc, fb)


def _pack_kernel(WP):
    s = create_schedule(WP.op)
    schedule_conv2d_pack_weights(s, WP)
    return s, [WP.op.input_tensors[0], WP]


# --------------------------------------------------------------------------- NHWC

def conv2d_nhwc(N, H, W, CI, CO, KH, KW, stride=1, padding=0, dtype="float32", *,
                bias=False, residual=False, activation=None, epilogue=None, weights="inline"):
    """O[n, y, x, f] = epi(sum_{ry, rx, c} Apad[n, y*stride + ry, x*stride + rx, c] *
    W[ry, rx, c, f]), zero padding. A: (N, H, W, CI), W: (KH, KW, CI, CO) (HWIO), O:
    (N, OH, OW, CO). The epilogue: ``epilogue`` (a function of O) or the keywords ``bias``
    (CO,), ``residual`` (O's shape), ``activation``, channel axis 3. ``weights``:
    ``"inline"``, ``"prepacked"`` (W is ``Wpacked[f // FB, ry, rx, c, f % FB]``, the
    ``"pack"`` kernel's output) or ``"pack"`` (``(schedule, [W, Wpacked])``). Returns
    ``(schedule, [A, W, *epilogue inputs, O])``: the tuned record of the plain convolution's
    workload if there is one, else the default schedule."""
    op = "conv2d_nhwc"
    check_conv2d(op, dict(N=N, H=H, W=W, CI=CI, CO=CO, KH=KH, KW=KW), stride, padding,
                 H, W, KH, KW)
    check_activation(op, activation)
    return _nhwc_template(N, H, W, CI, CO, KH, KW, stride, padding, dt.check(dtype),
                          epilogue=epilogue_of(op, epilogue, 3, bias, residual, activation),
                          weights=check_weights(op, weights))


@template("ops/conv2d_nhwc", warn_fallback=False)
def _nhwc_template(N, H, W, CI, CO, KH, KW, stride, padding, dtype, *, bias=False,
                   residual=False, activation=None, epilogue=None, weights="inline"):
    """compute (``compute.conv2d_nhwc_packed``) + ``schedule_conv2d_nhwc``, the tile sizes and
    weight packing knobs."""
    op = "conv2d_nhwc"
    OH, OW = compute.conv2d_output_size(H, W, KH, KW, stride, padding, op=op)
    cfg = get_config()
    lanes = vector_lanes(dtype)
    fb = knob(cfg, "fb", [lanes, 2 * lanes, 4 * lanes], lanes if CO <= lanes else 2 * lanes)
    knob(cfg, "xb", [4, 6, 7, 8, 12, 14, 16, 28],
         largest_divisor(OW, 7, register_rows(fb // lanes, MAX_PIXELS)))
    pack = knob(cfg, "pack_w", [0, 1], 1)
    knob(cfg, "outer", ["channel", "row"], "channel")

    A = te.placeholder((N, H, W, CI), name="A", dtype=dtype)
    Wt = te.placeholder((KH, KW, CI, CO), name="W", dtype=dtype)
    WP = compute.conv2d_pack_weights(Wt, fb, "HWIO")
    if weights == "pack":
        return _pack_kernel(WP)
    if weights == "prepacked":               # (packed whatever the config: nothing to save)
        Wt = WP = te.placeholder(get_const_tuple(WP.shape), name="Wpacked", dtype=dtype)
    elif not pack:
        WP = Wt
    Oc = compute.conv2d_nhwc_packed(A, WP, stride, padding, out_channels=CO, name="Oc")
    s, O, extra = view_output(op, (N, OH, OW, CO), lambda *i: Oc[i],
                              epilogue_of(op, epilogue, 3, bias, residual, activation),
                              known=[A, Wt])
    schedule_conv2d_nhwc(cfg, s, [O])
    return s, [A, Wt, *extra, O]


def schedule_conv2d_nhwc(cfg, s, outs) -> None:
    """The NHWC schedule (module docstring) of the convolution tagged ``"conv2d_nhwc"``
    computed at the tiles of ``outs[0]``; its padding and packing stages by their tags."""
    O = outs[0]
    Oc = find_stage(outs, "conv2d_nhwc").output(0)
    P = input_tagged(Oc.op, "conv2d_pad")
    WP = input_tagged(Oc.op, "conv2d_pack_weights")
    fb, xb = cfg["fb"].val, cfg["xb"].val
    n, y, x, f = O.op.axis
    fo, fi = s[O].split(f, factor=fb)
    xo, xi = s[O].split(x, factor=xb)
    if cfg["outer"].val == "channel":
        s[O].reorder(fo, n, y, xo, xi, fi)
        s[O].parallel(s[O].fuse(fo, n, y))
    else:
        s[O].reorder(n, y, fo, xo, xi, fi)
        s[O].parallel(s[O].fuse(n, y))
    vectorize_cols(s[O], fi, fb)
    _micro_kernel(s, O, Oc, xb, fb, xo)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:2]))
        _vectorize_channels(s[P], get_const_tuple(P.shape)[-1])
    if WP is not None:
        schedule_conv2d_pack_weights(s, WP)


# --------------------------------------------------------------------------- NCHWc

_BLOCKS = (1, 2, 4, 8, 16, 32, 64)


def nchwc_knobs(cfg, CI, CO, OW, dtype, ic_block=None, oc_block=None) -> dict:
    """The knobs of ``"ops/conv2d_NCHWc"``, defaults from the target: the channel blocks
    ``ic_bn`` / ``oc_bn`` (divisors of CI / CO up to 64, default one vector of the target
    or the largest divisor below it; explicit ``ic_block`` / ``oc_block`` take their
    place), output channel blocks of a tile ``ob`` (default: two vectors) and columns of a
    tile ``xb`` (a divisor of the row that the registers hold, ``register_rows``)."""
    lanes = vector_lanes(dtype)

    def block(name, C, given):
        cands = [b for b in _BLOCKS if C % b == 0]
        v = knob(cfg, name, cands, max(b for b in cands if b <= lanes))
        return v if given is None else given
    ic = block("ic_bn", CI, ic_block)
    oc = block("oc_bn", CO, oc_block)
    ob = knob(cfg, "ob", [1, 2, 4], max(1, min(2 * lanes // oc, 4, CO // oc)))
    vectors = ob * max(1, oc // lanes)
    xb = knob(cfg, "xb", [4, 6, 7, 8, 14, 16, 28],
              largest_divisor(OW, 7, register_rows(vectors, MAX_PIXELS)))
    return dict(ic=ic, oc=oc, xb=xb, ob=ob)


def _check_nchwc(op, N, CI, H, W, CO, KH, KW, stride, padding, ic_block, oc_block):
    blocks = {k: v for k, v in (("ic_block", ic_block), ("oc_block", oc_block)) if v is not None}
    check_conv2d(op, dict(N=N, CI=CI, H=H, W=W, CO=CO, KH=KH, KW=KW, **blocks), stride,
                 padding, H, W, KH, KW)
    if ic_block is not None and CI % ic_block:
        raise TensorlangValueError(
            f"{op}: CI={CI} input channels are not divisible by ic_block={ic_block}")
    if oc_block is not None and CO % oc_block:
        raise TensorlangValueError(
            f"{op}: CO={CO} output channels are not divisible by oc_block={oc_block}")


def conv2d_NCHWc(N, CI, H, W, CO, KH, KW, stride=1, padding=0, ic_block=None, oc_block=None,
                 dtype="float32", *, bias=False, residual=False, activation=None,
                 epilogue=None, weights="inline"):
    """O[n, fo, y, x, fi] = epi(sum_{co, ry, rx, ci} Apad[n, co, y*stride + ry,
    x*stride + rx, ci] * Wb[fo, co, ry, rx, ci, fi]), zero padding, with ic / oc the channel
    blocks: ``ic_block`` / ``oc_block`` if given, else the config's (``conv2d_NCHWc_layout``
    tells which). A: (N, CI // ic, H, W, ic); O: (N, CO // oc, OH, OW, oc). ``weights``:
    ``"inline"``: W is OIHW (CO, CI, KH, KW), blocked inside the kernel; ``"prepacked"``: W
    is Wb = (CO // oc, CI // ic, KH, KW, ic, oc) (``OIHW{ic}i{oc}o``, the ``"pack"``
    kernel's output); ``"pack"``: ``(schedule, [W, Wb])``. The epilogue: ``epilogue`` (a
    function of the blocked O) or the keywords ``bias`` (CO,) read at ``fo * oc + fi``,
    ``residual`` (O's shape), ``activation``. Returns ``(schedule, [A, W, *epilogue
    inputs, O])``: the tuned record of the convolution's workload ``(N, CI, H, W, CO, KH,
    KW, stride, padding, dtype)`` if there is one, else the default schedule."""
    op = "conv2d_NCHWc"
    _check_nchwc(op, N, CI, H, W, CO, KH, KW, stride, padding, ic_block, oc_block)
    check_activation(op, activation)
    epilogue_of(op, epilogue, 1, bias, residual, activation)      # checks (not both, callable)
    epi = epilogue if epilogue is not None else _nchwc_epilogue(bias, residual, activation)
    return _nchwc_template(N, CI, H, W, CO, KH, KW, stride, padding, dt.check(dtype),
                           ic_block=ic_block, oc_block=oc_block, epilogue=epi,
                           weights=check_weights(op, weights))


def conv2d_NCHWc_layout(N, CI, H, W, CO, KH, KW, stride=1, padding=0, dtype="float32"):
    """``(ic_bn, oc_bn)``: the channel blocks ``conv2d_NCHWc`` uses for this convolution
    under the current dispatch (an applied or shipped tuned record, else the default), i.e.
    the layouts its data ``NCHW{ic_bn}c``, weights ``OIHW{ic_bn}i{oc_bn}o`` and output
    ``NCHW{oc_bn}c`` take."""
    op = "conv2d_NCHWc"
    _check_nchwc(op, N, CI, H, W, CO, KH, KW, stride, padding, None, None)
    return _nchwc_template(N, CI, H, W, CO, KH, KW, stride, padding, dt.check(dtype),
                           layout_only=True)


@template("ops/conv2d_NCHWc", warn_fallback=False, layout_knobs=("ic_bn", "oc_bn"))
def _nchwc_template(N, CI, H, W, CO, KH, KW, stride, padding, dtype, *, ic_block=None,
                    oc_block=None, epilogue=None, weights="inline", layout_only=False):
    """compute (``compute.kernel_to_oihw_ic_oc`` + ``compute.conv2d_NCHWc``) +
    ``schedule_conv2d_NCHWc``, the blocks and tile sizes knobs (``nchwc_knobs``)."""
    op = "conv2d_NCHWc"
    OH, OW = compute.conv2d_output_size(H, W, KH, KW, stride, padding, op=op)
    cfg = get_config()
    k = nchwc_knobs(cfg, CI, CO, OW, dtype, ic_block, oc_block)
    ic, oc = k["ic"], k["oc"]
    if layout_only:
        return ic, oc
    A = te.placeholder((N, CI // ic, H, W, ic), name="A", dtype=dtype)
    Wt = te.placeholder((CO, CI, KH, KW), name="W", dtype=dtype)
    WP = compute.kernel_to_oihw_ic_oc(Wt, ic, oc, name="Wpack")
    if weights == "pack":
        return _pack_kernel(WP)
    if weights == "prepacked":
        Wt = WP = te.placeholder(get_const_tuple(WP.shape), name="W", dtype=dtype)
    Oc = compute.conv2d_NCHWc(A, WP, stride, padding, name="Oc")
    s, O, extra = view_output(op, get_const_tuple(Oc.shape), lambda *i: Oc[i], epilogue,
                              known=[A, Wt])
    schedule_conv2d_NCHWc(cfg, s, [O])
    return s, [A, Wt, *extra, O]


def schedule_conv2d_NCHWc(cfg, s, outs) -> None:
    """The NCHWc schedule (module docstring) of the convolution tagged ``"conv2d_NCHWc"``
    computed at the tiles of ``outs[0]``; its padding and weight-blocking stages by their
    tags."""
    O = outs[0]
    Oc = find_stage(outs, "conv2d_NCHWc").output(0)
    P = input_tagged(Oc.op, "conv2d_pad")
    WP = input_tagged(Oc.op, "conv2d_pack_weights")
    xb, ob = cfg["xb"].val, cfg["ob"].val
    oc = get_const_tuple(Oc.shape)[-1]
    n, fo, y, x, fi = O.op.axis
    foo, foi = s[O].split(fo, factor=ob)
    xo, xi = s[O].split(x, factor=xb)
    s[O].reorder(n, foo, y, xo, foi, xi, fi)
    s[O].parallel(s[O].fuse(n, foo, y))
    vectorize_cols(s[O], fi, oc)
    s[Oc].compute_at(s[O], xo)
    *_, fc, _, xc, fic = s[Oc].op.axis
    s[Oc].reorder(*s[Oc].op.reduce_axis, xc, fc, fic)
    s[Oc].unroll(fc)
    s[Oc].unroll(xc)
    vectorize_cols(s[Oc], fic, oc)
    if P is not None:
        s[P].parallel(s[P].fuse(*s[P].op.axis[:3]))
        _vectorize_channels(s[P], get_const_tuple(P.shape)[-1])
    if WP is not None:
        schedule_conv2d_pack_weights(s, WP)
