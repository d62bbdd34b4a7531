"""The dataflow graph a schedule describes, after inlining, and the checks on attachments.

* ``inline_bodies``: each materialised stage's expression with every inlined stage's
  expression substituted for its reads (``compute_inline``); a float producer read more than
  once at the same indices is substituted once and bound by a ``Let``, so that a chain of
  inlined stages (``y = x*x + x``, fifty times) stays linear in size;
* ``reader_map``: for each stage, the stages that read its buffer;
* ``check_attachments``: every ``compute_at`` is valid: the loop still exists, the attach
  chain has no cycle, and every reader of the stage runs inside the attach loop.
"""

from __future__ import annotations

import dataclasses

from .. import dtype as dt
from ..arith import children, map_children, substitute, walk
from ..errors import ScheduleError
from ..te.expr import Binary, Let, Reduce, Select, TensorLoad, Var
from ..te.tensor import PlaceholderOp
from .schedule import Schedule, Stage


def inline_bodies(sch: Schedule) -> dict:
    """Stage -> its current operation's body with inlined producers substituted."""
    out: dict = {}
    for st in sch.stages:
        if not isinstance(st.op, PlaceholderOp):
            out[st] = _Inliner(sch, out).scope(st.op.body, {})
    return out


def _let(var: Var, value, body) -> Let:
    """``let var = value in body`` with the Lets of ``value`` lifted in front of it, so that
    nested inlining gives one flat sequence of bindings."""
    if isinstance(value, Let):
        return Let(value.var, value.value, _let(var, value.body, body), body.dtype)
    return Let(var, value, body, body.dtype)


class _Inliner:
    """Substitutes inlined producers into one stage's body. A *scope* is a part of the body
    that is evaluated whenever its root is: the whole body, a branch of an if_then_else, the
    right side of && or ||, a reduction's source or condition. A float producer read at the
    same indices at least twice in a scope, once outside its nested scopes, is bound by a Let
    at the scope's root (never hoisting a load out of a branch or out of a reduction)."""

    def __init__(self, sch: Schedule, bodies: dict):
        self.sch, self.bodies = sch, bodies

    def producer(self, n):
        """The inlined stage that ``n`` reads, if ``n`` is such a read."""
        if isinstance(n, TensorLoad):
            p = self.sch.stage_of(n.tensor)
            if p is not None and p.attach_type == "inline":
                return p
        return None

    def key(self, p, n: TensorLoad):
        """``(producer, indices)`` when the read may be let-bound, else ``None``."""
        if dt.is_float(n.dtype) and not any(self.producer(x) for i in n.indices for x in walk(i)):
            return p, n.indices
        return None

    def value(self, p, indices):
        """``p``'s body at ``indices``, with fresh variables for the Lets it carries (no two
        Lets of one body bind the same variable)."""
        body = self.bodies[p]
        fresh = {n.var: Var(n.var.name, n.var.dtype) for n in walk(body) if isinstance(n, Let)}
        return substitute(body, {**dict(zip(p.op.axis, indices)), **fresh})

    def count(self, e, counts: dict, nested: int) -> None:
        """Count each let-bindable read below ``e``: ``counts[key] = [outside, nested, dtype]``
        (reads outside any nested scope, reads inside one)."""
        p = self.producer(e)
        if p is not None:
            k = self.key(p, e)
            if k is not None:
                counts.setdefault(k, [0, 0, e.dtype])[nested] += 1
            return
        if isinstance(e, Select):
            parts = [(e.cond, nested), (e.true_value, 1), (e.false_value, 1)]
        elif isinstance(e, Binary) and e.op in ("and", "or"):
            parts = [(e.a, nested), (e.b, 1)]
        elif isinstance(e, Reduce):
            parts = [(e.source, 1), (e.condition, 1)]
        else:
            parts = [(c, nested) for c in children(e)]
        for c, nst in parts:
            self.count(c, counts, nst)

    def scope(self, e, env: dict):
        """``e`` with its reads substituted, the ones read twice here bound at its root.
        ``env``: the reads bound by enclosing scopes, key -> Var."""
        counts: dict = {}
        self.count(e, counts, 0)
        new = {k: Var(k[0].op.name, dtype) for k, (out, inner, dtype) in counts.items()
               if k not in env and out and out + inner > 1}
        body = self.sub(e, {**env, **new})
        for k, v in reversed(new.items()):
            body = _let(v, self.value(*k), body)
        return body

    def sub(self, e, env: dict):
        p = self.producer(e)
        if p is not None:
            k = self.key(p, e) if env else None
            if k is not None and k in env:
                return env[k]
            return self.value(p, tuple(self.sub(i, env) for i in e.indices))
        if isinstance(e, Select):
            new = (self.sub(e.cond, env), self.scope(e.true_value, env), self.scope(e.false_value, env))
            old = (e.cond, e.true_value, e.false_value)
            return e if all(a is b for a, b in zip(new, old)) else Select(*new, e.dtype)
        if isinstance(e, Binary) and e.op in ("and", "or"):
            a, b = self.sub(e.a, env), self.scope(e.b, env)
            return e if a is e.a and b is e.b else Binary(e.op, a, b, e.dtype)
        if isinstance(e, Reduce):
            src, cond = self.scope(e.source, env), self.scope(e.condition, env)
            return e if src is e.source and cond is e.condition else \
                dataclasses.replace(e, source=src, condition=cond)
        return map_children(e, lambda c: self.sub(c, env))


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
