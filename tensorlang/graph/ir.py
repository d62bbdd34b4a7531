"""The graph IR: immutable nodes, each with the type (shape and dtype) inferred when it is made.

A graph is a DAG of nodes:

* ``Var(name, type)``: an input of the graph;
* ``Constant(data, name)``: a tensor known at compile time (weights), read-only;
* ``Call(op, args, attrs)``: an operator of the registry (``op`` its name) applied to nodes,
  with typed attributes; or, after ``FuseOps``, a call of a ``Function`` (a fused group);
* ``Tuple(fields)`` and ``TupleGetItem(tuple, index)``;
* ``Function(params, body, name)``: a fused group, a small graph over its parameters.

``Module(inputs, outputs)`` is a whole graph. Nodes compare by identity (``is``), so they
can key dicts and sets; ``structural_equal``/``structural_hash`` compare the computations
(same ops, attributes, constants' bytes and shape), as common-subexpression elimination
needs. Every traversal here is iterative, so deep graphs (a 12-layer transformer, ResNet-50)
never hit Python's recursion limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from .. import dtype as dt
from ..errors import TensorlangTypeError, TensorlangValueError


class GraphError(TensorlangValueError):
    """A graph is malformed: an unknown op, a bad attribute, shapes that do not agree."""


class GraphTypeError(TensorlangTypeError):
    """A graph has a dtype mismatch or an argument that is not a node."""


# --------------------------------------------------------------------------- types

@dataclass(frozen=True)
class TensorType:
    shape: tuple
    dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def __str__(self):
        return f"{self.dtype}{list(self.shape)}"


@dataclass(frozen=True)
class TupleType:
    fields: tuple

    def __str__(self):
        return "(" + ", ".join(map(str, self.fields)) + ")"


class Attrs(Mapping):
    """An immutable, hashable mapping of attribute names to values (numbers, strings, tuples)."""

    __slots__ = ("_items",)

    def __init__(self, items=()):
        object.__setattr__(self, "_items", tuple(sorted(dict(items).items())))

    def __getitem__(self, k):
        for key, v in self._items:
            if key == k:
                return v
        raise KeyError(k)

    def __iter__(self):
        return (k for k, _ in self._items)

    def __len__(self):
        return len(self._items)

    def __hash__(self):
        return hash(self._items)

    def __eq__(self, o):
        return isinstance(o, Attrs) and self._items == o._items

    def __setattr__(self, *_):
        raise AttributeError("Attrs are immutable")

    def replace(self, **kv) -> "Attrs":
        return Attrs({**dict(self._items), **kv})

    def __repr__(self):
        return ", ".join(f"{k}={v!r}" for k, v in self._items)


# --------------------------------------------------------------------------- nodes

class Node:
    """Base of graph nodes. Python's arithmetic operators build ``Call`` nodes, with other
    nodes or with Python numbers (which become scalar constants of the node's dtype)."""

    type: object

    @property
    def shape(self) -> tuple:
        return self._tensor_type().shape

    @property
    def dtype(self) -> str:
        return self._tensor_type().dtype

    def _tensor_type(self) -> TensorType:
        if not isinstance(self.type, TensorType):
            raise GraphTypeError(f"{describe(self)} is a tuple, not a tensor; take one of its "
                                 "fields with [i]")
        return self.type

    def __add__(self, o): return _op().add(self, o)
    def __radd__(self, o): return _op().add(o, self)
    def __sub__(self, o): return _op().subtract(self, o)
    def __rsub__(self, o): return _op().subtract(o, self)
    def __mul__(self, o): return _op().multiply(self, o)
    def __rmul__(self, o): return _op().multiply(o, self)
    def __truediv__(self, o): return _op().divide(self, o)
    def __rtruediv__(self, o): return _op().divide(o, self)
    def __pow__(self, o): return _op().power(self, o)
    def __neg__(self): return _op().negative(self)
    def __matmul__(self, o): return _op().matmul(self, o)

    def __getitem__(self, i):
        if isinstance(self.type, TupleType):
            return TupleGetItem(self, i)
        raise GraphTypeError(f"{describe(self)}: [] indexes tuples only; use G.op.strided_slice "
                             "or G.op.take on tensors")

    def __bool__(self):
        raise GraphTypeError(f"{describe(self)} is a graph node, which has no truth value")

    def __str__(self):
        return describe(self)

    __repr__ = __str__


def _op():
    from . import op
    return op


@dataclass(frozen=True, eq=False, repr=False)
class Var(Node):
    name: str
    type: TensorType

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise GraphError(f"var: the name must be a non-empty string, got {self.name!r}")
        if not isinstance(self.type, TensorType):
            raise GraphTypeError(f"var {self.name}: type must be a TensorType")



@dataclass(frozen=True, eq=False, repr=False)
class Constant(Node):
    data: np.ndarray
    name: str = ""
    type: TensorType = field(init=False)

    def __post_init__(self):
        a = self.data
        if not (isinstance(a, np.ndarray) and a.flags.c_contiguous and not a.flags.writeable):
            a = np.array(a, order="C", copy=True)      # a private, read-only copy
        dt.check(a.dtype)
        a.setflags(write=False)
        object.__setattr__(self, "data", a)
        object.__setattr__(self, "type", TensorType(a.shape, a.dtype.name))

    @property
    def digest(self) -> str:
        """A hash of the bytes, dtype and shape (cached): constants with the same digest are
        the same tensor."""
        d = self.__dict__.get("_digest")
        if d is None:
            h = hashlib.blake2b(self.data.tobytes(), digest_size=16)
            h.update(f"{self.type}".encode())
            d = h.hexdigest()
            object.__setattr__(self, "_digest", d)
        return d



@dataclass(frozen=True, eq=False, repr=False)
class Call(Node):
    op: object          # a registered op's name, or a Function (a fused group)
    args: tuple
    attrs: Attrs
    type: object


    @property
    def op_name(self) -> str:
        return self.op if isinstance(self.op, str) else self.op.name


@dataclass(frozen=True, eq=False, repr=False)
class Tuple(Node):
    fields: tuple
    type: TupleType = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "fields", tuple(self.fields))
        for f in self.fields:
            _check_node("tuple", f)
        object.__setattr__(self, "type", TupleType(tuple(f.type for f in self.fields)))



@dataclass(frozen=True, eq=False, repr=False)
class TupleGetItem(Node):
    tuple_value: Node
    index: int
    type: object = field(init=False)

    def __post_init__(self):
        t = self.tuple_value.type
        if not isinstance(t, TupleType):
            raise GraphTypeError(f"{describe(self.tuple_value)} is not a tuple")
        if not isinstance(self.index, int) or not -len(t.fields) <= self.index < len(t.fields):
            raise GraphError(f"tuple index {self.index!r} out of range for a tuple of "
                             f"{len(t.fields)} fields")
        object.__setattr__(self, "index", self.index % len(t.fields))
        object.__setattr__(self, "type", t.fields[self.index])



@dataclass(frozen=True, eq=False, repr=False)
class Function(Node):
    """A fused group: ``body`` computed from ``params``; called by ``Call(function, args)``."""
    params: tuple
    body: Node
    name: str = "fused"
    attrs: Attrs = field(default_factory=Attrs)     # e.g. pattern kind and anchor op
    type: object = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "type", self.body.type)



def _check_node(what: str, n) -> None:
    if not isinstance(n, Node):
        raise GraphTypeError(f"{what}: expected a graph node, got {type(n).__name__}")


# --------------------------------------------------------------------------- module

class Module:
    """A whole graph: its input variables and output nodes. Immutable; passes return new
    modules. ``attrs`` carries what passes attach (the memory plan, the layouts)."""

    __slots__ = ("inputs", "outputs", "attrs")

    def __init__(self, inputs, outputs, attrs=None):
        if isinstance(outputs, Node):
            outputs = [outputs]
        inputs, outputs = tuple(inputs), tuple(outputs)
        for v in inputs:
            if not isinstance(v, Var):
                raise GraphTypeError(f"Module: inputs must be G.var nodes, got {describe(v)}")
        if len({v.name for v in inputs}) != len(inputs):
            raise GraphError(f"Module: input names must be distinct, got {[v.name for v in inputs]}")
        for o in outputs:
            _check_node("Module output", o)
        if not outputs:
            raise GraphError("Module: a module needs at least one output")
        object.__setattr__(self, "inputs", inputs)
        object.__setattr__(self, "outputs", outputs)
        object.__setattr__(self, "attrs", dict(attrs or {}))
        free = {n for n in post_order(outputs) if isinstance(n, Var)} - set(inputs)
        if free:
            raise GraphError(f"Module: the outputs read variables that are not inputs: "
                             f"{sorted(v.name for v in free)}")

    def __setattr__(self, *_):
        raise AttributeError("Module is immutable; passes return new modules")

    def with_outputs(self, outputs, **attrs) -> "Module":
        return Module(self.inputs, outputs, {**self.attrs, **attrs})

    def with_attrs(self, **attrs) -> "Module":
        return Module(self.inputs, self.outputs, {**self.attrs, **attrs})

    def nodes(self) -> list:
        """Every node reachable from the outputs, in execution (topological) order."""
        return post_order(self.outputs)

    def calls(self) -> list:
        return [n for n in self.nodes() if isinstance(n, Call)]

    def __str__(self):
        from .printer import to_text
        return to_text(self)

    __repr__ = __str__


# --------------------------------------------------------------------------- traversal

def children(n: Node) -> tuple:
    """The nodes ``n`` reads (a fused call's function body is not a child: it is a separate
    graph over the function's parameters)."""
    if isinstance(n, Call):
        return n.args
    if isinstance(n, Tuple):
        return n.fields
    if isinstance(n, TupleGetItem):
        return (n.tuple_value,)
    return ()


def post_order(roots) -> list:
    """The nodes reachable from ``roots``, each after the nodes it reads (iterative DFS,
    children visited in argument order, so the order is deterministic)."""
    if isinstance(roots, Node):
        roots = [roots]
    seen, order = set(), []
    for root in roots:
        if id(root) in seen:
            continue
        stack = [(root, iter(children(root)))]
        seen.add(id(root))
        while stack:
            node, it = stack[-1]
            for c in it:
                if id(c) not in seen:
                    seen.add(id(c))
                    stack.append((c, iter(children(c))))
                    break
            else:
                stack.pop()
                order.append(node)
    return order


def users(roots) -> dict:
    """node -> list of the nodes that read it (outputs not counted)."""
    out: dict = {}
    for n in post_order(roots):
        out.setdefault(n, [])
        for c in children(n):
            out.setdefault(c, []).append(n)
    return out


def describe(n) -> str:
    """A short name of a node for error messages: ``%x``, ``const w``, ``conv2d(...)``."""
    if isinstance(n, Var):
        return f"%{n.name}: {n.type}"
    if isinstance(n, Constant):
        return f"const {n.name or '_'}: {n.type}"
    if isinstance(n, Call):
        args = ", ".join(str(a.type) for a in n.args)
        return f"{n.op_name}({args})"
    if isinstance(n, Tuple):
        return f"tuple of {len(n.fields)}"
    if isinstance(n, TupleGetItem):
        return f"[{n.index}] of a tuple"
    if isinstance(n, Function):
        return f"fn {n.name}"
    return type(n).__name__


# --------------------------------------------------------------------------- structure

def structural_key(n: Node, memo: dict) -> str:
    """A hashable key equal for structurally equal nodes (same op, attributes, constants and
    argument structure). ``memo`` maps already keyed nodes, so a DAG is keyed in linear time;
    variables are keyed by identity (two graphs' ``x`` are different inputs). A key is a
    digest of the node's own fields and its inputs' keys (a Merkle hash, as ``Constant.digest``
    is of the bytes): nested tuples would be re-hashed through every shared input at each
    use, which grows exponentially with the residual connections of a deep network."""
    for m in post_order(n):
        if m in memo:
            continue
        if isinstance(m, Var):
            k = ("var", id(m))
        elif isinstance(m, Constant):
            k = ("const", m.digest)
        elif isinstance(m, Call):
            if isinstance(m.op, str):
                op = m.op
            else:                      # a fused function: its parameters by position
                inner = {p: _digest(("param", i, p.type)) for i, p in enumerate(m.op.params)}
                op = ("fn", structural_key(m.op.body, inner), m.op.attrs)
            k = ("call", op, m.attrs, tuple(memo[a] for a in m.args))
        elif isinstance(m, Tuple):
            k = ("tuple", tuple(memo[f] for f in m.fields))
        elif isinstance(m, TupleGetItem):
            k = ("get", memo[m.tuple_value], m.index)
        else:
            k = ("other", id(m))
        memo[m] = _digest(k)
    return memo[n]


def _digest(k) -> str:
    return hashlib.blake2b(repr(k).encode(), digest_size=16).hexdigest()


def structural_equal(a, b) -> bool:
    """Whether two nodes compute the same thing (variables by identity), or two modules do
    (their inputs matched by position and type, as TVM maps a function's free variables)."""
    if isinstance(a, Module) and isinstance(b, Module):
        def keys(m):
            memo = {v: _digest(("input", i, v.type)) for i, v in enumerate(m.inputs)}
            return [structural_key(o, memo) for o in m.outputs]
        return len(a.inputs) == len(b.inputs) and keys(a) == keys(b)
    memo: dict = {}
    return structural_key(a, memo) == structural_key(b, memo)


def structural_hash(n: Node) -> int:
    return hash(structural_key(n, {}))
