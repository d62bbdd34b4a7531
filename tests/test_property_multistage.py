"""Property tests for multi-stage schedules: random producer/consumer pipelines under random
legal placements compute what the unscheduled pipeline computes, and what numpy computes.

Programs (``pipelines``): 2-4 computed stages over 1-2 float32 inputs; every tensor is 1-D or
2-D, each dimension labelled with one of two *base axes* of extent 1..24 (constant, or a
``tl.var`` bound at call time) plus a small *halo*. Stage ``j`` reads stage ``j - 1`` and
possibly earlier stages and inputs (so that some stage has two consumers), each read a
weighted term of ``f(sum w * P[...])`` with ``f`` identity or ``tanh``. A read indexes each
dimension of the producer by

* a data axis of the consumer with the same label, shifted by 0..2 (``P[i + 2]``): stencils;
  labels in another order give transposed reads (``P[j, i]``); or that axis reversed
  (``P[E - 1 - i]``), or halved (``P[i // 2]``: not affine, so bound inference is
  conservative);
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
raises. Any exception is a failure: generation only makes legal choices.

A second property checks the legality rule itself: moving one stage of a random schedule
to each loop of each downstream stage lowers exactly when every stage computed at a loop
still has all its readers inside that loop, and raises ``ScheduleError`` otherwise.

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
from tests.test_property import EPS, SETTINGS, assert_close

# ``TENSORLANG_PROPERTY_EXAMPLES`` (see test_property.py) sets both counts; by default the
# build test runs fewer examples than test_property's (each builds two multi-stage kernels)
_ENV_N = int(os.environ.get("TENSORLANG_PROPERTY_EXAMPLES", "0"))
BUILD_SETTINGS = settings(SETTINGS, max_examples=_ENV_N or 50)
LOWER_SETTINGS = settings(SETTINGS, max_examples=_ENV_N or 60)

DIMS = [(0,), (1,), (0, 1), (1, 0)]
WEIGHTS = [-1.5, -1.0, -0.5, 0.5, 1.0, 2.0]


# --------------------------------------------------------------------------- programs

@st.composite
def pipelines(draw):
    """A pipeline as plain data: ``(ext, sym, inputs, stages)``; ``inputs[k]`` is a dims
    tuple, ``stages[j]`` a dict with ``dims``, ``red`` (None, ``("base", label, halo)`` or
    ``("win", dim, K)``), ``reducer``, ``tanh`` and ``reads``: ``(source, weight, index)``
    with ``source`` ``("in", k)`` or ``("st", j)`` and one index spec per source dimension:
    ``("d", k, c)`` (data axis k + c), ``("rev", k, c)`` (extent - 1 - data axis k, + c),
    ``("half", k, c)`` (data axis k // 2 + c), ``("dw", k, c)`` (data axis k + window + c),
    ``("r", c)`` (reduction axis + c) or ``("z", c)`` (the constant c); ``where``: the
    reduction's mask, None, ``"k_even"`` or ``"data"`` (the first read, of an input, > 0)."""
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
                opts = [(kind, k) for k, l in enumerate(dims) if l == lab
                        for kind in ("d", "d", "rev", "half")]
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
        # a mask on the reduction: k even, or (for a sum, so that no output is empty) the
        # first read positive when it reads an input (exact in numpy and float32 alike)
        wheres = [None, None, "k_even"] + (["data"] if red and reducer == "sum"
                                            and reads[0][0][0] == "in" else [])
        where = draw(st.sampled_from(wheres), label="where") if red else None
        stages.append(dict(dims=dims, red=red, reducer=reducer, reads=tuple(reads),
                           where=where, tanh=draw(st.booleans(), label="tanh")))
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
                if spec[0] in ("d", "rev", "half"):
                    h = mine[spec[1]] + spec[2]      # i // 2 <= i; reversed i spans [0, E)
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


def build_pipeline(prog, extra=None):
    """Fresh tensors: ``(args, tensors)``, ``tensors[("st", j)]`` the stages' results; the
    arguments are the inputs, stage ``extra`` (an intermediate result, when given) and the
    output."""
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
        shp = shape(s["dims"], halo[("st", j)])
        tensors[("st", j)] = tl.compute(shp, _body(s, N, tensors, j, shp), name=f"S{j}")
    args = [tensors[("in", k)] for k in used_inputs(prog)]
    args += [tensors[("st", j)] for j in (extra, len(stages) - 1) if j is not None]
    return args, tensors


def _body(s, N, tensors, j, extents):
    red = s["red"]
    if red is None:
        rk = None
    elif red[0] == "base":
        rk = tl.reduce_axis((0, N[red[1]] if red[2] == 0 else N[red[1]] + red[2]), f"k{j}")
    else:
        rk = tl.reduce_axis((0, red[2]), f"r{j}")

    def body(*idx):
        expr, loads = None, []
        for src, w, index in s["reads"]:
            ix = []
            for spec in index:
                if spec[0] == "d":
                    ix.append(idx[spec[1]] + spec[2])
                elif spec[0] == "rev":
                    ix.append(extents[spec[1]] - 1 - idx[spec[1]] + spec[2])
                elif spec[0] == "half":
                    ix.append(idx[spec[1]] // 2 + spec[2])
                elif spec[0] == "dw":
                    ix.append(idx[spec[1]] + rk + spec[2])
                elif spec[0] == "r":
                    ix.append(rk + spec[1])
                else:
                    ix.append(spec[1])
            loads.append(tensors[src][tuple(ix)])
            term = loads[-1] * tl.const(w, "float32")
            expr = term if expr is None else expr + term
        if s["tanh"]:
            expr = tl.tanh(expr)
        if rk is not None:
            where = {None: None, "k_even": rk % 2 == 0, "data": loads[0] > 0}[s["where"]]
            expr = getattr(tl, s["reducer"])(expr, axis=rk, where=where)
        return expr
    return body


def numpy_pipeline(prog, arrays: dict) -> dict:
    """Every stage's result in float64 (``("st", j)`` -> (value, error)), with a bound on
    the error of a float32 evaluation (any placement, inlining or summation order)."""
    ext, sym, inputs, stages = prog
    halo = halos(prog)
    vals = {("in", k): (a.astype(np.float64), np.zeros(a.shape)) for k, a in arrays.items()}
    for j, s in enumerate(stages):
        shp = tuple(ext[lab] + h for lab, h in zip(s["dims"], halo[("st", j)]))
        red = s["red"]
        K = None if red is None else (ext[red[1]] + red[2] if red[0] == "base" else red[2])
        full = shp + ((K,) if K else ())
        g = np.meshgrid(*[np.arange(n) for n in full], indexing="ij", sparse=True)
        acc, err, mag, first = 0.0, 0.0, 0.0, None
        for src, w, index in s["reads"]:
            ix = tuple({"d": lambda: g[sp[1]] + sp[2],
                        "rev": lambda: shp[sp[1]] - 1 - g[sp[1]] + sp[2],
                        "half": lambda: g[sp[1]] // 2 + sp[2],
                        "dw": lambda: g[sp[1]] + g[-1] + sp[2],
                        "r": lambda: g[-1] + sp[1],
                        "z": lambda: sp[1]}[sp[0]]() for sp in index)
            v, e = vals[src]
            first = v[ix] if first is None else first
            acc, err, mag = acc + w * v[ix], err + abs(w) * e[ix], mag + abs(w * v[ix])
        err = err + (len(s["reads"]) + 2) * EPS * mag
        if s["tanh"]:
            acc = np.tanh(acc)
            err = err + 4 * EPS * np.abs(acc)
        acc, err = np.broadcast_to(acc, full), np.broadcast_to(err, full)
        if red is not None:
            mask = {None: True, "k_even": g[-1] % 2 == 0, "data": first > 0}[s["where"]]
            mask = np.broadcast_to(mask, full)
            acc = np.where(mask, acc, 0.0 if s["reducer"] == "sum" else -np.inf)
            err = np.where(mask, err, 0.0)
        if s["reducer"] == "sum":
            acc, err = acc.sum(-1), err.sum(-1) + 2 * EPS * K * np.abs(acc).sum(-1)
        elif s["reducer"] == "max":
            acc, err = acc.max(-1), err.max(-1)
        vals[("st", j)] = (acc, err + EPS * np.abs(acc))     # stored as float32
    return vals


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


def _effective_readers(sch, p, arg_stages) -> set:
    """The stages that read ``p``'s buffer once inlined stages are substituted: materialised
    readers, and inlined readers that are arguments (a nest of their own, at root, writes
    them: no loop of another stage encloses it)."""
    out = set()
    for r in sch.stages:
        if p in _reads(sch, r):
            if r.attach_type == "inline":
                out |= _effective_readers(sch, r, arg_stages) | ({r} & arg_stages)
            else:
                out.add(r)
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


def _attach_points(sch, p, arg_stages) -> list:
    """Every legal ``(stage, leaf)`` for ``p.compute_at``: a downstream, materialised stage
    whose loop encloses every reader of ``p``."""
    readers = _effective_readers(sch, p, arg_stages)
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


def _placement_choices(sch, p, arg_stages) -> list:
    out = [("root",)]
    if not p.op.reduce_axis:
        out.append(("inline",))
    out += [("at", s, iv) for s, iv in _attach_points(sch, p, arg_stages)]
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


def random_schedule(draw, args, tensors, out, annotate: bool = True):
    """A random legal schedule of the pipeline and its description (a list of calls);
    without ``annotate``, no loop annotations or buffer scopes (which depend on the regions
    that bound inference gives the stages)."""
    sch = tl.create_schedule(out.op)
    log = []
    computed = [t for key, t in tensors.items() if key[0] == "st"]
    arg_stages = {sch[a] for a in args}

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
        choices = _placement_choices(sch, p, arg_stages)
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
    if not annotate:
        return sch, log
    bounds = infer_bounds(sch)
    # an argument computed at a loop is written in place, region by region: the iterations
    # of a parallel loop enclosing it would race on it (regions may overlap)
    shared = set()
    for a in arg_stages:
        while a.attach_type == "scope":
            leaves = a.attach_stage.leaf_iter_vars
            shared.update(leaves[:leaves.index(a.attach_ivar) + 1])
            a = a.attach_stage
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
        data_leaves = [iv for iv in leaves
                       if iv.kind == "data" and iv not in done and iv not in shared]
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


def _run(sch, args, arrays, out_shapes, bounds_check=False) -> list:
    f = tl.build(sch, args, bounds_check=bounds_check)
    outs = [np.full(shp, np.nan, np.float32) for shp in out_shapes]  # unwritten: NaN
    f(*arrays, *outs)
    return outs


def check_pipeline(prog, draw):
    arrays = _inputs(prog)
    vals = numpy_pipeline(prog, arrays)
    n = len(prog[3])
    ins = [arrays[k] for k in used_inputs(prog)]
    # sometimes an intermediate result is an argument too: it is still written (whole at
    # root or inlined; computed at a loop, only the regions its readers need)
    extra = draw(st.sampled_from([None, None] + list(range(n - 1))), label="extra argument")
    outs = [("st", j) for j in (extra, n - 1) if j is not None]
    shapes = [vals[o][0].shape for o in outs]

    args, _ = build_pipeline(prog, extra)
    base = _run(tl.create_schedule(args[-1].op), args, ins, shapes)

    args2, tensors2 = build_pipeline(prog, extra)
    sch, log = random_schedule(draw, args2, tensors2, args2[-1])
    bounds_check = draw(st.booleans(), label="bounds_check")
    msg = (f"prog={prog!r}\nextra argument: {extra}\nschedule:\n  " + "\n  ".join(log)
           + f"\nbounds_check={bounds_check}")
    try:
        got = _run(sch, args2, ins, shapes, bounds_check)
    except Exception as e:
        raise AssertionError(f"{type(e).__name__}: {e}\n{msg}") from e
    for o, b, g in zip(outs, base, got):
        want, err = vals[o]
        what = f"{o[0]}{o[1]}: "
        if sch[tensors2[o]].attach_type == "scope":      # the regions that were written
            written = ~np.isnan(g)
            want, err, b, g = want[written], err[written], b[written], g[written]
        assert_close(b, want, err, what + "unscheduled vs numpy", msg)
        assert_close(g, b.astype(np.float64), 2 * err, what + "scheduled vs unscheduled", msg)
        assert_close(g, want, err, what + "scheduled vs numpy", msg)


@BUILD_SETTINGS
@given(prog=pipelines(), data=st.data())
def test_random_pipeline_under_random_schedule(prog, data):
    check_pipeline(prog, lambda s, label=None: data.draw(s, label=label))


# --------------------------------------------------------------------------- the legality rule

def _attachments_legal(sch, arg_stages) -> bool:
    """Every stage computed at a loop has all its readers inside that loop."""
    return all(all(_inside(r, p.attach_stage, p.attach_ivar)
                   for r in _effective_readers(sch, p, arg_stages))
               for p in sch.stages if p.attach_type == "scope")


@LOWER_SETTINGS
@given(prog=pipelines(), data=st.data())
def test_compute_at_is_rejected_exactly_when_a_reader_is_outside_the_loop(prog, data):
    """Moving one stage of a random legal schedule to each loop of each downstream stage in
    turn lowers when every attached stage still has all its readers inside its loop, and
    raises ``ScheduleError`` (at lowering) when one does not. An intermediate argument
    that is inlined counts as a reader at root (a nest of its own writes it)."""
    draw = lambda s, label=None: data.draw(s, label=label)      # noqa: E731
    n = len(prog[3])
    extra = draw(st.sampled_from([None, None] + list(range(n - 1))), label="extra argument")
    args, tensors = build_pipeline(prog, extra)
    sch, log = random_schedule(draw, args, tensors, args[-1], annotate=False)
    movable = [p for p in sch.stages if not _is_placeholder(p) and not p.is_output
               and p.attach_type != "inline"]
    if not movable:
        return
    p = draw(st.sampled_from(movable), label="moved stage")
    points = [(s, iv) for s in sch.stages if s is not p and not _is_placeholder(s)
              and s.attach_type != "inline" and p in _upstream(sch, s) for iv in s.leaf_iter_vars]
    for s, iv in points:
        p.compute_at(s, iv)
        what = f"s[{p.op.name}].compute_at(s[{s.op.name}], {iv.name})"
        msg = (f"prog={prog!r}\nextra argument: {extra}\nschedule:\n  " + "\n  ".join(log)
               + f"\nthen {what}")
        if _attachments_legal(sch, {sch[a] for a in args}):
            try:
                tl.lower(sch, args)
            except Exception as e:
                raise AssertionError(f"legal, but {type(e).__name__}: {e}\n{msg}") from e
        else:
            with pytest.raises(tl.ScheduleError, match="reader"):
                tl.lower(sch, args)


# --------------------------------------------------------------------------- regressions (bugs found)

@pytest.mark.parametrize("how", ["unroll", "extent-1 loop"])
def test_attached_buffer_size_survives_loop_elimination(how):
    """Found by the property test: B's buffer size depended on the loop ``xo`` it is computed
    at (symbolic shape, non-affine read), and unrolling ``xo`` or removing it (extent 1)
    substituted ``xo`` everywhere but in the Allocate's shape (``substitute`` does not descend
    into buffers), so the kernel read an unbound variable. Fixed in b0192d4: attached buffer
    sizes never depend on loop variables."""
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    B = tl.compute((n,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i // 2] * 3.0, name="C")
    s = tl.create_schedule(C.op)
    xo, _ = s[C].split(C.op.axis[0], nparts=2 if how == "unroll" else 1)
    s[B].compute_at(s[C], xo)         # B's region: [xo*q // 2, (xo*q + q + 1) // 2)
    if how == "unroll":
        s[C].unroll(xo)
    f = tl.build(s, [A, C], bounds_check=True)
    a = np.arange(7, dtype=np.float32)
    c = np.full(7, np.nan, np.float32)
    f(a, c)
    np.testing.assert_array_equal(c, 6 * a[np.arange(7) // 2])


def test_loop_partition_cut_does_not_read_inner_loop_variables():
    """Found by the property test: loop partitioning cut ``i.outer`` at a point computed from
    the guard ``i.outer + i < n`` of B's loop ``i``, whose extent reads another inner loop's
    variable (``i.inner.outer``), so the outer loop's range read an unbound variable. Fixed
    in 8c90525: no cut when an inner loop's bounds read other inner loops."""
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    B = tl.compute((n,), lambda i: A[i] * 2.0, name="B")
    C = tl.compute((n,), lambda i: B[i // 2] * 3.0, name="C")
    s = tl.create_schedule(C.op)
    _, x = s[C].split(C.op.axis[0], factor=2)
    xo, xi = s[C].split(x, nparts=2)
    s[C].split(xi, nparts=2)              # over-split: a guard on the inner loops
    s[B].compute_at(s[C], xo)             # B's loop extent depends on xo (i // 2)
    f = tl.build(s, [A, C], bounds_check=True)
    a = np.arange(7, dtype=np.float32)
    c = np.full(7, np.nan, np.float32)
    f(a, c)
    np.testing.assert_array_equal(c, 6 * a[np.arange(7) // 2])


def test_inlined_argument_reading_an_attached_stage():
    """Found by the property test: an inlined stage that is also an argument is written by a
    nest of its own at root, which reads P; P computed at a loop of C is not there. This is
    now rejected naming the stages (the inlined argument counts as a reader at root)."""
    A = tl.placeholder((8,), "float32", "A")
    P = tl.compute((8,), lambda i: A[i] * 2.0, name="P")
    B = tl.compute((8,), lambda i: P[i] + 1.0, name="B")
    C = tl.compute((8,), lambda i: B[i] * 3.0, name="C")
    s = tl.create_schedule(C.op)
    s[B].compute_inline()                 # B is an argument: still written, at root
    xo, _ = s[C].split(C.op.axis[0], factor=4)
    s[P].compute_at(s[C], xo)             # ... but P exists only inside C's loop xo
    try:
        f = tl.build(s, [A, B, C], bounds_check=True)
    except tl.ScheduleError:
        return                            # rejected, naming the stages: fine
    a = np.arange(8, dtype=np.float32)
    b, c = np.full(8, np.nan, np.float32), np.full(8, np.nan, np.float32)
    f(a, b, c)                            # or accepted (P recomputed for B): correct results
    np.testing.assert_array_equal(b, 2 * a + 1)
    np.testing.assert_array_equal(c, 3 * (2 * a + 1))


def test_argument_computed_inside_a_parallel_loop_does_not_race():
    """Found by the property test: an argument computed at a loop is written in place,
    region by region (init, then accumulate, for a reduction); inside a parallel loop whose
    iterations' regions overlap, the threads raced on it (one re-initialising P while another
    read it), silently: with 2 threads, about 19 runs in 20 went wrong. Fixed in 290dca0:
    rejected with a ScheduleError. (If it is ever accepted, e.g. with private copies, the
    results must be right with several threads.)"""
    n = tl.var("n")
    A = tl.placeholder((n,), "float32", "A")
    k = tl.reduce_axis((0, n), "k")
    P = tl.compute((n,), lambda i: tl.sum(tl.tanh(A[k]), axis=k), name="P")  # all equal
    C = tl.compute((n,), lambda i: P[(i * 7) % n], name="C")
    s = tl.create_schedule(C.op)
    s[P].compute_at(s[C], C.op.axis[0])   # every iteration computes all of P (non-affine read)
    s[C].parallel(C.op.axis[0])           # ... into the argument P, shared by the threads
    try:
        f = tl.build(s, [A, P, C])
    except tl.ScheduleError:
        return                            # rejected: fine
    a = np.random.default_rng(0).uniform(-1, 1, 160).astype(np.float32)
    want = np.tanh(a.astype(np.float64)).sum()
    threads = tl.runtime.get_num_threads()
    tl.runtime.set_num_threads(max(4, threads))
    try:
        for _ in range(50):
            p, c = np.full(160, np.nan, np.float32), np.full(160, np.nan, np.float32)
            f(a, p, c)
            np.testing.assert_allclose(c, want, rtol=1e-4)
            np.testing.assert_allclose(p, want, rtol=1e-4)
    finally:
        tl.runtime.set_num_threads(threads)
