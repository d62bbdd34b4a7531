"""Schedule -> loop IR: build each stage's loop nest from its leaf iteration variables.

For every stage this

1. takes the leaf loops (outermost first) with the ranges from bound inference;
2. rebuilds each original axis as an expression of the leaves, undoing splits
   (``x = xo*f + xi``) and fuses (``a = f // ext(b)``, ``b = f % ext(b)``);
3. guards every split that is not provably exact (``xo*f + xi < ext``), placing each guard
   right inside the innermost loop it depends on;
4. for a reduction, initialises the accumulator just outside the first reduction loop (with
   its own copy of the data-parallel loops below that point) and then updates it.

Intermediate tensors that are not function arguments get an ``Allocate`` (stack when small
and constant-sized, heap otherwise). Tensor reads become buffer ``Load``s.
"""

from __future__ import annotations

from collections import defaultdict

from .. import dtype as dt
from ..arith import const_int, free_vars, is_index_expr, rewrite, simplify, substitute, walk
from ..errors import LoweringError, TensorlangTypeError
from ..schedule.bound import infer_bounds, split_is_exact
from ..schedule.schedule import Fuse, Schedule, Split, Stage
from ..te.expr import Const, Reduce, TensorLoad, Var, cast
from ..te.tensor import ComputeOp, PlaceholderOp, Tensor
from .nodes import Allocate, Buffer, For, IfThenElse, Load, PrimFunc, Store, seq

STACK_LIMIT_BYTES = 32 * 1024   # larger (or symbolic) intermediate buffers go on the heap

# symbols generated code may call: a kernel must not be named after one of them
_MATH = ("exp", "log", "sqrt", "tanh", "erf", "pow", "sin", "cos", "exp2", "log2", "log10",
         "floor", "ceil", "round", "roundeven", "trunc", "fmod", "fabs", "copysign", "fmin",
         "fmax", "minimum", "maximum")
RESERVED_NAMES = frozenset([f + s for f in _MATH for s in ("", "f", "l")]
                           + ["free", "malloc", "calloc", "realloc", "aligned_alloc", "memcpy",
                              "memset", "memmove", "abort", "main_parallel"])


def _index_values(stage: Stage, rng: dict) -> tuple[dict, list]:
    """Each IterVar of ``stage`` as an expression of the leaf loop variables (offset from its
    range's min), plus the guard conditions of inexact splits."""
    value = {iv: iv.var for iv in stage.leaf_iter_vars}
    guards = []
    for rel in reversed(stage.relations):
        if isinstance(rel, Split):
            value[rel.parent] = cast(rel.parent.dtype,
                                     value[rel.outer] * rng[rel.inner].extent + value[rel.inner])
            if not split_is_exact(rel, rng):
                guards.append((rel.parent, value[rel.parent] < rng[rel.parent].extent))
        elif isinstance(rel, Fuse):
            ext = rng[rel.inner].extent
            value[rel.outer] = cast(rel.outer.dtype, value[rel.fused] // ext)
            value[rel.inner] = cast(rel.inner.dtype, value[rel.fused] % ext)
    return value, guards


def _nest(loops: list, body, guards: list, kinds: dict, annotations: dict, rng: dict):
    """Wrap ``body`` in ``loops`` (IterVar, Var) outermost first; each guard goes right inside
    the innermost loop whose variable it reads (or outside all loops)."""
    depth = {var.uid: d for d, (_, var) in enumerate(loops)}
    at = defaultdict(list)
    for g in guards:
        at[max((depth[u] for u in free_vars(g) if u in depth), default=-1)].append(g)
    for d in range(len(loops) - 1, -2, -1):
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


def lower_stage(stage: Stage, rng: dict, buf: Buffer):
    """The loop nest that computes ``stage`` into ``buf``."""
    op: ComputeOp = stage.op
    _check_loop_kinds(stage, rng)
    value, split_guards = _index_values(stage, rng)
    root = {iv: simplify(iv.dom.min + value[iv]) for iv in list(op.axis) + list(op.reduce_axis)}
    index = tuple(root[iv] for iv in op.axis)
    kinds, notes = stage.iter_var_attrs, stage.pragmas
    leaves = [(iv, iv.var) for iv in stage.leaf_iter_vars]
    body = op.body
    if not isinstance(body, Reduce):
        store = Store(buf, index, substitute(body, root))
        return _nest(leaves, store, [g for _, g in split_guards], kinds, notes, rng)

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
                        kinds, notes, rng)
    return _nest(outer, seq(init_nest, update_nest),
                 [g for g in data_guards if not reads_inner(g)], kinds, notes, rng)


def _tensor_to_buffer_loads(stmt, buffers: dict):
    def fn(n):
        if isinstance(n, TensorLoad):
            return Load(buffers[n.tensor], n.indices, n.dtype)
        return None
    return rewrite(stmt, fn)


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
    buffers: dict[Tensor, Buffer] = {}
    used_names: set[str] = set()

    def new_buffer(t: Tensor) -> Buffer:
        nm, k = t.name, 0
        while nm in used_names or not nm.isidentifier():
            k += 1
            nm = f"{t.name if t.name.isidentifier() else 'T'}_{k}"
        used_names.add(nm)
        return Buffer.make(nm, t.dtype, t.shape)

    for a in args:
        if isinstance(a, Var):
            raise TensorlangTypeError(
                f"args: {a.name!r} is a variable; pass only tensors (symbolic shape variables are "
                "bound from the arrays' shapes at call time)")
        if not isinstance(a, Tensor):
            raise TensorlangTypeError(f"args: expected tensors, got {type(a).__name__} {a!r}")
        if a in buffers:
            raise TensorlangTypeError(f"args: tensor {a.name!r} is listed twice")
        if a.op not in sch.stage_map and not isinstance(a.op, PlaceholderOp):
            raise LoweringError(f"args: tensor {a.name!r} is not computed by this schedule")
        buffers[a] = new_buffer(a)
    params = tuple(buffers.values())

    bounds = infer_bounds(sch)
    nests, allocs = [], []
    for st in sch.stages:
        t = st.op.output(0)
        if isinstance(st.op, PlaceholderOp):
            if t not in buffers:
                readers = [s.op.name for s in sch.stages if t in s.op.input_tensors]
                raise LoweringError(f"placeholder {t.name!r} (read by {', '.join(readers)}) is not in "
                                    "args; add it to the argument list")
            continue
        if t not in buffers:
            buffers[t] = new_buffer(t)
            allocs.append(buffers[t])
        nests.append(lower_stage(st, bounds, buffers[t]))
    body = _tensor_to_buffer_loads(seq(*nests), buffers)
    for b in reversed(allocs):
        size = b.const_size()
        scope = "stack" if size is not None and size * dt.itemsize(b.dtype) <= STACK_LIMIT_BYTES else "heap"
        body = Allocate(b, scope, body)

    shape_vars: dict[int, Var] = {}
    for b in params:
        for s in b.shape:
            if isinstance(s, Var):
                shape_vars.setdefault(s.uid, s)
    for b in params:               # other dimensions (n - 2) are checked at call time
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
    written = [b.name for t, b in buffers.items() if b in params and isinstance(t.op, ComputeOp)]
    func = PrimFunc(name, params, tuple(shape_vars.values()), body, tuple(written))
    loop_vars = {n.var.uid for n in walk(body) if isinstance(n, For)}
    for u, v in free_vars(body).items():
        if u not in shape_vars and u not in loop_vars and v.dtype != "handle":
            raise LoweringError(f"variable {v.name!r} is used but not bound: it must appear as a "
                                "dimension of one of the arguments' shapes")
    return func

