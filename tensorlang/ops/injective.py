"""Injective operators (each output element reads a bounded number of input elements):
``injective(op, *shapes, **attrs)`` builds one of the element-wise, broadcast and layout
operators of :mod:`tensorlang.ops.compute` over placeholders and schedules it with
``schedule_injective``, TOPI's schedule for such operators:

* every injective intermediate stage is inlined, so the output is one loop nest reading the
  inputs directly (one pass over memory);
* the output's axes are fused into one loop, split into vectors (one 512-bit register, 16
  float32) with ``vec`` vectors unrolled per iteration; when the innermost dimension is not
  a multiple of the vector width, or the nest moves channels between NCHW and NCHW{c}c (a
  ``layout_transform`` stage, whose ``ch // c``, ``ch % c`` indices are affine in a row but
  not across rows), only the leading axes are fused and the innermost axis is vectorized on
  its own (a broadcast operand's index then stays affine in the vector loop, and tails are
  guarded per row instead of gathering across rows);
* the outer loop runs in parallel once the output has ``PARALLEL_MIN`` (32K) elements: a
  fork/join costs 1-2 µs, about what one core needs to stream 32K float32 in and out of
  L2 at these sizes, so below that the second core would not pay for waking it;
* ``transpose`` moving the last axis reads one input column per output row, with a stride
  of a whole row; it is tiled instead: blocks of ``TILE`` x ``TILE`` of the last two
  output axes, so a block's reads and writes both stay in a few cache lines (``tile`` knob;
  0 is the untiled schedule).

The template ``"ops/injective"`` has the knobs ``vec`` (vectors per iteration, default 1:
these loops are memory-bound, unrolling measured no different) and ``parallel``
(default: by the size threshold above), plus ``tile`` for a transpose.
"""

from __future__ import annotations

import json


from ..dispatch import get_config, template
from .. import dtype as dt
from .. import te
from ..errors import TensorlangTypeError, TensorlangValueError
from ..schedule import create_schedule
from . import compute as C
from .common import knob, vector_lanes

PARALLEL_MIN = 32 * 1024     # elements of an output worth splitting between the cores
TILE = 16                    # transpose blocks: TILE x TILE output elements

UNARY = ("relu", "gelu", "silu", "sigmoid", "tanh", "exp", "log", "sqrt", "abs", "negative",
         "clip", "cast", "transpose", "reshape", "pad", "expand_dims", "squeeze",
         "nchw_to_nchwc", "nchwc_to_nchw")
BINARY = ("add", "subtract", "multiply", "divide", "maximum", "minimum", "power")
# op -> (attribute names the compute function takes, with their defaults)
ATTRS = {
    "gelu": {"approximate": "none"}, "clip": {"a_min": None, "a_max": None},
    "cast": {"to": None}, "transpose": {"axes": None}, "reshape": {"newshape": None},
    "concatenate": {"axis": 0}, "pad": {"pad_width": None, "value": 0.0},
    "take": {"axis": None}, "expand_dims": {"axis": None}, "squeeze": {"axis": None},
    "nchw_to_nchwc": {"block": None},
}
OPS = tuple(sorted(UNARY + BINARY + ("concatenate", "take")))


def _size(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


def schedule_injective(s, out, vec: int = 1, parallel: bool | None = None):
    """Schedule the injective ``out`` (a tensor of schedule ``s``): inline the injective
    compute stages it reads, fuse its axes, vectorize the innermost ``vec`` vectors and run
    the outer loop in parallel (``parallel=None``: when it has PARALLEL_MIN elements or
    more). Returns ``s``."""
    stage = s[out]
    relayout = any(st.op.tag == "layout_transform" for st in s.stages
                   if isinstance(st.op, te.ComputeOp))
    for st in s.stages:
        op = st.op
        if st is not stage and isinstance(op, te.ComputeOp) and not op.reduce_axis:
            st.compute_inline()
    shape = [int(getattr(d, "value", d)) for d in out.shape]
    if not shape:
        return s
    lanes = vector_lanes(out.dtype)
    size = _size(shape)
    if parallel is None:
        parallel = size >= PARALLEL_MIN
    axes = list(out.op.axis)
    if (shape[-1] % lanes == 0 and not relayout) or len(axes) == 1:
        outer, inner = None, stage.fuse(*axes) if len(axes) > 1 else axes[0]
    else:                                  # keep rows apart: the vector loop stays affine
        outer = stage.fuse(*axes[:-1]) if len(axes) > 2 else axes[0]
        inner = axes[-1]
    width = lanes * vec
    io, ii = stage.split(inner, factor=width)
    if vec > 1:
        iu, iv = stage.split(ii, factor=lanes)
        stage.unroll(iu)
        stage.vectorize(iv)
    else:
        stage.vectorize(ii)
    if parallel and size > width:
        stage.parallel(stage.fuse(outer, io) if outer is not None else io)
    return s


def _schedule_transpose(s, out, tile: int, parallel: bool):
    """The last two output axes in ``tile`` x ``tile`` blocks, the block's columns vectorized
    (each vector a gather of ``tile`` input rows that the block keeps in L1)."""
    stage = s[out]
    *lead, y, x = out.op.axis
    yo, xo, yi, xi = stage.tile(y, x, tile, tile)
    stage.vectorize(xi)
    outer = stage.fuse(*lead, yo) if lead else yo
    if parallel:
        stage.parallel(outer)
    return s


def _json(v):
    """``v`` with tuples as lists (a workload key is JSON)."""
    return json.loads(json.dumps(v))


def injective(op: str, *shapes, dtype: str = "float32", **attrs):
    """``op`` (a name of :mod:`tensorlang.ops.compute`, see ``OPS``) over placeholders of
    ``shapes`` (two for a binary op, any number for ``concatenate``, data and indices for
    ``take``), with the operator's attributes as keywords (``gelu``: approximate; ``clip``:
    a_min, a_max; ``cast``: to; ``transpose``: axes; ``reshape``: newshape; ``concatenate``,
    ``take``, ``expand_dims``, ``squeeze``: axis; ``pad``: pad_width, value;
    ``nchw_to_nchwc``: block). Returns ``(schedule, [inputs..., out])`` (template
    ``"ops/injective"``; ``take``'s indices are int64)."""
    if op not in OPS:
        raise TensorlangValueError(f"injective: unknown op {op!r}; known ops: {', '.join(OPS)}")
    n_in = {**dict.fromkeys(BINARY, 2), "take": 2}.get(op, 1)
    if op == "concatenate":
        if not shapes:
            raise TensorlangValueError("injective: concatenate needs at least one shape")
    elif len(shapes) != n_in:
        raise TensorlangValueError(f"injective: {op} takes {n_in} shape(s), got {len(shapes)}")
    norm = []
    for n, shape in enumerate(shapes):
        if not isinstance(shape, (tuple, list)):
            raise TensorlangTypeError(f"injective: shapes[{n}] must be a tuple of ints, "
                                      f"got {shape!r}")
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int) or d <= 0:
                raise TensorlangValueError(f"injective: shapes[{n}] must have positive int "
                                           f"dimensions, got {tuple(shape)!r}")
        norm.append(list(shape))
    known = ATTRS.get(op, {})
    for name in attrs:
        if name not in known:
            raise TensorlangValueError(f"injective: {op} takes no attribute {name!r} "
                                       f"(its attributes: {', '.join(known) or 'none'})")
    for name, default in known.items():
        if default is None and name not in attrs and op not in ("clip", "transpose",
                                                                "take", "squeeze"):
            raise TensorlangValueError(f"injective: {op} needs the attribute {name!r}")
    try:
        pairs = _json(sorted([k, v] for k, v in attrs.items()))
    except (TypeError, ValueError):
        raise TensorlangTypeError(f"injective: attributes {attrs!r} must be JSON values "
                                  "(numbers, strings, lists)") from None
    dtype = dt.check(dtype)
    _build(op, norm, dtype, pairs)          # validates the attributes (compute's checks)
    return _injective_template(op, norm, dtype, pairs)


def _build(op, shapes, dtype, attrs):
    """The placeholders and the output of ``op``."""
    attrs = dict(attrs)
    ins = [te.placeholder(tuple(sh), name=f"X{n}", dtype=dtype) for n, sh in enumerate(shapes)]
    if op == "take":
        ins[1] = te.placeholder(tuple(shapes[1]), name="indices", dtype="int64")
        return ins, C.take(ins[0], ins[1], attrs.get("axis"))
    if op == "concatenate":
        return ins, C.concatenate(ins, attrs.get("axis", 0))
    if op in BINARY:
        return ins, getattr(C, op)(*ins)
    X, = ins
    if op == "cast":
        return ins, C.cast(X, attrs["to"])
    if op == "nchw_to_nchwc":
        return ins, C.nchw_to_nchwc(X, attrs["block"])
    if op == "nchwc_to_nchw":
        return ins, C.nchwc_to_nchw(X)
    if op == "clip":
        return ins, C.clip(X, attrs.get("a_min"), attrs.get("a_max"))
    return ins, getattr(C, op)(X, **attrs)


@template("ops/injective", warn_fallback=False)
def _injective_template(op, shapes, dtype, attrs):
    ins, out = _build(op, shapes, dtype, attrs)
    s = create_schedule(out.op)
    cfg = get_config()
    shape = [int(getattr(d, "value", d)) for d in out.shape]
    parallel = bool(knob(cfg, "parallel", [0, 1], int(_size(shape) >= PARALLEL_MIN)))
    axes = dict(attrs).get("axes")
    moves_last = op == "transpose" and len(shape) >= 2 and (
        axes is None or axes[-1] % len(shape) != len(shape) - 1)
    vec = knob(cfg, "vec", [1, 2, 4], 1)
    if moves_last and knob(cfg, "tile", [0, 8, 16, 32], TILE):
        return _schedule_transpose(s, out, cfg["tile"].val, parallel), ins + [out]
    return schedule_injective(s, out, vec, parallel), ins + [out]
