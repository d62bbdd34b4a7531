"""Property tests for multi-stage schedules: random producer/consumer pipelines under random
legal placements compute what the unscheduled pipeline computes, and what numpy computes.

Programs (``pipelines``): 2-4 computed stages over 1-2 float32 inputs; every tensor is 1-D or
2-D, each dimension labelled with one of two *base axes* of extent 1..24 (constant, or a
``tl.var`` bound at call time) plus a small *halo*. Stage ``j`` reads stage ``j - 1`` and
possibly earlier stages and inputs (so that some stage has two consumers), each read a
weighted term of ``f(sum w * P[...])`` with ``f`` identity or ``tanh``. A read indexes each
dimension of the producer by

* a data axis of the consumer with the same label, shifted by 0..2 (``P[i + 2]``): stencils;
  labels in another order give transposed reads (``P[j, i]``);
* the consumer's reduction axis (``sum``/``max`` over a base axis: ``P[i, k]``), or a data
  axis plus a window reduction axis of extent 1..3 (``P[i + r + 1]``): box filters;
* a constant 0..1 when the consumer has no axis with that label (``P[0, j]``); and a consumer
  axis that no dimension of ``P`` uses broadcasts ``P`` along it.

Halos are computed from the reads (outputs first) so that every access is in bounds.

Schedules (``random_schedule``), everything drawn so that it is legal:

1. dataflow rewrites: ``cache_write`` of some stages (before anything else touches them),
   ``rfactor`` of reductions (on a reduction loop, possibly split first; any ``factor_axis``),
   ``cache_read`` of inputs or intermediates for a nonempty subset of their readers;
2. consumers first, each stage gets random ``split``/``fuse``/``reorder`` and then a
   placement: ``compute_root``, ``compute_inline`` (elementwise stages only) or ``compute_at``
   any leaf loop of any downstream stage whose loop encloses *every* reader of the stage
   (after inlining): the attach stage itself, or stages attached at that loop or deeper. A
   placement is sometimes preceded by another legal one that it overrides;
3. annotations: ``vectorize``/``unroll`` of leaves whose extent (after bound inference) is a
   constant <= 16, ``parallel`` of a data-parallel leaf, ``storage_align`` and ``set_scope``
   (``stack`` only for constant-size buffers) of intermediate buffers;

and some kernels are built with ``bounds_check=True``, so that an out-of-bounds access
raises. A ``TensorlangError`` anywhere is a failure: generation only makes legal choices.

Hypothesis runs derandomized like ``test_property.py``; for a long randomized bug hunt:
``TENSORLANG_PROPERTY_EXAMPLES=300 TENSORLANG_PROPERTY_RANDOM=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tensorlang as tl
from tensorlang.schedule.bound import infer_bounds
from tests.test_property import EPS, SETTINGS, _N, assert_close

# the default is smaller than test_property's: a multi-stage example builds two bigger kernels
_N_MULTI = int(os.environ.get("TENSORLANG_PROPERTY_EXAMPLES", "0")) or max(1, _N * 3 // 4)
MULTI_SETTINGS = settings(SETTINGS, max_examples=_N_MULTI)

DIMS = [(0,), (1,), (0, 1), (1, 0)]
WEIGHTS = [-1.5, -1.0, -0.5, 0.5, 1.0, 2.0]


# --------------------------------------------------------------------------- programs

@st.composite
def pipelines(draw):
    """A pipeline as plain data: ``(ext, sym, inputs, stages)``; ``inputs[k]`` is a dims
    tuple, ``stages[j]`` a dict with ``dims``, ``red`` (None, ``("base", label, halo)`` or
    ``("win", dim, K)``), ``reducer``, ``tanh`` and ``reads``: ``(source, weight, index)``
    with ``source`` ``("in", k)`` or ``("st", j)`` and one index spec per source dimension:
    ``("d", k, c)`` (data axis k + c), ``("dw", k, c)`` (data axis k + window + c),
    ``("r", c)`` (reduction axis + c) or ``("z", c)`` (the constant c)."""
    ext = tuple(draw(st.lists(st.integers(1, 24), min_size=2, max_size=2), label="extents"))
    sym = tuple(draw(st.lists(st.booleans(), min_size=2, max_size=2), label="symbolic"))
    inputs = draw(st.lists(st.sampled_from(DIMS), min_size=1, max_size=2), label="inputs")
    n = draw(st.integers(2, 4), label="n_stages")
    stages = []
    for j in range(n):
        dims = draw(st.sampled_from(DIMS), label="dims")
        red = draw(st.sampled_from([None, None, "base", "win"]), label="reduction")
        if red == "base":
            red = ("base", draw(st.integers(0, 1), label="red label"),
                   draw(st.integers(0, 1), label="red halo"))
        elif red == "win":
            red = ("win", draw(st.integers(0, len(dims) - 1), label="window dim"),
                   draw(st.integers(1, 3), label="window"))
        reducer = draw(st.sampled_from(["sum", "max"]), label="reducer") if red else None
        primary = ("st", j - 1) if j else ("in", 0)
        others = [("in", k) for k in range(len(inputs))] + [("st", i) for i in range(j - 1)]
        others = [o for o in others if o != primary]
        extra = draw(st.lists(st.sampled_from(others), max_size=2, unique=True), label="extra") \
            if others else []
        reads = []
        for src in [primary] + extra:
            sdims = inputs[src[1]] if src[0] == "in" else stages[src[1]]["dims"]
            index = []
            for lab in sdims:
                opts = [("d", k) for k, l in enumerate(dims) if l == lab]
                if red and red[0] == "win":
                    opts += [("dw", k) for k, l in enumerate(dims) if l == lab and k == red[1]]
                if red and red[0] == "base" and red[1] == lab:
                    opts += [("r",)]
                if not opts:
                    opts = [("z",)]
                o = draw(st.sampled_from(opts), label="index")
                c = draw(st.integers(0, 1 if o[0] == "z" else 2), label="offset")
                index.append(o + (c,))
            reads.append((src, draw(st.sampled_from(WEIGHTS), label="weight"), tuple(index)))
        stages.append(dict(dims=dims, red=red, reducer=reducer, reads=tuple(reads),
                           tanh=draw(st.booleans(), label="tanh")))
    return ext, sym, tuple(inputs), tuple(stages)


def halos(prog) -> dict:
    """Source -> halo of each dimension: the least that keeps every read in bounds."""
    ext, sym, inputs, stages = prog
    need = {("in", k): [0] * len(d) for k, d in enumerate(inputs)}
    need.update({("st", j): [0] * len(s["dims"]) for j, s in enumerate(stages)})
    for j in reversed(range(len(stages))):           # readers come after their sources
        s, mine = stages[j], need[("st", j)]
        for src, _, index in s["reads"]:
            for d, spec in enumerate(index):
                if spec[0] == "d":
                    h = mine[spec[1]] + spec[2]
                elif spec[0] == "dw":
                    h = mine[spec[1]] + s["red"][2] - 1 + spec[2]
                elif spec[0] == "r":
                    h = s["red"][2] + spec[1]
                else:
                    h = spec[1]                        # extent >= 1 + c
                need[src][d] = max(need[src][d], h)
    return need


def used_inputs(prog) -> list:
    return sorted({src[1] for s in prog[3] for src, _, _ in s["reads"] if src[0] == "in"})


def symbolic_axes(prog, halo) -> list:
    """The base axes that stay symbolic: a size variable must be a whole dimension of some
    argument (an input or the output) to be bound from the arrays' shapes."""
    ext, sym, inputs, stages = prog
    args = [(inputs[k], halo[("in", k)]) for k in used_inputs(prog)]
    args.append((stages[-1]["dims"], halo[("st", len(stages) - 1)]))
    return [a for a in range(2) if sym[a] and any(lab == a and h == 0 for dims, hs in args
                                                 for lab, h in zip(dims, hs))]


def build_pipeline(prog):
    """Fresh tensors: ``(args, tensors)``, ``tensors[("st", j)]`` the stages' results."""
    ext, sym, inputs, stages = prog
    halo = halos(prog)
    syms = symbolic_axes(prog, halo)
    N = [tl.var(f"n{a}") if a in syms else ext[a] for a in range(2)]

    def shape(dims, hs):
        return tuple(N[lab] if h == 0 else N[lab] + h for lab, h in zip(dims, hs))

    tensors = {}
    for k in used_inputs(prog):
        tensors[("in", k)] = tl.placeholder(shape(inputs[k], halo[("in", k)]), "float32", f"in{k}")
    for j, s in enumerate(stages):
        tensors[("st", j)] = tl.compute(shape(s["dims"], halo[("st", j)]),
                                        _body(s, N, tensors, j), name=f"S{j}")
    args = [tensors[("in", k)] for k in used_inputs(prog)] + [tensors[("st", len(stages) - 1)]]
    return args, tensors


def _body(s, N, tensors, j):
    red = s["red"]
    if red is None:
        rk = None
    elif red[0] == "base":
        rk = tl.reduce_axis((0, N[red[1]] if red[2] == 0 else N[red[1]] + red[2]), f"k{j}")
    else:
        rk = tl.reduce_axis((0, red[2]), f"r{j}")

    def body(*idx):
        expr = None
        for src, w, index in s["reads"]:
            ix = []
            for spec in index:
                if spec[0] == "d":
                    ix.append(idx[spec[1]] + spec[2])
                elif spec[0] == "dw":
                    ix.append(idx[spec[1]] + rk + spec[2])
                elif spec[0] == "r":
                    ix.append(rk + spec[1])
                else:
                    ix.append(spec[1])
            term = tensors[src][tuple(ix)] * tl.const(w, "float32")
            expr = term if expr is None else expr + term
        if s["tanh"]:
            expr = tl.tanh(expr)
        if rk is not None:
            expr = getattr(tl, s["reducer"])(expr, axis=rk)
        return expr
    return body


def numpy_pipeline(prog, arrays: dict):
    """The output in float64, and a bound on the error of a float32 evaluation (any
    placement, inlining or summation order)."""
    ext, sym, inputs, stages = prog
    halo = halos(prog)
    vals = {("in", k): (a.astype(np.float64), np.zeros(a.shape)) for k, a in arrays.items()}
    for j, s in enumerate(stages):
        shp = tuple(ext[lab] + h for lab, h in zip(s["dims"], halo[("st", j)]))
        red = s["red"]
        K = None if red is None else (ext[red[1]] + red[2] if red[0] == "base" else red[2])
        full = shp + ((K,) if K else ())
        g = np.meshgrid(*[np.arange(n) for n in full], indexing="ij", sparse=True)
        acc, err, mag = 0.0, 0.0, 0.0
        for src, w, index in s["reads"]:
            ix = tuple(g[sp[1]] + sp[2] if sp[0] == "d" else g[sp[1]] + g[-1] + sp[2]
                       if sp[0] == "dw" else g[-1] + sp[1] if sp[0] == "r" else sp[1]
                       for sp in index)
            v, e = vals[src]
            acc, err, mag = acc + w * v[ix], err + abs(w) * e[ix], mag + abs(w * v[ix])
        err = err + (len(s["reads"]) + 2) * EPS * mag
        if s["tanh"]:
            acc = np.tanh(acc)
            err = err + 4 * EPS * np.abs(acc)
        acc, err = np.broadcast_to(acc, full), np.broadcast_to(err, full)
        if s["reducer"] == "sum":
            acc, err = acc.sum(-1), err.sum(-1) + 2 * EPS * K * np.abs(acc).sum(-1)
        elif s["reducer"] == "max":
            acc, err = acc.max(-1), err.max(-1)
        vals[("st", j)] = (acc, err + EPS * np.abs(acc))     # stored as float32
    return vals[("st", len(stages) - 1)]


# --------------------------------------------------------------------------- schedules

def _reads(sch, st) -> set:
    return {sch.stage_of(t) for t in st.op.input_tensors} - {None}


def _is_placeholder(st) -> bool:
    return isinstance(st.op, tl.te.tensor.PlaceholderOp)


def _upstream(sch, st) -> set:
    seen, todo = set(), [st]
    while todo:
        for p in _reads(sch, todo.pop()):
            if p not in seen:
                seen.add(p)
                todo.append(p)
    return seen


def _effective_readers(sch, p) -> set:
    """The materialised stages that read ``p``'s buffer once inlined stages are substituted."""
    out = set()
    for r in sch.stages:
        if p in _reads(sch, r):
            out |= _effective_readers(sch, r) if r.attach_type == "inline" else {r}
    return out


def _inside(c, s, iv) -> bool:
    """Stage ``c`` runs inside leaf loop ``iv`` of stage ``s``."""
    if c is s:
        return True
    while c.attach_type == "scope":
        if c.attach_stage is s:
            leaves = s.leaf_iter_vars
            return leaves.index(c.attach_ivar) >= leaves.index(iv)
        c = c.attach_stage
    return False


def _attach_points(sch, p) -> list:
    """Every legal ``(stage, leaf)`` for ``p.compute_at``: a downstream, materialised stage
    whose loop encloses every reader of ``p``."""
    readers = _effective_readers(sch, p)
    out = []
    for s in sch.stages:
        if s is p or _is_placeholder(s) or s.attach_type == "inline" or p not in _upstream(sch, s):
            continue
        out += [(s, iv) for iv in s.leaf_iter_vars if all(_inside(r, s, iv) for r in readers)]
    return out


def _random_loops(draw, stage, log) -> None:
    """Random split/fuse/reorder of ``stage``'s leaf loops (any order is legal: reductions
    are commutative here and data-parallel iterations are independent)."""
    name = stage.op.name
    for _ in range(draw(st.integers(0, 4), label="n_loop_steps")):
        leaves = list(stage.leaf_iter_vars)
        prim = draw(st.sampled_from(["split", "split", "fuse", "reorder"]), label="loop primitive")
        if prim == "split":
            iv = draw(st.sampled_from(leaves), label="split axis")
            k = draw(st.integers(1, 6), label="split amount")
            how = draw(st.sampled_from(["factor", "nparts"]), label="split by")
            stage.split(iv, **{how: k})
            log.append(f"s[{name}].split({iv.name}, {how}={k})")
        elif prim == "fuse":
            pairs = [n for n in range(len(leaves) - 1) if leaves[n].kind == leaves[n + 1].kind]
            if pairs:
                n = draw(st.sampled_from(pairs), label="fuse at")
                stage.fuse(leaves[n], leaves[n + 1])
                log.append(f"s[{name}].fuse({leaves[n].name}, {leaves[n + 1].name})")
        else:
            perm = draw(st.permutations(leaves), label="reorder")
            stage.reorder(*perm)
            log.append(f"s[{name}].reorder({', '.join(iv.name for iv in perm)})")


def _placement_choices(sch, p) -> list:
    out = [("root",)]
    if not p.op.reduce_axis:
        out.append(("inline",))
    out += [("at", s, iv) for s, iv in _attach_points(sch, p)]
    return out


def _place(p, choice, log) -> None:
    name = p.op.name
    if choice[0] == "root":
        p.compute_root()
        log.append(f"s[{name}].compute_root()")
    elif choice[0] == "inline":
        p.compute_inline()
        log.append(f"s[{name}].compute_inline()")
    else:
        p.compute_at(choice[1], choice[2])
        log.append(f"s[{name}].compute_at(s[{choice[1].op.name}], {choice[2].name})")


def random_schedule(draw, args, tensors, out):
    """A random legal schedule of the pipeline and its description (a list of calls)."""
    sch = tl.create_schedule(out.op)
    log = []
    computed = [t for key, t in tensors.items() if key[0] == "st"]

    # 1. dataflow rewrites
    for T in computed:
        holder = T
        if draw(st.integers(0, 3), label="cache_write") == 0:
            holder = sch.cache_write(T, "global")
            log.append(f"{holder.name} = s.cache_write({T.name}, 'global')")
        hs = sch[holder]
        if hs.op.reduce_axis and draw(st.integers(0, 2), label="rfactor") == 0:
            k = hs.leaf_iter_vars[-1]
            assert k.kind == "reduce"
            if draw(st.booleans(), label="split before rfactor"):
                f = draw(st.integers(1, 4), label="rfactor split")
                ko, ki = hs.split(k, factor=f)
                log.append(f"s[{holder.name}].split({k.name}, factor={f})")
                k = draw(st.sampled_from([ko, ki]), label="rfactor axis")
            fa = draw(st.integers(0, len(hs.op.axis)), label="factor_axis")
            rf = sch.rfactor(holder, k, factor_axis=fa)
            log.append(f"{rf.name} = s.rfactor({holder.name}, {k.name}, factor_axis={fa})")
    for _ in range(draw(st.integers(0, 2), label="n_cache_read")):
        srcs = [(p, [r for r in sch.stages if p in _reads(sch, r)]) for p in sch.stages]
        srcs = [(p, rs) for p, rs in srcs if rs]
        p, rs = draw(st.sampled_from(srcs), label="cache_read source")
        chosen = [r for r in rs if draw(st.booleans(), label="cache_read reader")] or rs[:1]
        scope = draw(st.sampled_from(["global", "global", "local"]), label="cache_read scope")
        c = sch.cache_read(p.origin_op.output(0), scope,
                           [r.origin_op.output(0) for r in chosen])
        log.append(f"{c.name} = s.cache_read({p.origin_op.name}, {scope!r}, "
                   f"[{', '.join(r.origin_op.name for r in chosen)}])")

    # 2. loops and placements, consumers first
    for p in reversed(sch.stages):
        if _is_placeholder(p):
            continue
        _random_loops(draw, p, log)
        if p.is_output:
            continue
        choices = _placement_choices(sch, p)
        weights = [1 if c[0] != "at" else 3 for c in choices]    # favour compute_at
        pick = draw(st.integers(0, sum(weights) - 1), label="placement")
        for c, w in zip(choices, weights):
            if pick < w:
                break
            pick -= w
        if draw(st.integers(0, 4), label="override") == 0:
            _place(p, draw(st.sampled_from(choices), label="overridden placement"), log)
        _place(p, c, log)

    # 3. annotations, buffers
    bounds = infer_bounds(sch)
    arg_stages = {sch[a] for a in args}
    for p in sch.stages:
        if _is_placeholder(p) or p.attach_type == "inline":
            continue
        name = p.op.name
        leaves = list(p.leaf_iter_vars)
        consts = {iv: tl.arith.const_int(bounds[iv].extent) for iv in leaves}
        small = [iv for iv in leaves if consts[iv] is not None and consts[iv] <= 16]
        inner, done = leaves[-1], set()
        ann = draw(st.sampled_from(["none", "vectorize", "unroll"]), label="innermost")
        if ann != "none" and inner in small:
            getattr(p, ann)(inner)
            done.add(inner)
            log.append(f"s[{name}].{ann}({inner.name})")
        if small and draw(st.integers(0, 3), label="unroll another") == 0:
            iv = draw(st.sampled_from(small), label="unroll axis")
            if iv not in done:
                p.unroll(iv)
                done.add(iv)
                log.append(f"s[{name}].unroll({iv.name})")
        data_leaves = [iv for iv in leaves if iv.kind == "data" and iv not in done]
        if data_leaves and draw(st.integers(0, 2), label="parallel") == 0:
            iv = draw(st.sampled_from(data_leaves), label="parallel axis")
            p.parallel(iv)
            log.append(f"s[{name}].parallel({iv.name})")
        if p in arg_stages:
            continue
        if draw(st.integers(0, 3), label="storage_align") == 0:
            ax = draw(st.sampled_from(list(p.op.axis)), label="align axis")
            f = draw(st.integers(1, 8), label="align factor")
            o = draw(st.integers(0, f - 1), label="align offset")
            p.storage_align(ax, f, o)
            log.append(f"s[{name}].storage_align({ax.name}, {f}, {o})")
        scopes = ["global", "local", "heap"]
        size = [tl.arith.const_int(e) for e in bounds.alloc[p]]
        if all(e is not None for e in size):
            scopes.append("stack")
        if draw(st.integers(0, 3), label="set_scope") == 0:
            sc = draw(st.sampled_from(scopes), label="scope")
            p.set_scope(sc)
            log.append(f"s[{name}].set_scope({sc!r})")
    return sch, log


# --------------------------------------------------------------------------- the property

def _inputs(prog):
    ext, sym, inputs, stages = prog
    halo = halos(prog)
    rng = np.random.default_rng(len(repr(prog)))
    return {k: rng.uniform(-1, 1, tuple(ext[lab] + h for lab, h in zip(inputs[k], halo[("in", k)])))
            .astype(np.float32) for k in used_inputs(prog)}


def _run(sch, args, arrays, out_shape, bounds_check=False):
    f = tl.build(sch, args, bounds_check=bounds_check)
    out = np.full(out_shape, np.nan, np.float32)       # unwritten elements show up as NaN
    f(*arrays, out)
    return out


def check_pipeline(prog, draw):
    arrays = _inputs(prog)
    want, err = numpy_pipeline(prog, arrays)
    ins = [arrays[k] for k in used_inputs(prog)]

    args, _ = build_pipeline(prog)
    base = _run(tl.create_schedule(args[-1].op), args, ins, want.shape)

    args2, tensors2 = build_pipeline(prog)
    sch, log = random_schedule(draw, args2, tensors2, args2[-1])
    bounds_check = draw(st.booleans(), label="bounds_check")
    msg = f"prog={prog!r}\nschedule:\n  " + "\n  ".join(log) + f"\nbounds_check={bounds_check}"
    try:
        got = _run(sch, args2, ins, want.shape, bounds_check)
    except Exception as e:
        raise AssertionError(f"{type(e).__name__}: {e}\n{msg}") from e
    assert_close(base, want, err, "unscheduled vs numpy", msg)
    assert_close(got, base.astype(np.float64), 2 * err, "scheduled vs unscheduled", msg)
    assert_close(got, want, err, "scheduled vs numpy", msg)


@MULTI_SETTINGS
@given(prog=pipelines(), data=st.data())
def test_random_pipeline_under_random_schedule(prog, data):
    check_pipeline(prog, lambda s, label=None: data.draw(s, label=label))
