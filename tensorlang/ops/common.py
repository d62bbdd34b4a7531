"""Helpers shared by the operators: argument checks and the vector width."""

from __future__ import annotations

from .. import dtype as dt
from .. import te
from ..codegen.target import CPUInfo, Target
from ..errors import TensorlangTypeError, TensorlangValueError
from ..te.expr import get_const_tuple


def check_dims(op: str, **dims) -> None:
    """Raise naming ``op`` and the argument unless every value is a positive int."""
    for name, v in dims.items():
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise TensorlangValueError(f"{op}: {name} must be a positive int, got {v!r}")


def cpu() -> "CPUInfo":
    """What the current build target offers (``tl.target.Target.current().info``): vector
    width and registers, FMA, cache sizes. Schedules derive their sizes from it."""
    return Target.current().info


def vector_lanes(dtype: str) -> int:
    """Elements of ``dtype`` in one vector register of the current target (16 float32 with
    AVX-512, 8 with AVX2)."""
    return cpu().lanes(dt.bits(dtype))


MAX_ROWS = 8    # broadcast rows of a register tile: more did not pay on AVX-512 (GEMM on
                # znver4/5 and rocketlake; a 1x1 conv with a fused epilogue spilled at 12)


def register_rows(vectors: int, cap: int = MAX_ROWS) -> int:
    """Rows of a register tile ``rows x vectors`` (rows: the operands broadcast, vectors: the
    ones loaded) that the target's vector registers hold: ``rows x vectors`` accumulators
    plus one register per loaded vector and one for the broadcast, at most ``cap``.
    AVX-512's 32 registers hold 8 x 2 (or up to 14 x 1), AVX2's 16 hold 6 x 2 (BLIS's
    Haswell kernel) or 14 x 1."""
    return max(1, min(cap, (cpu().vector_registers - vectors - 1) // vectors))


def knob(cfg, name: str, values, default):
    """Define a tuning knob on ``cfg`` whose candidates include ``default`` (the value the
    untuned schedule uses, so that the fallback config is that schedule); its value."""
    cfg.define_knob(name, sorted(set(values) | {default}), default=default)
    return cfg[name].val


def standard_epilogue(op: str, channel_axis: int, bias: bool = False, residual: bool = False,
                      activation: str | None = None):
    """The classic keyword epilogue ``act(y + bias[channel] + residual)`` as an epilogue
    function (see ``fuse_epilogue``), or None when it is empty. ``bias`` is a 1-D input
    along ``channel_axis``, ``residual`` an input of the output's shape."""
    from .compute import ACTIVATIONS, activation as act, add, bias_add
    if not (bias or residual or activation is not None):
        return None
    if activation is not None and activation not in ACTIVATIONS:
        raise TensorlangValueError(f"{op}: activation must be None or one of "
                                   f"{list(ACTIVATIONS)}, got {activation!r}")

    def epilogue(y):
        extra = []
        if bias:
            b = te.placeholder((get_const_tuple(y.shape)[channel_axis],), name="bias",
                               dtype=y.dtype)
            y, extra = bias_add(y, b, axis=channel_axis), extra + [b]
        if residual:
            r = te.placeholder(get_const_tuple(y.shape), name="residual", dtype=y.dtype)
            y, extra = add(y, r), extra + [r]
        if activation is not None:
            y = act(y, activation)
        return y, extra
    return epilogue


def epilogue_of(op: str, epilogue, channel_axis: int, bias=False, residual=False,
                activation=None):
    """The epilogue function of an operator call: ``epilogue`` (any function of the
    anchor's output, see ``fuse_epilogue``) or the one the classic keywords describe (not
    both)."""
    classic = standard_epilogue(op, channel_axis, bias, residual, activation)
    if epilogue is not None and classic is not None:
        raise TensorlangValueError(f"{op}: pass either epilogue= or the bias/residual/"
                                   "activation keywords, not both")
    if epilogue is not None and not callable(epilogue):
        raise TensorlangTypeError(f"{op}: epilogue must be a function of the output tensor "
                                  f"returning a tensor (or (tensor, [inputs])), got "
                                  f"{type(epilogue).__name__}")
    return epilogue if epilogue is not None else classic


def fuse_epilogue(op: str, anchor, epilogue, known=()):
    """Apply ``epilogue`` to the anchor's output tensor: ``(out, extra, inner)`` (``(anchor,
    [], [])`` when ``epilogue`` is None).

    ``epilogue(y)`` builds any DAG of element-wise and broadcast stages over ``y`` (with
    ``ops.compute`` or ``te.compute``), reading as many new inputs as it likes, and returns
    the final tensor, or ``(final, [inputs])`` to fix the order of the new inputs. Without
    that list, ``extra`` are the placeholders it reads, in the order a depth-first walk
    from the final tensor meets them (``add(relu(add(y, b)), r)`` gives ``[b, r]``);
    ``known`` tensors (the operator's own inputs) are left out. ``inner`` are the stages
    between, which a schedule inlines into ``out`` so that the whole epilogue is evaluated
    where each output tile is written. Raises naming the stage when the epilogue is not
    element-wise over ``y`` (a reduction, another shape, a shifted or transposed read)."""
    from ..te.tensor import ComputeOp, PlaceholderOp
    if epilogue is None:
        return anchor, [], []
    res = epilogue(anchor)
    out, given = res if isinstance(res, tuple) else (res, None)
    if not isinstance(out, te.Tensor):
        raise TensorlangTypeError(f"{op}: the epilogue must return a tensor (or (tensor, "
                                  f"[inputs])), got {type(out).__name__}")
    shape = get_const_tuple(anchor.shape)
    if out.op is anchor.op:
        return anchor, [], []
    if get_const_tuple(out.shape) != shape:
        raise TensorlangValueError(f"{op}: the epilogue's result has shape "
                                   f"{get_const_tuple(out.shape)}, expected the output's {shape}: "
                                   "an epilogue is element-wise")
    order, found, seen = [], [], set()
    known_ops = {t.op for t in known}

    def visit(o):
        if o in seen or o is anchor.op:
            return
        seen.add(o)
        if isinstance(o, PlaceholderOp):
            if o not in known_ops:
                found.append(o.output(0))
            return
        for t in o.input_tensors:
            visit(t.op)
        order.append(o)
    visit(out.op)
    on_path = {anchor.op}
    for o in order:
        if not isinstance(o, ComputeOp) or o.reduce_axis:
            raise TensorlangValueError(f"{op}: epilogue stage {o.name!r} is a reduction; an "
                                       "epilogue holds element-wise and broadcast stages only")
        if any(t.op in on_path for t in o.input_tensors):
            on_path.add(o)
            _check_elementwise(op, o, on_path, shape)
    if given is not None:
        if {t.op for t in given} != {t.op for t in found}:
            raise TensorlangValueError(
                f"{op}: the epilogue's inputs {[t.op.name for t in given]} are not the "
                f"placeholders it reads {[t.op.name for t in found]}")
        found = list(given)
    return out, found, [o.output(0) for o in order if o is not out.op]


def _check_elementwise(op: str, stage, on_path: set, shape: tuple) -> None:
    """Every read of the anchor (or of an epilogue stage over it) in ``stage`` is at the
    stage's own index, and the stage has the anchor's shape."""
    from ..arith import walk
    from ..te.expr import TensorLoad
    if get_const_tuple(stage.output(0).shape) != shape:
        raise TensorlangValueError(f"{op}: epilogue stage {stage.name!r} has shape "
                                   f"{get_const_tuple(stage.output(0).shape)}, expected {shape}")
    axes = [iv.var for iv in stage.axis]
    for n in walk(stage.body):
        if isinstance(n, TensorLoad) and n.tensor.op in on_path:
            if len(n.indices) != len(axes) or not all(
                    i is v or d == 1 and getattr(i, "value", None) == 0     # a broadcast size 1
                    for i, v, d in zip(n.indices, axes, shape)):
                raise TensorlangValueError(
                    f"{op}: epilogue stage {stage.name!r} reads {n.tensor.op.name!r} at "
                    f"[{', '.join(map(str, n.indices))}], not at its own index: an epilogue "
                    "is element-wise over the output")


def view_output(op: str, shape: tuple, at, epilogue=None, known=(), name: str = "O"):
    """For an operator that accumulates in a blocked layout: the output stage ``name`` of
    ``shape`` reading ``at(*i)`` (the accumulator, unblocked), followed by ``epilogue``, in
    one stage: ``(s, out, extra)``. The view and the epilogue's inner stages are inlined
    into ``out``."""
    from ..schedule import create_schedule
    view = te.compute(shape, at, name=name)
    out, extra, inner = fuse_epilogue(op, view, epilogue, known)
    s = create_schedule(out.op)
    for t in [view, *inner] if out is not view else []:
        s[t].compute_inline()
    return s, out, extra


def fused_output(op: str, make, epilogue=None, known=(), name: str = "O"):
    """``(s, out, anchor, extra)``: the anchor ``make(name)`` (``make("acc")`` under an
    epilogue) followed by ``epilogue``, whose inner stages are inlined into ``out``; without
    an epilogue ``out`` is the anchor."""
    from ..schedule import create_schedule
    acc = make(name if epilogue is None else "acc")
    out, extra, inner = fuse_epilogue(op, acc, epilogue, known)
    s = create_schedule(out.op)
    for t in inner:
        s[t].compute_inline()
    return s, out, acc, extra


def find_stage(outs, tag):
    """The compute op tagged ``tag`` (or one of a tuple of tags) that the outputs ``outs``
    (tensors or ops) are computed from (depth first from the outputs, the way TOPI's
    schedules find their anchor), or None."""
    from ..te.tensor import ComputeOp
    tags = (tag,) if isinstance(tag, str) else tuple(tag)
    seen, todo = set(), [getattr(o, "op", o) for o in outs]
    while todo:
        op = todo.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        if op.tag in tags:
            return op
        seen.add(op)
        todo.extend(t.op for t in reversed(op.input_tensors))
    return None


def accumulator(s, outs, tag: str):
    """``(out, acc, anchor)`` for a schedule: the output stage, the stage that accumulates
    (the anchor op tagged ``tag``, or its write cache when the anchor is the output: either
    way a stage the schedule computes at tiles of ``out``) and the anchor op."""
    out = outs[0]
    anchor = find_stage(outs, tag)
    if anchor is out.op:
        return out, s.cache_write(out, "global"), anchor
    return out, anchor.output(0), anchor


def find_anchor(s, out, tags):
    """The tensor of the stage tagged with one of ``tags`` that ``out`` is computed from (the
    operator's output, the anchor of its schedule). Every stage between it and ``out`` (an
    epilogue's) is inlined into ``out``, and so is the anchor when it is element-wise and
    not ``out`` itself: ``out`` is then scheduled as the anchor would be."""
    from ..te.tensor import ComputeOp
    anchor = find_stage([out], tags)
    if anchor is None:
        raise TensorlangValueError(f"{out.op.name}: no stage tagged {tags!r} in its dataflow")
    seen, todo = {anchor}, [out.op]
    while todo:
        op = todo.pop()
        if op in seen or not isinstance(op, ComputeOp):
            continue
        seen.add(op)
        if op is not out.op:
            s[op].compute_inline()
        todo.extend(t.op for t in op.input_tensors)
    if anchor is not out.op and not anchor.reduce_axis:
        s[anchor].compute_inline()
    return anchor.output(0)


def input_stages(T) -> tuple:
    """The compute stages ``T`` reads (transitively), in dataflow order, as
    ``(element-wise stages, reductions)``."""
    from ..te.tensor import ComputeOp
    order, seen = [], set()

    def visit(op):
        if op in seen or not isinstance(op, ComputeOp):
            return
        seen.add(op)
        for t in op.input_tensors:
            visit(t.op)
        order.append(op.output(0))
    for t in T.op.input_tensors:
        visit(t.op)
    return [t for t in order if not t.op.reduce_axis], [t for t in order if t.op.reduce_axis]


def placeholders(T) -> list:
    """The placeholders ``T`` reads (transitively), in the order a depth-first walk meets them."""
    from ..te.tensor import PlaceholderOp
    out, seen = [], set()

    def visit(op):
        if op in seen:
            return
        seen.add(op)
        if isinstance(op, PlaceholderOp):
            out.append(op.output(0))
        for t in op.input_tensors:
            visit(t.op)
    visit(T.op)
    return out


def input_tagged(op, tag: str):
    """The input tensor of ``op`` computed by a stage tagged ``tag``, or None."""
    return next((t for t in op.input_tensors if getattr(t.op, "tag", None) == tag), None)


WEIGHT_MODES = ("inline", "prepacked", "pack")


def check_weights(op: str, weights) -> str:
    """``weights=``: ``"inline"`` (the kernel packs the weights it reads), ``"prepacked"``
    (the kernel reads weights packed by the ``"pack"`` kernel) or ``"pack"`` (the packing
    kernel, ``(schedule, [W, Wpacked])``, of the same config as the kernel)."""
    if weights not in WEIGHT_MODES:
        raise TensorlangValueError(f"{op}: weights must be one of {list(WEIGHT_MODES)}, got "
                                   f"{weights!r}")
    return weights
