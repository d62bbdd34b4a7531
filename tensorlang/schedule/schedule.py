"""Schedules: *how* to compute each operation, separate from *what* it computes.

A ``Schedule`` holds one ``Stage`` per operation. A stage starts with the operation's axes
(``op.axis`` then ``op.reduce_axis``) as its loop nest, outermost first. Primitives rewrite
that nest: ``split`` and ``fuse`` add iteration-variable *relations* (recorded, never applied
eagerly), ``reorder`` permutes the leaf loops, and ``vectorize``/``unroll``/``parallel``/
``pragma`` annotate them. Lowering later rebuilds each original index from the leaves.

Each stage also has an *attach* state: where its loop nest goes. ``root`` (the default) is a
separate loop nest at the top level of the function; ``compute_at`` puts it inside a loop of a
consumer (computing only the region that loop iteration needs); ``compute_inline`` replaces
its reads by its expression. ``cache_read``, ``cache_write`` and ``rfactor`` rewrite the
dataflow: they add a stage and change the *current* operation (``stage.op``) of the stages
they touch, while ``stage.origin_op`` (and the user's tensor handles) keep naming the same
result.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ScheduleError, TensorlangTypeError
from ..te.expr import Const, Expr, IterVar, Var
from ..te.tensor import ComputeOp, Operation, PlaceholderOp, Tensor, as_int


@dataclass(frozen=True, eq=False)
class Split:
    """``parent = outer * factor + inner`` (exactly one of ``factor``/``nparts`` is set)."""
    parent: IterVar
    outer: IterVar
    inner: IterVar
    factor: Expr | None
    nparts: Expr | None


@dataclass(frozen=True, eq=False)
class Fuse:
    """``fused = outer * extent(inner) + inner``."""
    outer: IterVar
    inner: IterVar
    fused: IterVar


LOOP_KINDS = ("serial", "parallel", "vectorized", "unrolled")


class Stage:
    """The schedule of one operation: its leaf loops, their relations and annotations."""

    def __init__(self, op: Operation, schedule: "Schedule"):
        self.origin_op = op            # the result this stage computes (buffers, arguments)
        self.schedule = schedule
        self.attach_type = "root"      # "root" | "inline" | "scope" (compute_at)
        self.attach_stage: Stage | None = None
        self.attach_ivar: IterVar | None = None
        self.scope = "auto"            # where an intermediate buffer lives: auto | stack | heap
        self.aligns: dict[int, tuple] = {}   # dimension -> (factor, offset) of its stride
        self.is_output = False
        self._reset(op)

    def _reset(self, op: Operation) -> None:
        """Make ``op`` the stage's current operation, with its axes as a fresh loop nest."""
        self.op = op
        axes = list(op.axis) + list(op.reduce_axis)
        self.all_iter_vars: list[IterVar] = list(axes)
        self.leaf_iter_vars: list[IterVar] = list(axes)
        self.relations: list = []
        self.iter_var_attrs: dict[IterVar, str] = {}   # leaf -> loop kind
        self.pragmas: dict[IterVar, list] = {}

    def __repr__(self):
        return f"Stage({self.op.name})"

    # ----------------------------------------------------------------- helpers

    def _leaf(self, iv, what: str) -> IterVar:
        if not isinstance(iv, IterVar):
            raise TensorlangTypeError(
                f"stage {self.op.name!r}.{what}: expected an axis (IterVar), got {type(iv).__name__} {iv!r}")
        if iv in self.leaf_iter_vars:
            return iv
        if any(iv is x for x in self.all_iter_vars):
            raise ScheduleError(
                f"stage {self.op.name!r}.{what}: axis {iv.name!r} was already split or fused; "
                f"use the axes that operation returned (current loops: {self._leaf_names()})")
        owner = next((st.op.name for st in self.schedule.stages
                      if any(iv is x for x in st.all_iter_vars)), None)
        where = f"it belongs to stage {owner!r}" if owner else "it belongs to no stage of this schedule"
        raise ScheduleError(f"stage {self.op.name!r}.{what}: axis {iv.name!r} is not an axis of "
                            f"this stage; {where} (this stage's loops: {self._leaf_names()})")

    def _leaf_names(self) -> str:
        return ", ".join(iv.name for iv in self.leaf_iter_vars)

    def _positive(self, v, what: str):
        if v is None:
            return None
        v = as_int(v)
        if isinstance(v, bool) or not isinstance(v, (int, Expr)):
            raise TensorlangTypeError(f"stage {self.op.name!r}.split: {what} must be an int, got {v!r}")
        if isinstance(v, int):
            if v <= 0:
                raise ScheduleError(f"stage {self.op.name!r}.split: {what} must be positive, got {v}")
            return Const(v, "int32")
        return v

    # ----------------------------------------------------------------- primitives

    def split(self, parent: IterVar, factor=None, nparts=None):
        """Split loop ``parent`` into ``(outer, inner)`` with ``parent = outer*factor + inner``.

        Give either ``factor`` (the inner extent) or ``nparts`` (the outer extent). When the
        extent is not divisible the last outer iteration is partial: lowering guards it (and
        loop partitioning moves the guard out of the main body).
        """
        parent = self._leaf(parent, "split")
        if (factor is None) == (nparts is None):
            raise ScheduleError(f"stage {self.op.name!r}.split({parent.name}): give exactly one "
                                "of factor= or nparts=")
        factor, nparts = self._positive(factor, "factor"), self._positive(nparts, "nparts")
        outer = IterVar(None, Var(f"{parent.name}.outer", parent.dtype), parent.kind)
        inner = IterVar(None, Var(f"{parent.name}.inner", parent.dtype), parent.kind)
        self.relations.append(Split(parent, outer, inner, factor, nparts))
        self._replace(parent, [outer, inner])
        return outer, inner

    def tile(self, x_parent: IterVar, y_parent: IterVar, x_factor, y_factor):
        """Split ``x`` and ``y`` by their factors and order the loops ``xo, yo, xi, yi``."""
        xo, xi = self.split(x_parent, factor=x_factor)
        yo, yi = self.split(y_parent, factor=y_factor)
        self.reorder(xo, yo, xi, yi)
        return xo, yo, xi, yi

    def fuse(self, *args: IterVar) -> IterVar:
        """Fuse adjacent loops (given outermost first) into one loop over their product."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        if not args:
            raise ScheduleError(f"stage {self.op.name!r}.fuse: needs at least one axis")
        ivs = [self._leaf(a, "fuse") for a in args]
        pos = [self.leaf_iter_vars.index(iv) for iv in ivs]
        if pos != list(range(pos[0], pos[0] + len(pos))):
            raise ScheduleError(
                f"stage {self.op.name!r}.fuse: axes {[iv.name for iv in ivs]} must be adjacent loops "
                f"given outermost first (current loops: {self._leaf_names()})")
        if len({iv.kind for iv in ivs}) > 1:
            raise ScheduleError(f"stage {self.op.name!r}.fuse: cannot fuse reduction and data-parallel "
                                f"axes ({', '.join(iv.name + ':' + iv.kind for iv in ivs)})")
        fused = ivs[0]
        for inner in ivs[1:]:
            wide = "int64" if "int64" in (fused.dtype, inner.dtype) else "int32"
            new = IterVar(None, Var(f"{fused.name}.{inner.name}.fused", wide), inner.kind)
            self.relations.append(Fuse(fused, inner, new))
            self._replace_many([fused, inner], new)
            fused = new
        return fused

    def reorder(self, *args: IterVar) -> None:
        """Put the given leaf loops in this order, in the positions they occupy now."""
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        ivs = [self._leaf(a, "reorder") for a in args]
        for n, iv in enumerate(ivs):
            if any(iv is x for x in ivs[:n]):
                raise ScheduleError(f"stage {self.op.name!r}.reorder: axis {iv.name!r} given twice")
        slots = sorted(self.leaf_iter_vars.index(iv) for iv in ivs)
        for slot, iv in zip(slots, ivs):
            self.leaf_iter_vars[slot] = iv

    def _annotate(self, iv, kind: str) -> None:
        iv = self._leaf(iv, kind)
        if kind == "parallel" and iv.kind == "reduce":
            raise ScheduleError(f"stage {self.op.name!r}.parallel: {iv.name!r} is a reduction axis; "
                                "parallel iterations would race on the accumulator")
        self.iter_var_attrs[iv] = kind

    def vectorize(self, iv: IterVar) -> None:
        """Execute loop ``iv`` as one vector operation of its (constant) extent."""
        self._annotate(iv, "vectorized")

    def unroll(self, iv: IterVar) -> None:
        """Replicate the body of loop ``iv`` once per iteration (constant extent)."""
        self._annotate(iv, "unrolled")

    def parallel(self, iv: IterVar) -> None:
        """Run the iterations of loop ``iv`` on all cores (static chunks, one per thread)."""
        self._annotate(iv, "parallel")

    def pragma(self, iv: IterVar, pragma_type: str, pragma_value=None) -> None:
        """Attach a free-form pragma to loop ``iv``; it is shown in the printed IR. The pragmas
        ``"unroll"``, ``"vectorize"`` and ``"parallel"`` are the same as the primitives."""
        if not isinstance(pragma_type, str):
            raise TensorlangTypeError(f"stage {self.op.name!r}.pragma: name must be a string")
        if pragma_type in ("unroll", "vectorize", "parallel"):
            return {"unroll": self.unroll, "vectorize": self.vectorize,
                    "parallel": self.parallel}[pragma_type](iv)
        iv = self._leaf(iv, "pragma")
        self.pragmas.setdefault(iv, []).append((pragma_type, pragma_value))

    def bind(self, iv: IterVar, thread_ivar=None) -> None:
        """GPU thread binding (TVM): tensorlang targets CPUs, so this always raises."""
        raise ScheduleError(f"stage {self.op.name!r}.bind: tensorlang targets CPUs and has no GPU "
                            "threads; use parallel() and vectorize() instead")

    # ----------------------------------------------------------------- placement

    def compute_at(self, parent: "Stage", ivar: IterVar) -> None:
        """Compute this stage inside loop ``ivar`` of stage ``parent``: at each iteration of
        that loop, only the region of this stage's result that the loops inside it read.

        Bound inference derives the region from the consumers' index expressions (exactly for
        affine indices, conservatively otherwise), and the buffer is allocated there with the
        region's size. ``parent`` must consume this stage, directly or through stages that
        are themselves computed inside ``parent``'s loop.
        """
        me = self.op.name
        if not isinstance(parent, Stage):
            raise TensorlangTypeError(f"stage {me!r}.compute_at: expected a stage (s[T]) as the "
                                      f"first argument, got {type(parent).__name__}")
        if parent.schedule is not self.schedule:
            raise ScheduleError(f"stage {me!r}.compute_at: stage {parent.op.name!r} belongs to "
                                "another schedule")
        self._computable("compute_at")
        if parent is self:
            raise ScheduleError(f"stage {me!r}.compute_at: cannot compute a stage inside its own loops")
        if isinstance(parent.op, PlaceholderOp):
            raise ScheduleError(f"stage {me!r}.compute_at: {parent.op.name!r} is a placeholder "
                                "and has no loops")
        if not any(ivar is x for x in parent.leaf_iter_vars):
            owner = next((st.op.name for st in self.schedule.stages
                          if any(ivar is x for x in st.all_iter_vars)), None)
            why = (f"it is an axis of stage {owner!r}" if owner and owner != parent.op.name
                   else "it is not one of its current loops")
            raise ScheduleError(
                f"stage {me!r}.compute_at(s[{parent.op.name!r}], {getattr(ivar, 'name', ivar)!r}): "
                f"{why} (loops of {parent.op.name!r}: {parent._leaf_names()})")
        if self not in self.schedule._upstream(parent):
            raise ScheduleError(f"stage {me!r}.compute_at: stage {parent.op.name!r} does not "
                                f"consume {me!r} (directly or through other stages), so its loops "
                                f"cannot tell which part of {me!r} is needed")
        st = parent
        while st.attach_type == "scope":
            st = st.attach_stage
            if st is self:
                raise ScheduleError(f"stage {me!r}.compute_at: {parent.op.name!r} is itself "
                                    f"computed inside {me!r}'s loops; computing {me!r} inside "
                                    f"{parent.op.name!r} would be a cycle")
        self.attach_type, self.attach_stage, self.attach_ivar = "scope", parent, ivar

    def compute_inline(self) -> None:
        """Do not materialise this stage: each read of it is replaced by its expression (with
        the reader's indices). Only elementwise (non-reduction) stages can be inlined."""
        self._computable("compute_inline")
        if isinstance(self.op, ComputeOp) and self.op.reduce_axis:
            raise ScheduleError(
                f"stage {self.op.name!r}.compute_inline: it is a reduction (over "
                f"{', '.join(iv.name for iv in self.op.reduce_axis)}); only elementwise stages can "
                "be inlined. Use compute_at to compute it inside its consumer's loop instead")
        for st in self.schedule.stages:
            if st.attach_type == "scope" and st.attach_stage is self:
                raise ScheduleError(
                    f"stage {self.op.name!r}.compute_inline: stage {st.op.name!r} is computed at one "
                    f"of its loops; move {st.op.name!r} first (compute_root or compute_at elsewhere)")
        self.attach_type, self.attach_stage, self.attach_ivar = "inline", None, None

    def compute_root(self) -> None:
        """Compute this stage as its own loop nest at the top level of the function (the
        default), undoing ``compute_at`` or ``compute_inline``."""
        self._computable("compute_root")
        self.attach_type, self.attach_stage, self.attach_ivar = "root", None, None

    def _computable(self, what: str) -> None:
        if isinstance(self.op, PlaceholderOp):
            raise ScheduleError(f"stage {self.op.name!r}.{what}: {self.op.name!r} is a placeholder "
                                "(an input); it is not computed. Use s.cache_read to copy it first")
        if self.is_output and what != "compute_root":
            raise ScheduleError(f"stage {self.op.name!r}.{what}: {self.op.name!r} is an output of the "
                                "schedule; outputs are computed at root, whole")

    def set_scope(self, scope: str) -> None:
        """Where this stage's intermediate buffer is allocated: ``"stack"`` (constant size, up
        to 1 MiB), ``"heap"`` (any size; freed at the end of its scope), or ``"global"``/
        ``"local"`` (the default: the stack when constant and at most 32 KiB, else the heap)."""
        if isinstance(self.op, PlaceholderOp):
            raise ScheduleError(f"stage {self.op.name!r}.set_scope: {self.op.name!r} is a placeholder; "
                                "its memory is the caller's array")
        self.scope = _scope(scope, f"stage {self.op.name!r}.set_scope")

    def storage_align(self, axis: IterVar, factor: int, offset: int) -> None:
        """Pad this stage's buffer so that the stride of dimension ``axis`` (one of
        ``op.axis``) is ``k * factor + offset`` elements: e.g. ``factor=16, offset=1`` staggers
        rows across cache sets. Only intermediate buffers can be padded."""
        me = self.op.name
        axes = list(self.op.axis)
        if not any(axis is a for a in axes):
            raise ScheduleError(f"stage {me!r}.storage_align: {getattr(axis, 'name', axis)!r} is "
                                f"not a data axis of {me!r} (its axes: "
                                f"{', '.join(a.name for a in axes)})")
        factor, offset = as_int(factor), as_int(offset)
        if not (type(factor) is int and type(offset) is int) or factor <= 0 \
                or not 0 <= offset < factor:
            raise ScheduleError(f"stage {me!r}.storage_align: need integers factor > 0 and "
                                f"0 <= offset < factor, got factor={factor!r}, offset={offset!r}")
        self.aligns[next(n for n, a in enumerate(axes) if a is axis)] = (factor, offset)

    # ----------------------------------------------------------------- bookkeeping

    def _scheduled(self) -> bool:
        axes = list(self.op.axis) + list(self.op.reduce_axis)
        return bool(self.relations or self.iter_var_attrs or self.pragmas
                    or any(a is not b for a, b in zip(self.leaf_iter_vars, axes)))

    def _replace(self, old: IterVar, new: list) -> None:
        i = self.leaf_iter_vars.index(old)
        self.leaf_iter_vars[i:i + 1] = new
        self.all_iter_vars.extend(new)
        self._move_attrs(old)

    def _replace_many(self, old: list, new: IterVar) -> None:
        i = self.leaf_iter_vars.index(old[0])
        self.leaf_iter_vars[i:i + len(old)] = [new]
        self.all_iter_vars.append(new)
        for o in old:
            self._move_attrs(o)

    def _move_attrs(self, old):
        self.iter_var_attrs.pop(old, None)
        self.pragmas.pop(old, None)


class Schedule:
    """One stage per operation reachable from the outputs, in dependency order."""

    def __init__(self, outputs: list[Operation]):
        self.outputs = outputs
        self.stages: list[Stage] = []
        self.stage_map: dict[Operation, Stage] = {}
        visiting = set()

        def visit(op):
            if op in self.stage_map:
                return
            if id(op) in visiting:
                raise ScheduleError(f"cycle in the computation through {op.name!r}")
            visiting.add(id(op))
            for t in op.input_tensors:
                visit(t.op)
            st = Stage(op, self)
            self.stages.append(st)
            self.stage_map[op] = st
        for op in outputs:
            visit(op)
        for op in outputs:
            self.stage_map[op].is_output = True

    # ----------------------------------------------------------------- dataflow

    def stage_of(self, tensor: Tensor) -> Stage | None:
        """The stage computing ``tensor`` (``None`` for a tensor outside the schedule)."""
        return self.stage_map.get(tensor.op)

    def reads(self, stage: Stage) -> list:
        """The stages whose results ``stage``'s current operation reads."""
        out = []
        for t in stage.op.input_tensors:
            st = self.stage_of(t)
            if st is not None and st not in out:
                out.append(st)
        return out

    def _upstream(self, stage: Stage) -> set:
        """Every stage ``stage`` reads, directly or through other stages."""
        seen, todo = set(), [stage]
        while todo:
            for p in self.reads(todo.pop()):
                if p not in seen:
                    seen.add(p)
                    todo.append(p)
        return seen

    def _add_stage(self, op: Operation, at: int) -> Stage:
        st = Stage(op, self)
        self.stages.insert(at, st)
        self.stage_map[op] = st
        return st

    def _replace_op(self, stage: Stage, op: Operation, keep_loops: bool) -> None:
        """Give ``stage`` a new current operation (its result stays the same tensor)."""
        if keep_loops:
            stage.op = op
        else:
            stage._reset(op)
        self.stage_map[op] = stage

    def cache_read(self, tensor: Tensor, scope: str, readers) -> Tensor:
        """A new stage copying ``tensor`` into a buffer of its own, read by ``readers``
        (tensors or operations) instead of ``tensor``. Returns the copy (schedulable like any
        stage: typically computed at a loop of the reader)."""
        from .dataflow import cache_read
        return cache_read(self, tensor, scope, readers)

    def cache_write(self, tensor: Tensor, scope: str) -> Tensor:
        """A new stage computing ``tensor``'s expression (with its reduction) into a buffer of
        its own; ``tensor``'s stage becomes a copy of it. Returns the cache tensor. Call it
        before scheduling ``tensor``'s stage."""
        from .dataflow import cache_write
        return cache_write(self, tensor, scope)

    def rfactor(self, tensor: Tensor, axis: IterVar, factor_axis: int = 0) -> Tensor:
        """Split the reduction of ``tensor`` along its reduction loop ``axis``: a new stage
        ``T.rf`` keeps ``axis`` as a data dimension (at position ``factor_axis``) and reduces
        over the other reduction loops; ``tensor``'s stage then reduces ``T.rf`` over that
        dimension. The partial results are independent, so ``T.rf``'s new dimension can be
        parallelized or vectorized. Returns ``T.rf``."""
        from .dataflow import rfactor
        return rfactor(self, tensor, axis, factor_axis)

    def __getitem__(self, key) -> Stage:
        op = key.op if isinstance(key, Tensor) else key
        if not isinstance(op, Operation):
            raise TensorlangTypeError(f"schedule[...] expects a tensor or an operation, got {key!r}")
        if op not in self.stage_map:
            raise ScheduleError(f"tensor {op.name!r} is not part of this schedule (its outputs: "
                                f"{', '.join(o.name for o in self.outputs)})")
        return self.stage_map[op]

    def __repr__(self):
        return f"Schedule({', '.join(st.op.name for st in self.stages)})"


SCOPES = {"global": "auto", "local": "auto", "auto": "auto", "stack": "stack", "heap": "heap"}


def _scope(scope, who: str) -> str:
    if not isinstance(scope, str) or scope not in SCOPES:
        raise ScheduleError(f"{who}: unknown storage scope {scope!r}; on a CPU use \"global\" "
                            "(stack when small, else heap), \"stack\" or \"heap\"")
    return SCOPES[scope]


def thread_axis(*args, **kwargs):
    """GPU thread axes (TVM): not available on a CPU compiler."""
    raise ScheduleError("thread_axis: tensorlang targets CPUs and has no GPU threads; "
                        "use parallel() and vectorize() instead")


def create_schedule(ops) -> Schedule:
    """A schedule for the given output operation(s) and everything they read."""
    ops = list(ops) if isinstance(ops, (list, tuple)) else [ops]
    out = []
    for op in ops:
        op = op.op if isinstance(op, Tensor) else op
        if not isinstance(op, Operation):
            raise TensorlangTypeError(f"create_schedule expects operations (T.op), got {op!r}")
        if isinstance(op, PlaceholderOp):
            raise ScheduleError(f"create_schedule: {op.name!r} is a placeholder; pass the op of a computed tensor")
        out.append(op)
    return Schedule(out)


__all__ = ["Schedule", "Stage", "Split", "Fuse", "create_schedule", "thread_axis"]
