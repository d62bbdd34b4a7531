"""Bound inference: the range of every iteration variable of every stage.

A root stage iterates over its operation's whole domain. Splits and fuses then determine
their children's ranges: ``split(x, factor=f)`` gives ``outer in [0, ceil(ext/f))`` and
``inner in [0, f)``; ``fuse(a, b)`` gives ``[0, ext(a)*ext(b))``. Derived loops always start
at 0; the root minimum is added back when lowering rebuilds the original indices.
"""

from __future__ import annotations

from ..arith import ceildiv, const_int, simplify
from ..te.expr import Const, Range, binary, cast
from .schedule import Fuse, Schedule, Split, Stage


def root_ranges(stage: Stage) -> dict:
    """Ranges of the stage's original axes: the full domain for a root stage."""
    return {iv: iv.dom for iv in list(stage.op.axis) + list(stage.op.reduce_axis)}


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


def infer_bounds(sch: Schedule) -> dict:
    """Map every IterVar of every stage to its Range."""
    out = {}
    for st in sch.stages:
        out.update(stage_ranges(st, root_ranges(st)))
    return out
