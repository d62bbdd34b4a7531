"""2-D pooling over NCHW: ``max_pool2d`` and ``avg_pool2d`` (the semantics of
:func:`tensorlang.ops.compute.nn.max_pool2d` / ``avg_pool2d``: padding with -inf for max
and with zeros for the average, ``count_include_pad``, floor-mode output sizes).

The template ``"ops/pool2d"`` is ``compute.max_pool2d`` / ``compute.avg_pool2d`` (one
definition: the phase-split padding below is theirs) scheduled by ``schedule_pool``, which
finds the output stage by its tag (``"pool_max"``, ``"pool_avg"``). Both operators take
``epilogue=`` (element-wise stages over the output, e.g. a relu or a residual add,
inlined into the output stage as each tile is written; see ``common.fuse_epilogue``).
The schedule:

* the (n, c) planes run in parallel (when the input has ``PARALLEL_MIN`` elements);
* the padded input is a stage computed once per plane (52 KB for a 112 x 112 plane: it
  stays in L2 while the plane's windows read it, and the window loops carry no
  bounds tests). For a column stride S > 1 its columns are **split by phase**:
  ``Pd[n, c, y, p, q] = padded[n, c, y, q * S + p]`` (``compute.nn.pool_pad``), so that the
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


from ..dispatch import get_config, template
from .. import dtype as dt
from .. import te
from ..errors import TensorlangTypeError, TensorlangValueError
from ..schedule import create_schedule
from . import compute
from .common import check_dims, epilogue_of, find_anchor, fuse_epilogue, knob, vector_lanes
from .compute.nn import pool_args
from .injective import PARALLEL_MIN


def _check(op, N, C, H, W, kernel, stride, padding, dtype):
    check_dims(op, N=N, C=C, H=H, W=W)
    dtype = dt.check(dtype)
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    _, K, S, P, _ = pool_args(op, X, kernel, stride, padding)
    return [list(K), list(S), list(P)], dtype


def max_pool2d(N: int, C: int, H: int, W: int, kernel, stride=None, padding=0,
               dtype: str = "float32", epilogue=None):
    """O[n, c, y, x] = max of the ``kernel`` window at (y * sh - ph, x * sw - pw) of X
    (NCHW, padded with -inf); ``stride`` defaults to ``kernel``, padding at most half the
    kernel. Returns ``(schedule, [X, (epilogue inputs...,) O])`` (template ``"ops/pool2d"``)."""
    (K, S, P), dtype = _check("max_pool2d", N, C, H, W, kernel, stride, padding, dtype)
    return _pool_template("max", N, C, H, W, K, S, P, True, dtype,
                          epilogue=epilogue_of("max_pool2d", epilogue, 1))


def avg_pool2d(N: int, C: int, H: int, W: int, kernel, stride=None, padding=0,
               count_include_pad: bool = True, dtype: str = "float32", epilogue=None):
    """The mean of each ``kernel`` window of the zero-padded X (NCHW); with
    ``count_include_pad=False`` the divisor counts only the window's in-bounds elements.
    Returns ``(schedule, [X, (epilogue inputs...,) O])`` (template ``"ops/pool2d"``)."""
    (K, S, P), dtype = _check("avg_pool2d", N, C, H, W, kernel, stride, padding, dtype)
    if not dt.is_float(dtype):
        raise TensorlangTypeError(f"avg_pool2d: dtype must be a float type, got {dtype}")
    if not isinstance(count_include_pad, bool):
        raise TensorlangValueError(
            f"avg_pool2d: count_include_pad must be a bool, got {count_include_pad!r}")
    return _pool_template("avg", N, C, H, W, K, S, P, count_include_pad, dtype,
                          epilogue=epilogue_of("avg_pool2d", epilogue, 1))


@template("ops/pool2d", warn_fallback=False)
def _pool_template(kind, N, C, H, W, K, S, P, count_include_pad, dtype, *, epilogue=None):
    cfg = get_config()
    phase = bool(knob(cfg, "phase", [0, 1], 1)) if S[1] > 1 else False
    X = te.placeholder((N, C, H, W), name="X", dtype=dtype)
    if kind == "max":
        T = compute.max_pool2d(X, K, S, P, phase=phase)
    else:
        T = compute.avg_pool2d(X, K, S, P, count_include_pad, phase=phase)
    out, extra, _ = fuse_epilogue(f"{kind}_pool2d", T, epilogue, [X])
    s = create_schedule(out.op)
    schedule_pool(cfg, s, [out])
    return s, [X, *extra, out]


def schedule_pool(cfg, s, outs):
    """Schedule a pooling output (anchor tag ``"pool_max"`` or ``"pool_avg"``, see the module
    docstring): knobs ``nv`` and ``parallel``. Returns ``s``."""
    out, = outs
    anchor = find_anchor(s, out, ("pool_max", "pool_avg"))
    window = anchor if anchor.op.reduce_axis else \
        next(t for t in anchor.op.input_tensors if t.op.tag == "pool_sum")
    src = window.op.input_tensors[0]          # the padded input stage, or X
    Pd = src if src.op.tag == "pool_pad" else None
    # max: the window reduction is the anchor (a write cache when it is the output)
    acc = s.cache_write(out, "global") if window.op is out.op else window
    X = Pd.op.input_tensors[0] if Pd is not None else src
    lanes = vector_lanes(anchor.dtype)
    OW = int(getattr(out.shape[-1], "value", out.shape[-1]))
    size = 1
    for d in X.shape:
        size *= int(getattr(d, "value", d))
    nv = knob(cfg, "nv", [1, 2, 4], 4 if OW > 2 * lanes else 2 if OW > lanes else 1)
    parallel = bool(knob(cfg, "parallel", [0, 1], int(size >= PARALLEL_MIN)))
    n, c, y, x = out.op.axis
    plane = s[out].fuse(n, c)
    xo, xi = s[out].split(x, factor=lanes * nv)
    s[out].vectorize(xi)
    if parallel:
        s[out].parallel(plane)
    s[acc].compute_at(s[out], xo)
    *_, xa = s[acc].op.axis
    s[acc].reorder(*s[acc].op.reduce_axis, xa)
    xu, xv = s[acc].split(xa, factor=lanes)
    s[acc].unroll(xu)
    s[acc].vectorize(xv)
    if Pd is not None:
        s[Pd].compute_at(s[out], plane)
        s[Pd].vectorize(s[Pd].split(s[Pd].op.axis[-1], factor=lanes)[1])
    return s
