"""Bound inference: the range of every loop of every stage, and the region each stage computes.

A stage at root computes its whole domain. A stage computed at loop ``a`` of a consumer
stage ``S`` computes, at each iteration of ``a``, the *region* of its result that the loops
inside ``a`` read. Stages are visited consumers first; for each read ``P[f(i, j, ...)]`` in a
consumer, the consumer's indices are written in terms of its loop variables, the loops of
``S`` down to ``a`` (and everything enclosing ``S``) are held fixed, and every other loop
variable is *relaxed* over its range. The union over all reads is the region: its minimum is
an expression of the fixed loops, its extent is constant for affine reads
(``P[y + ry - 1]`` under a tile of 8 rows needs 10 rows, starting at ``8*yo - 1``).

From a stage's root ranges, splits and fuses determine the leaf loops' ranges:
``split(x, factor=f)`` gives ``outer in [0, ceil(ext/f))`` and ``inner in [0, f)``;
``fuse(a, b)`` gives ``[0, ext(a)*ext(b))``. Loops always start at 0; lowering adds the root
minimum back when it rebuilds the original indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..arith import bound, ceildiv, const_int, free_vars, interval, simplify, substitute, walk
from ..te.expr import Const, Range, TensorLoad, binary, cast
from ..te.tensor import PlaceholderOp
from .schedule import Fuse, Schedule, Split, Stage

INF = float("inf")


def stage_ranges(stage: Stage, roots: dict) -> dict:
    """Propagate root ranges through the stage's split and fuse relations."""
    rng = dict(roots)
    for rel in stage.relations:
        zero = Const(0, (rel.fused if isinstance(rel, Fuse) else rel.parent).dtype)
        if isinstance(rel, Split):
            ext = rng[rel.parent].extent
            if rel.factor is not None:
                rng[rel.inner] = Range(zero, rel.factor)
                rng[rel.outer] = Range(zero, ceildiv(ext, rel.factor))
            else:
                rng[rel.outer] = Range(zero, rel.nparts)
                rng[rel.inner] = Range(zero, ceildiv(ext, rel.nparts))
        elif isinstance(rel, Fuse):
            # an empty axis has extent <= 0: clamp, or two negative extents would multiply
            # into a positive one
            o, i = (binary("max", rng[x].extent, 0) for x in (rel.outer, rel.inner))
            rng[rel.fused] = Range(zero, simplify(cast(zero.dtype, o * i)))
    return rng


def split_is_exact(rel: Split, rng: dict) -> bool:
    """True when ``outer * factor + inner`` provably never leaves the parent's range."""
    ext = const_int(rng[rel.parent].extent)
    o, i = const_int(rng[rel.outer].extent), const_int(rng[rel.inner].extent)
    return ext is not None and o is not None and i is not None and o * i == ext


def index_values(stage: Stage, rng: dict) -> tuple[dict, list]:
    """Each IterVar of ``stage`` as an expression of the leaf loop variables (offset from its
    range's min), plus ``(parent, condition)`` guards for the splits that are not exact."""
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


def root_values(stage: Stage, rng: dict) -> tuple[dict, list]:
    """The stage's original axes (``op.axis`` and ``op.reduce_axis``) in terms of its leaf
    loop variables (``min + value``), and the guards of its inexact splits."""
    value, guards = index_values(stage, rng)
    return {iv: simplify(rng[iv].min + value[iv])
            for iv in list(stage.op.axis) + list(stage.op.reduce_axis)}, guards


def fixed_loops(stage: Stage, ivar) -> list:
    """The leaf loops that enclose a stage computed at ``(stage, ivar)``: ``stage``'s loops
    down to ``ivar``, and the loops enclosing ``stage`` itself."""
    out = []
    while stage is not None:
        leaves = stage.leaf_iter_vars
        out += leaves[:leaves.index(ivar) + 1]
        stage, ivar = stage.attach_stage, stage.attach_ivar
    return out


@dataclass
class Bounds:
    """The result of bound inference for one schedule."""
    ranges: dict = field(default_factory=dict)    # IterVar -> Range (every stage's loops)
    regions: dict = field(default_factory=dict)   # Stage -> tuple of Range, one per dimension
    alloc: dict = field(default_factory=dict)     # Stage -> buffer shape (constant when possible)
    clip: dict = field(default_factory=dict)      # Stage -> [(dim, below, above)]: region may leave the domain
    env: dict = field(default_factory=dict)       # loop var uid -> numeric (lo, hi)

    def __getitem__(self, iv):
        return self.ranges[iv]


def infer_bounds(sch: Schedule, bodies: dict | None = None, consumers: dict | None = None) -> Bounds:
    """Ranges of every loop and the region of every computed stage. ``bodies`` maps each
    stage to its expression after inlining (default: its operation's body), ``consumers``
    maps each stage to the stages reading it (see ``schedule.graph``)."""
    from .graph import inline_bodies, reader_map
    bodies = inline_bodies(sch) if bodies is None else bodies
    consumers = reader_map(sch, bodies) if consumers is None else consumers
    b = Bounds()
    extent_of = {}                    # leaf var uid -> extent of its loop
    for st in reversed(sch.stages):
        if isinstance(st.op, PlaceholderOp):
            continue
        full = tuple(iv.dom for iv in st.op.axis)
        region, size = (full, tuple(r.extent for r in full)) if st.attach_type != "scope" else \
            _region(st, full, consumers[st], bodies, b, extent_of)
        roots = {iv: r for iv, r in zip(st.op.axis, region)}
        roots.update({iv: iv.dom for iv in st.op.reduce_axis})
        rng = stage_ranges(st, roots)
        b.ranges.update(rng)
        b.regions[st] = region
        for iv in st.leaf_iter_vars:
            extent_of[iv.var.uid] = rng[iv].extent
            b.env[iv.var.uid] = (0, bound(rng[iv].extent, b.env)[1] - 1)
        b.alloc[st], b.clip[st] = [], []
        for d, (r, dom, top) in enumerate(zip(region, full, size)):
            lo_ok = bound(simplify(r.min - dom.min), b.env)[0] >= 0
            hi_ok = bound(simplify(dom.min + dom.extent - r.min - r.extent), b.env)[0] >= 0
            if not (lo_ok and hi_ok):
                b.clip[st].append((d, not lo_ok, not hi_ok))
            hi = bound(r.extent, b.env)[1]
            if lo_ok:          # clipped to the domain, the region never needs more than it
                hi = min(hi, bound(dom.extent, b.env)[1])
            b.alloc[st].append(Const(int(max(hi, 0)), r.extent.dtype) if hi != INF
                               else simplify(binary("max", top, 0)))
    return b


MAX_CANDIDATES = 4     # incomparable bounds of one dimension before giving up on a tight region


def _merge(cands: list, e, op: str) -> None:
    """Add bound ``e`` to ``cands``, keeping only bounds no other candidate dominates (a
    constant difference decides: ``8*xo - 1`` dominates ``8*xo`` as a minimum)."""
    for n, c in enumerate(cands):
        d = const_int(e - c)
        if d is not None:
            if (d < 0) == (op == "min"):
                cands[n] = e
            return
    cands.append(e)


def _fold(cands: list, op: str):
    out = cands[0]
    for c in cands[1:]:
        out = binary(op, out, c)
    return simplify(out)


def _relaxer(extent_of: dict, fixed: set):
    """A function giving, for a set of variable uids, the intervals of the loop variables
    among them that are not ``fixed``: ``[0, extent - 1]``, the extent itself relaxed over
    the loops it depends on (``None`` for a loop whose extent has no bound)."""
    relaxed: dict = {}

    def env_of(uids):
        for u in uids:
            if u in extent_of and u not in fixed and u not in relaxed:
                ext = extent_of[u]
                env = env_of(free_vars(ext))
                hi = None if any(env.get(v, 0) is None for v in free_vars(ext)) \
                    else interval(ext, env)
                relaxed[u] = (Const(0, ext.dtype), simplify(hi[1] - 1)) if hi else None
        return relaxed
    return env_of


def _bounded(e, env_of):
    """``interval(e)`` over the relaxed loops, or ``None`` when a loop has no bound."""
    env = env_of(free_vars(e))
    return None if any(env.get(u, 0) is None for u in free_vars(e)) else interval(e, env)


def _region(st: Stage, full: tuple, readers: list, bodies: dict, b: Bounds, extent_of: dict) -> tuple:
    """The region of ``st``'s result read under its attach point, one Range per dimension,
    and an upper bound of each dimension's extent that no loop variable appears in (the
    buffer's size)."""
    fixed = {iv.var.uid for iv in fixed_loops(st.attach_stage, st.attach_ivar)}
    env_of = _relaxer(extent_of, fixed)
    lo = [[] for _ in full]          # candidate bounds per dimension: the region spans them
    hi = [[] for _ in full]
    unknown = set()
    for c in readers:
        values, _ = root_values(c, b.ranges)
        for n in walk(bodies[c]):
            if not (isinstance(n, TensorLoad) and c.schedule.stage_of(n.tensor) is st):
                continue
            for d, i in enumerate(n.indices):
                r = _bounded(simplify(substitute(i, values)), env_of)
                if r is None:
                    unknown.add(d)            # a loop with an unbounded extent, or no rule
                    continue
                _merge(lo[d], r[0], "min")
                _merge(hi[d], r[1], "max")
    everything = _relaxer(extent_of, set())
    region, size = [], []
    for d, dom in enumerate(full):
        if not (d in unknown or not lo[d] or len(lo[d]) > MAX_CANDIDATES
                or len(hi[d]) > MAX_CANDIDATES):
            mn = cast(dom.min.dtype, _fold(lo[d], "min"))
            mx = cast(dom.min.dtype, _fold(hi[d], "max"))
            # constant bounds reaching past a constant domain (reads in the skipped tail of
            # an inexact split) are clamped to the domain
            cmn = const_int(binary("max", mn, dom.min))
            cmx = const_int(binary("min", mx, dom.min + dom.extent - 1))
            if cmn is not None and cmx is not None:
                mn, mx = Const(cmn, mn.dtype), Const(max(cmx, cmn - 1), mn.dtype)
            ext = simplify(mx - mn + 1)
            top = _bounded(ext, everything)       # the largest extent over all iterations
            if top is not None and not any(u in extent_of for u in free_vars(top[1])):
                region.append(Range(simplify(mn), ext))
                size.append(top[1])
                continue
        region.append(dom)                        # conservative: the whole dimension
        size.append(dom.extent)
    return tuple(region), tuple(size)
