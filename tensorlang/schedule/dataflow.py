"""Dataflow-rewriting primitives: ``cache_read``, ``cache_write`` and ``rfactor``.

Each adds a stage for a new operation and gives the stages it touches a new *current*
operation (``stage.op``); operations themselves are immutable, and a stage keeps computing
the same result (``stage.origin_op``), so the user's tensors stay valid arguments.
"""

from __future__ import annotations

from ..arith import rewrite, substitute
from ..errors import ScheduleError, TensorlangTypeError
from ..te.expr import Const, IterVar, Range, Reduce, Select, TensorLoad, Var, cast
from ..te.tensor import ComputeOp, Operation, Tensor, index_dtype
from .schedule import Schedule, Split, Stage, _scope


def _stage(sch: Schedule, tensor, who: str) -> Stage:
    if not isinstance(tensor, Tensor):
        raise TensorlangTypeError(f"{who}: expected a tensor, got {type(tensor).__name__} {tensor!r}")
    return sch[tensor]


def _retarget(op: ComputeOp, src: Stage, dst: Tensor, sch: Schedule) -> ComputeOp:
    """``op`` with every read of ``src``'s result redirected to ``dst``."""
    def fn(n):
        if isinstance(n, TensorLoad) and sch.stage_of(n.tensor) is src:
            return TensorLoad(dst, n.indices, n.dtype)
        return None
    return ComputeOp(op.name, op.tag, op.axis, rewrite(op.body, fn), op.shape)


def _copy_axes(op: Operation, suffix: str) -> list:
    """Fresh data axes over ``op``'s domain (named after its axes, or ``ax0, ax1, ...``)."""
    if op.axis:
        return [IterVar(iv.dom, Var(iv.name + suffix, iv.dtype), "data") for iv in op.axis]
    return [IterVar(Range(Const(0, index_dtype(s.dtype)), cast(index_dtype(s.dtype), s)),
                    Var(f"ax{n}", index_dtype(s.dtype)), "data") for n, s in enumerate(op.shape)]


def cache_read(sch: Schedule, tensor: Tensor, scope: str, readers) -> Tensor:
    src = _stage(sch, tensor, "cache_read")
    scope = _scope(scope, f"cache_read({tensor.name})")
    readers = list(readers) if isinstance(readers, (list, tuple)) else [readers]
    if not readers:
        raise ScheduleError(f"cache_read({tensor.name}): give the stages that should read the cache")
    stages = []
    for r in readers:
        st = sch[r]
        if src not in sch.reads(st):
            raise ScheduleError(f"cache_read({tensor.name}): stage {st.op.name!r} does not read "
                                f"{tensor.name!r} (it reads "
                                f"{', '.join(p.op.name for p in sch.reads(st)) or 'nothing'})")
        if st not in stages:
            stages.append(st)
    axes = _copy_axes(src.op, ".c")
    body = TensorLoad(tensor, tuple(iv.var for iv in axes), tensor.dtype)
    cache = ComputeOp(f"{tensor.name}.{'global' if scope == 'auto' else scope}", "", axes,
                      body, tensor.shape)
    st = sch._add_stage(cache, sch.stages.index(src) + 1)
    st.scope = scope
    for r in stages:
        sch._replace_op(r, _retarget(r.op, src, cache.output(0), sch), keep_loops=True)
    return cache.output(0)


def cache_write(sch: Schedule, tensor: Tensor, scope: str) -> Tensor:
    st = _stage(sch, tensor, "cache_write")
    scope = _scope(scope, f"cache_write({tensor.name})")
    op = st.op
    if not isinstance(op, ComputeOp):
        raise ScheduleError(f"cache_write({tensor.name}): {tensor.name!r} is a placeholder; only "
                            "computed tensors are written")
    if st._scheduled() or st.attach_type != "root":
        raise ScheduleError(f"cache_write({tensor.name}): stage {op.name!r} is already scheduled "
                            "(split, reordered, annotated or attached); call cache_write first "
                            "and then schedule both stages")
    axes = _copy_axes(op, ".c")
    body = substitute(op.body, {old: new.var for old, new in zip(op.axis, axes)})
    cache = ComputeOp(f"{op.name}.{'global' if scope == 'auto' else scope}", op.tag, axes, body,
                      op.shape)
    cst = sch._add_stage(cache, sch.stages.index(st))
    cst.scope = scope
    copy = ComputeOp(op.name, op.tag, op.axis,
                     TensorLoad(cache.output(0), tuple(iv.var for iv in op.axis), op.dtype), op.shape)
    sch._replace_op(st, copy, keep_loops=False)
    return cache.output(0)


def rfactor(sch: Schedule, tensor: Tensor, axis: IterVar, factor_axis: int = 0) -> Tensor:
    from .bound import root_values, stage_ranges
    st = _stage(sch, tensor, "rfactor")
    op, me = st.op, tensor.name
    if not (isinstance(op, ComputeOp) and isinstance(op.body, Reduce)):
        raise ScheduleError(f"rfactor({me}): {me!r} is not a reduction")
    axis = st._leaf(axis, "rfactor")
    if axis.kind != "reduce":
        reds = [iv.name for iv in st.leaf_iter_vars if iv.kind == "reduce"]
        raise ScheduleError(f"rfactor({me}): {axis.name!r} is a data axis; rfactor needs one of "
                            f"{me!r}'s reduction loops ({', '.join(reds)})")
    if any((r.parent if isinstance(r, Split) else r.outer).kind == "data" for r in st.relations):
        raise ScheduleError(f"rfactor({me}): call rfactor before splitting or fusing {me!r}'s "
                            "data axes (its loop nest is rebuilt)")
    if st.iter_var_attrs or st.pragmas:
        raise ScheduleError(f"rfactor({me}): call rfactor before annotating {me!r}'s loops (its "
                            "loop nest is rebuilt); annotate the stages rfactor returns")
    if isinstance(factor_axis, bool) or not isinstance(factor_axis, int) \
            or not 0 <= factor_axis <= len(op.axis):
        raise ScheduleError(f"rfactor({me}): factor_axis must be an int in [0, {len(op.axis)}], "
                            f"got {factor_axis!r}")
    body: Reduce = op.body
    rng = stage_ranges(st, {iv: iv.dom for iv in list(op.axis) + list(op.reduce_axis)})
    root, guards = root_values(st, rng)
    ext = rng[axis].extent
    # the rf stage: the original data axes plus `axis` as a data axis; the other reduction
    # loops become its reduction axes
    data = [IterVar(iv.dom, Var(iv.name, iv.dtype), "data") for iv in op.axis]
    fvar = IterVar(Range(Const(0, axis.dtype), ext), Var(axis.name, axis.dtype), "data")
    data.insert(factor_axis, fvar)
    others = [iv for iv in st.leaf_iter_vars if iv.kind == "reduce" and iv is not axis]
    red = [IterVar(Range(Const(0, iv.dtype), rng[iv].extent), Var(iv.name, iv.dtype), "reduce")
           for iv in others]
    leaf_to_new = {axis: fvar.var, **{o: n.var for o, n in zip(others, red)}}
    mapping = {iv: substitute(root[iv], leaf_to_new) for iv in op.reduce_axis}
    mapping.update({old: new.var for old, new in zip(op.axis, [d for d in data if d is not fvar])})
    source = substitute(body.source, mapping)
    cond = substitute(body.condition, mapping)
    for _, g in guards:
        cond = cond & substitute(g, leaf_to_new)
    if red:
        rf_body = Reduce(body.combiner, source, tuple(red), cond, body.dtype)
    elif isinstance(cond, Const) and cond.value:
        rf_body = source
    else:
        rf_body = Select(cond, source, body.combiner.identity, body.dtype)
    shape = tuple(op.shape[:factor_axis]) + (ext,) + tuple(op.shape[factor_axis:])
    rf = ComputeOp(f"{op.name}.rf", op.tag, data, rf_body, shape)
    sch._add_stage(rf, sch.stages.index(st))
    # the original stage reduces the partial results over the new dimension
    k = IterVar(Range(Const(0, axis.dtype), ext), Var(axis.name + ".v", axis.dtype), "reduce")
    idx = [iv.var for iv in op.axis]
    idx.insert(factor_axis, k.var)
    final = Reduce(body.combiner, TensorLoad(rf.output(0), tuple(idx), body.dtype), (k,),
                   Const(True, "bool"), body.dtype)
    sch._replace_op(st, ComputeOp(op.name, op.tag, op.axis, final, op.shape), keep_loops=False)
    return rf.output(0)
