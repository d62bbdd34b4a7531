"""Schedule -> loop IR: build each stage's loop nest from its leaf iteration variables.

Root stages follow one another at the top level; a stage computed at a loop of another
(``compute_at``) is built inside that loop, before the rest of its body, with its buffer
allocated there at the size bound inference gave its region. Inlined stages have no nest.
For every stage this

1. takes the leaf loops (outermost first) with the ranges from bound inference;
2. rebuilds each original axis as an expression of the leaves, undoing splits
   (``x = xo*f + xi``) and fuses (``a = f // ext(b)``, ``b = f % ext(b)``);
3. guards every split that is not provably exact (``xo*f + xi < ext``), placing each guard
   right inside the innermost loop it depends on;
4. for a reduction, initialises the accumulator just outside the first reduction loop (with
   its own copy of the data-parallel loops below that point) and then updates it.

Intermediate tensors that are not function arguments get an ``Allocate`` (stack when small
and constant-sized, heap otherwise). Tensor reads become buffer ``Load``s, offset by the
start of the region an attached stage's buffer holds.
"""

from __future__ import annotations

from collections import defaultdict

import re

from .. import dtype as dt
from ..arith import const_int, free_vars, is_index_expr, rewrite, simplify, substitute, walk
from ..errors import LoweringError, ScheduleError, TensorlangTypeError
from ..schedule.bound import Bounds, fixed_loops, infer_bounds, root_values
from ..schedule.graph import check_attachments, inline_bodies, reader_map
from ..schedule.schedule import Schedule, Stage
from ..te.expr import Const, Reduce, TensorLoad, Var, binary, cast
from ..te.tensor import PlaceholderOp, Tensor
from .nodes import Allocate, Buffer, For, IfThenElse, Load, PrimFunc, Store, seq

STACK_LIMIT_BYTES = 32 * 1024       # "auto" scope: larger (or symbolic) buffers go on the heap
STACK_MAX_BYTES = 1024 * 1024       # the most an explicit "stack" scope may take

# symbols generated code may call: a kernel must not be named after one of them
_MATH = ("exp", "log", "sqrt", "tanh", "erf", "pow", "sin", "cos", "exp2", "log2", "log10",
         "floor", "ceil", "round", "roundeven", "trunc", "fmod", "fabs", "copysign", "fmin",
         "fmax", "minimum", "maximum")
RESERVED_NAMES = frozenset([f + s for f in _MATH for s in ("", "f", "l")]
                           + ["free", "malloc", "calloc", "realloc", "aligned_alloc", "memcpy",
                              "memset", "memmove", "abort", "main_parallel"])


def _nest(loops: list, body, guards: list, kinds: dict, annotations: dict, rng: dict,
          attach: dict | None = None):
    """Wrap ``body`` in ``loops`` (IterVar, Var) outermost first; each guard goes right inside
    the innermost loop whose variable it reads (or outside all loops), and the stages
    computed at a loop (``attach[iv]``, a function of the loop's body) go inside its guard.
    Guards that read tensors go innermost, after any stage they may read."""
    depth = {var.uid: d for d, (_, var) in enumerate(loops)}
    at = defaultdict(list)
    for g in guards:
        if any(isinstance(n, TensorLoad) for n in walk(g)):
            body = IfThenElse(g, body)      # reads data (a where= mask): innermost, after
        else:                               # every stage computed at these loops
            at[max((depth[u] for u in free_vars(g) if u in depth), default=-1)].append(g)
    for d in range(len(loops) - 1, -2, -1):
        if d >= 0 and attach and loops[d][0] in attach:
            body = attach[loops[d][0]](body)
        if at[d]:
            cond = at[d][0]
            for g in at[d][1:]:
                cond = cond & g
            body = IfThenElse(cond, body)
        if d >= 0:
            iv, var = loops[d]
            body = For(var, Const(0, var.dtype), simplify(cast(var.dtype, rng[iv].extent)),
                       kinds.get(iv, "serial"), body, tuple(annotations.get(iv, ())))
    return body


_VERB = {"vectorized": "vectorize", "unrolled": "unroll"}


def _check_loop_kinds(stage: Stage, rng: dict) -> None:
    for iv, kind in stage.iter_var_attrs.items():
        if kind in ("vectorized", "unrolled") and const_int(rng[iv].extent) is None:
            raise LoweringError(
                f"stage {stage.op.name!r}: cannot {_VERB[kind]} axis {iv.name!r} "
                f"of non-constant extent `{rng[iv].extent}`; split it by a constant factor first "
                "and annotate the inner axis")


def lower_stage(stage: Stage, body, b: Bounds, buf: Buffer, offsets: tuple, attach: dict):
    """The loop nest that computes ``stage`` (whose expression is ``body``) into ``buf``,
    whose element 0 holds the element ``offsets`` of the stage's region. ``attach`` maps
    loops of this stage to the nests of the stages computed there."""
    op, rng = stage.op, b.ranges
    _check_loop_kinds(stage, rng)
    root, split_guards = root_values(stage, rng)
    for d, below, above in b.clip.get(stage, ()):   # region larger than the domain: skip the excess
        iv = op.axis[d]
        if below:
            split_guards.append((iv, root[iv] >= iv.dom.min))
        if above:
            split_guards.append((iv, root[iv] < iv.dom.min + iv.dom.extent))
    index = tuple(simplify(root[iv] - o) for iv, o in zip(op.axis, offsets))
    kinds, notes = stage.iter_var_attrs, stage.pragmas
    leaves = [(iv, iv.var) for iv in stage.leaf_iter_vars]
    if not isinstance(body, Reduce):
        store = Store(buf, index, substitute(body, root))
        return _nest(leaves, store, [g for _, g in split_guards], kinds, notes, rng, attach)

    # reduction: init before the first reduce loop, update inside all loops
    first = next(n for n, (iv, _) in enumerate(leaves) if iv.kind == "reduce")
    outer, inner = leaves[:first], leaves[first:]
    inner_uids = {v.uid for _, v in inner}
    reads_inner = lambda g: any(u in inner_uids for u in free_vars(g))  # noqa: E731
    data_guards = [g for p, g in split_guards if p.kind == "data"]
    reduce_guards = [g for p, g in split_guards if p.kind == "reduce"]
    where = substitute(body.condition, root)
    if not (isinstance(where, Const) and where.value):
        reduce_guards.append(where)

    init_vars = {v.uid: Var(v.name + ".init", v.dtype) for iv, v in inner if iv.kind == "data"}
    init_loops = [(iv, init_vars[v.uid]) for iv, v in inner if iv.kind == "data"]
    to_init = {v: init_vars[v.uid] for _, v in inner if v.uid in init_vars}
    init = Store(buf, tuple(substitute(i, to_init) for i in index), body.combiner.identity)
    init_nest = _nest(init_loops, init, [substitute(g, to_init) for g in data_guards if reads_inner(g)],
                      kinds, notes, rng)

    acc = Load(buf, index, buf.dtype)
    update = Store(buf, index, body.combiner.combine(acc, substitute(body.source, root)))
    update_nest = _nest(inner, update, [g for g in data_guards if reads_inner(g)] + reduce_guards,
                        kinds, notes, rng, attach)
    return _nest(outer, seq(init_nest, update_nest),
                 [g for g in data_guards if not reads_inner(g)], kinds, notes, rng, attach)


def _strides(shape: tuple, aligns: dict) -> tuple:
    """Row-major strides of ``shape``, each dimension in ``aligns`` padded to
    ``k * factor + offset`` elements (``storage_align``); ``()`` when nothing is padded."""
    if not aligns:
        return ()
    strides, stride = [], Const(1, shape[-1].dtype if shape else "int32")
    for d in range(len(shape) - 1, -1, -1):
        if d in aligns:
            f, o = aligns[d]
            stride = simplify(stride + binary("floormod", f + o - binary("floormod", stride, f), f))
        strides.append(stride)
        stride = simplify(stride * shape[d])
    return tuple(reversed(strides))


def _memory_scope(stage: Stage, buf: Buffer) -> str:
    size = buf.const_size()
    nbytes = None if size is None else size * dt.itemsize(buf.dtype)
    if stage.scope == "heap":
        return "heap"
    if stage.scope == "stack":
        if nbytes is None or nbytes > STACK_MAX_BYTES:
            raise LoweringError(
                f"stage {stage.op.name!r}: scope \"stack\" needs a constant size of at most "
                f"{STACK_MAX_BYTES} bytes, but its buffer is "
                f"{'of symbolic size' if nbytes is None else f'{nbytes} bytes'}; use \"heap\"")
        return "stack"
    return "stack" if nbytes is not None and nbytes <= STACK_LIMIT_BYTES else "heap"


def lower_schedule(sch: Schedule, args: list, name: str) -> PrimFunc:
    """The unoptimised loop-IR function computing ``sch`` with parameters ``args``."""
    if not isinstance(sch, Schedule):
        raise TensorlangTypeError(f"lower expects a Schedule (tl.create_schedule), got {type(sch).__name__}")
    if not isinstance(args, (list, tuple)) or not args:
        raise TensorlangTypeError("lower/build: args must be a non-empty list of the tensors the "
                                  "function takes, inputs and outputs, e.g. [A, B, C]")
    if not isinstance(name, str) or not name.isidentifier():
        raise TensorlangTypeError(f"function name must be an identifier, got {name!r}")
    if name in RESERVED_NAMES or name.startswith(("GOMP_", "omp_", "llvm", "__", "tensorlang_")):
        raise TensorlangTypeError(f"function name {name!r} is reserved (a C library or runtime "
                                  "symbol the generated code may call); choose another name")
    used_names: set[str] = set()

    def new_buffer(t, shape, strides=()) -> Buffer:
        base = re.sub(r"\W", "_", t.name)
        base = base if base.isidentifier() else "T_" + base
        nm, k = base, 0
        while nm in used_names:
            k += 1
            nm = f"{base}_{k}"
        used_names.add(nm)
        return Buffer(nm, t.dtype, tuple(shape), Var(nm, "handle"), strides)

    params: dict = {}           # stage (or placeholder tensor outside the schedule) -> Buffer
    for a in args:
        if isinstance(a, Var):
            raise TensorlangTypeError(
                f"args: {a.name!r} is a variable; pass only tensors (symbolic shape variables are "
                "bound from the arrays' shapes at call time)")
        if not isinstance(a, Tensor):
            raise TensorlangTypeError(f"args: expected tensors, got {type(a).__name__} {a!r}")
        st = sch.stage_of(a)
        if st is None and not isinstance(a.op, PlaceholderOp):
            raise LoweringError(f"args: tensor {a.name!r} is not computed by this schedule")
        key = st if st is not None else a
        if key in params:
            raise TensorlangTypeError(f"args: tensor {a.name!r} is listed twice")
        if st is not None and st.aligns:
            raise LoweringError(f"args: tensor {a.name!r} has storage_align, but an argument's "
                                "layout is the caller's array; align only intermediate stages")
        params[key] = new_buffer(a, a.shape)

    for st in params:
        if isinstance(st, Stage) and st.attach_type == "scope":
            par = [iv for iv in fixed_loops(st.attach_stage, st.attach_ivar)
                   if any(x.iter_var_attrs.get(iv) == "parallel" for x in sch.stages)]
            if par:
                raise ScheduleError(
                    f"args: tensor {st.op.name!r} is computed at a loop inside the parallel loop "
                    f"{par[0].name!r}; as an argument it is written in place, so parallel "
                    "iterations would race on it. Compute it at root or outside the parallel "
                    "loop, or leave it out of the arguments")
    bodies = inline_bodies(sch)
    readers = reader_map(sch, bodies, written=[st for st in params if isinstance(st, Stage)])
    check_attachments(sch, readers)
    bounds = infer_bounds(sch, bodies, readers)
    buffers, offsets, scopes = {}, {}, {}
    for st in sch.stages:
        if st.attach_type == "inline" and st not in params:
            continue
        if isinstance(st.op, PlaceholderOp):
            if st not in params:
                names = [r.op.name for r in readers[st]]
                raise LoweringError(f"placeholder {st.op.name!r} (read by {', '.join(names)}) is not "
                                    "in args; add it to the argument list")
            buffers[st] = params[st]
            offsets[st] = tuple(Const(0, s.dtype) for s in st.op.shape)
            continue
        if st in params:
            buffers[st] = params[st]
            offsets[st] = tuple(Const(0, iv.dom.min.dtype) for iv in st.op.axis)
            continue
        shape = bounds.alloc[st]
        buffers[st] = new_buffer(st.origin_op, shape, _strides(shape, st.aligns))
        offsets[st] = tuple(r.min for r in bounds.regions[st])
        scopes[st] = _memory_scope(st, buffers[st])

    attached = defaultdict(lambda: defaultdict(list))
    for st in sch.stages:
        if st.attach_type == "scope":
            attached[st.attach_stage][st.attach_ivar].append(st)

    def allocate(stages, body):
        for st in reversed(stages):
            if st not in params:
                body = Allocate(buffers[st], scopes[st], body)
        return body

    def build(st: Stage):
        attach = {iv: (lambda body, ps=ps: allocate(ps, seq(*[build(p) for p in ps], body)))
                  for iv, ps in attached[st].items()}
        return lower_stage(st, bodies[st], bounds, buffers[st], offsets[st], attach)

    # an inlined stage that is also an argument is still written, by a nest of its own
    roots = [st for st in sch.stages if not isinstance(st.op, PlaceholderOp)
             and (st.attach_type == "root" or st.attach_type == "inline" and st in params)]
    body = allocate(roots, seq(*[build(st) for st in roots]))

    def to_load(n):
        if isinstance(n, TensorLoad):
            st = sch.stage_of(n.tensor)
            return Load(buffers[st], tuple(simplify(i - o) for i, o in zip(n.indices, offsets[st])),
                        n.dtype)
        return None
    body = rewrite(body, to_load)

    plist = tuple(params.values())
    shape_vars: dict[int, Var] = {}
    for b in plist:
        for s in b.shape:
            if isinstance(s, Var):
                shape_vars.setdefault(s.uid, s)
    for b in plist:               # other dimensions (n - 2) are checked at call time
        for s in b.shape:
            if isinstance(s, (Var, Const)):
                continue
            if not is_index_expr(s):
                raise LoweringError(f"argument {b.name!r}: dimension `{s}` must be integer arithmetic "
                                    "of sizes (+ - * // % min max)")
            missing = [v.name for u, v in free_vars(s).items() if u not in shape_vars]
            if missing:
                raise LoweringError(
                    f"argument {b.name!r}: dimension `{s}` uses {', '.join(missing)}, which no argument "
                    "has as a dimension of its own, so it cannot be read from the arrays' shapes")
    written = [b.name for k, b in params.items() if isinstance(k, Stage) and not isinstance(k.op, PlaceholderOp)]
    func = PrimFunc(name, plist, tuple(shape_vars.values()), body, tuple(written))
    loop_vars = {n.var.uid for n in walk(body) if isinstance(n, For)}
    for u, v in free_vars(body).items():
        if u not in shape_vars and u not in loop_vars and v.dtype != "handle":
            raise LoweringError(f"variable {v.name!r} is used but not bound: it must appear as a "
                                "dimension of one of the arguments' shapes")
    return func
