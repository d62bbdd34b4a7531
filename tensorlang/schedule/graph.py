"""The dataflow graph a schedule describes, after inlining, and the checks on attachments.

* ``inline_bodies``: each materialised stage's expression with every inlined stage's
  expression substituted for its reads (``compute_inline``);
* ``reader_map``: for each stage, the stages that read its buffer;
* ``check_attachments``: every ``compute_at`` is valid: the loop still exists, the attach
  chain has no cycle, and every reader of the stage runs inside the attach loop.
"""

from __future__ import annotations

from ..arith import rewrite, substitute, walk
from ..errors import ScheduleError
from ..te.expr import TensorLoad
from ..te.tensor import PlaceholderOp
from .schedule import Schedule, Stage


def inline_bodies(sch: Schedule) -> dict:
    """Stage -> its current operation's body with inlined producers substituted."""
    out: dict = {}
    for st in sch.stages:
        if isinstance(st.op, PlaceholderOp):
            continue

        def fn(n):
            if isinstance(n, TensorLoad):
                p = sch.stage_of(n.tensor)
                if p is not None and p.attach_type == "inline":
                    return substitute(out[p], dict(zip(p.op.axis, n.indices)))
            return None
        out[st] = rewrite(st.op.body, fn)
    return out


def reader_map(sch: Schedule, bodies: dict, written=()) -> dict:
    """Stage -> the materialised stages whose (inlined) bodies read it, in schedule order.
    ``written``: inlined stages that are nevertheless computed at root (arguments)."""
    readers = {st: [] for st in sch.stages}
    for st in sch.stages:
        if st not in bodies or st.attach_type == "inline" and st not in written:
            continue
        for n in walk(bodies[st]):
            if isinstance(n, TensorLoad):
                p = sch.stage_of(n.tensor)
                if p is not None and st not in readers[p]:
                    readers[p].append(st)
    return readers


def _inside(c: Stage, s: Stage, ivar) -> bool:
    """True when stage ``c`` runs inside loop ``ivar`` of stage ``s`` (or is ``s``)."""
    if c is s:
        return True
    seen = set()
    while c.attach_type == "scope" and c not in seen:
        seen.add(c)
        at, iv = c.attach_stage, c.attach_ivar
        if at is s:
            leaves = s.leaf_iter_vars
            return leaves.index(iv) >= leaves.index(ivar)
        c = at
    return False


def check_attachments(sch: Schedule, readers: dict) -> None:
    """Raise ``ScheduleError`` (naming the stages) for an attachment that cannot be lowered."""
    for st in sch.stages:
        if st.attach_type != "scope":
            continue
        me, at, iv = st.op.name, st.attach_stage, st.attach_ivar
        if at.attach_type == "inline":
            raise ScheduleError(f"stage {me!r} is computed at a loop of {at.op.name!r}, but "
                                f"{at.op.name!r} is inlined and has no loops")
        if not any(iv is x for x in at.leaf_iter_vars):
            raise ScheduleError(
                f"stage {me!r} is computed at loop {iv.name!r} of {at.op.name!r}, which is no longer "
                f"one of its loops (split or fused afterwards, or the loop nest was rebuilt by "
                f"cache_write/rfactor; loops of {at.op.name!r}: "
                f"{', '.join(x.name for x in at.leaf_iter_vars)}); call compute_at again with a "
                "current loop")
        chain, s = [st], at
        while s.attach_type == "scope":
            if s in chain:
                raise ScheduleError("compute_at cycle: " + " -> ".join(x.op.name for x in chain + [s]))
            chain.append(s)
            s = s.attach_stage
        for c in readers[st]:
            if not _inside(c, at, iv):
                where = ("at root" if c.attach_type != "scope" else
                         f"at loop {c.attach_ivar.name!r} of {c.attach_stage.op.name!r}")
                raise ScheduleError(
                    f"stage {me!r} is computed inside loop {iv.name!r} of {at.op.name!r}, but its "
                    f"reader {c.op.name!r} is computed {where}, outside that loop; every reader "
                    f"must run inside that loop (compute {me!r} at a loop enclosing all its "
                    "readers, or at root)")
        if not readers[st]:
            raise ScheduleError(f"stage {me!r} is computed at {at.op.name!r} but nothing reads it")
