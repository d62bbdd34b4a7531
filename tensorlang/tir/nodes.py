"""Loop IR (TIR): buffers, statements, and the vector expressions that vectorization adds.

Expressions are shared with ``te`` (see ``tensorlang.te.expr``); this module adds memory
access (``Load``/``Store`` on a ``Buffer``), vector forms (``Ramp``, ``Broadcast``) and the
statements of a loop nest. Before ``storage_flatten`` accesses carry one index per dimension;
after it, one flat index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import dtype as dt
from ..te.expr import Const, Expr, Node, Var


@dataclass(frozen=True, eq=False, repr=False)
class Buffer(Node):
    """A region of memory: name, element dtype, shape, its data pointer, and the strides of
    its dimensions in elements (``()``: row-major; set by ``storage_align``)."""
    name: str
    dtype: str
    shape: tuple
    data: Var
    strides: tuple = ()
    leaf_node = True

    @staticmethod
    def make(name: str, dtype: str, shape) -> "Buffer":
        return Buffer(name, dtype, tuple(shape), Var(name, "handle"))

    def flat_index(self, indices) -> Expr:
        """The element offset of ``indices``."""
        if self.strides:
            idx = indices[0] * self.strides[0]
            for st, i in zip(self.strides[1:], indices[1:]):
                idx = idx + i * st
            return idx
        idx = indices[0] if indices else Const(0, "int32")
        for ext, i in zip(self.shape[1:], indices[1:]):
            idx = idx * ext + i
        return idx

    def size(self) -> Expr:
        """The number of elements the buffer spans."""
        if self.strides:
            return self.shape[0] * self.strides[0]
        out = Const(1, "int32")
        for s in self.shape:
            out = out * s
        return out

    def const_size(self) -> int | None:
        """The number of elements when it is a constant (cached), else ``None``."""
        if "_size" not in self.__dict__:
            dims = (self.shape[0], self.strides[0]) if self.strides else self.shape
            size = math.prod(d.value for d in dims) if all(isinstance(d, Const) for d in dims) else None
            object.__setattr__(self, "_size", size)
        return self.__dict__["_size"]


@dataclass(frozen=True, eq=False, repr=False)
class Load(Expr):
    buffer: Buffer
    indices: tuple
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Ramp(Expr):
    """The vector ``[base, base + stride, ..., base + (lanes-1)*stride]``."""
    base: Expr
    stride: Expr
    lanes: int
    dtype: str


@dataclass(frozen=True, eq=False, repr=False)
class Broadcast(Expr):
    """The vector of ``lanes`` copies of the scalar ``value``."""
    value: Expr
    lanes: int
    dtype: str


def broadcast(value: Expr, lanes: int) -> Expr:
    if dt.lanes(value.dtype) == lanes:
        return value
    return Broadcast(value, lanes, dt.with_lanes(value.dtype, lanes))


class Stmt(Node):
    """Base of statements."""


@dataclass(frozen=True, eq=False, repr=False)
class Store(Stmt):
    buffer: Buffer
    indices: tuple
    value: Expr


@dataclass(frozen=True, eq=False, repr=False)
class For(Stmt):
    """``for var in [min, min + extent)``; ``kind`` is serial, parallel, vectorized or unrolled.
    ``annotations`` holds (key, value) pairs: pragmas, and notes left by passes."""
    var: Var
    min: Expr
    extent: Expr
    kind: str
    body: Stmt
    annotations: tuple = ()


@dataclass(frozen=True, eq=False, repr=False)
class IfThenElse(Stmt):
    cond: Expr
    then_case: Stmt
    else_case: Stmt | None = None


@dataclass(frozen=True, eq=False, repr=False)
class Seq(Stmt):
    stmts: tuple


@dataclass(frozen=True, eq=False, repr=False)
class Allocate(Stmt):
    """Memory for ``buffer`` while ``body`` runs; ``scope`` is ``stack`` or ``heap``."""
    buffer: Buffer
    scope: str
    body: Stmt


@dataclass(frozen=True, eq=False, repr=False)
class PrimFunc(Node):
    """A function: buffer parameters (in call order), the symbolic shape variables that the
    runtime binds from the arrays' shapes, and the body."""
    name: str
    params: tuple
    shape_vars: tuple
    body: Stmt
    outputs: tuple = field(default=())   # names of the params the function writes


def seq(*stmts) -> Stmt:
    """A Seq of the given statements, flattening nested Seqs; one statement stays itself."""
    flat = []
    for s in stmts:
        if s is None:
            continue
        flat.extend(s.stmts if isinstance(s, Seq) else [s])
    return flat[0] if len(flat) == 1 else Seq(tuple(flat))
